"""Golden sets (questions with graded relevant documents) and evaluation runs (a golden set × a
retrieval configuration → metrics per query and overall, with the configuration and code version
that produced them)."""

from __future__ import annotations

from django.db import models

from apps.documents.models import Collection, Document
from apps.tenants.models import ApiKey, Tenant
from apps.tenants.scoping import TenantOwned


class GoldenSet(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="golden_sets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    collection = models.ForeignKey(
        Collection,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Where an imported set's corpus lives (BEIR imports).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="golden_set_name_unique_in_tenant")]

    def __str__(self) -> str:
        return self.name


class GoldenQuestion(TenantOwned):
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="questions")
    external_id = models.CharField(max_length=100, blank=True, help_text="The query id of an imported set.")
    text = models.TextField()
    reference_answer = models.TextField(blank=True)

    class Meta:
        ordering = ["golden_set", "pk"]

    def __str__(self) -> str:
        return self.text[:80]


class Judgement(TenantOwned):
    """A document relevant to a question, graded (higher is more relevant). Unjudged documents
    count as not relevant."""

    question = models.ForeignKey(GoldenQuestion, on_delete=models.CASCADE, related_name="judgements")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+")
    grade = models.PositiveSmallIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["question", "document"], name="judgement_unique")]

    def __str__(self) -> str:
        return f"question {self.question_id}: {self.document_id} ({self.grade})"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class EvaluationRun(TenantOwned):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="runs")
    label = models.CharField(max_length=200, blank=True)
    config = models.JSONField(
        help_text="Retrieval configuration: mode, fusion, weights, k, re-rank, chunking, backend, model."
    )
    code_version = models.CharField(max_length=100)
    run_as = models.CharField(max_length=150, help_text="The member whose access the run used.")
    # Who started it, so the worker resolves the member again through act_for when it executes
    # (a key revoked or a member deactivated in between fails the run) and acts with no more than
    # `scopes`: the key's scopes ∩ the member's role's, or the member's own role's.
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The API key that started the run, acting for run_as; empty when the member did.",
    )
    api_key_prefix = models.CharField(max_length=16, blank=True, help_text="Kept when the key row is deleted.")
    scopes = models.JSONField(default=list, help_text="The scopes the run acts with, resolved when it was started.")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    error = models.TextField(blank=True)
    metrics = models.JSONField(default=dict)
    answer_checks = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.label}"


class RunQuery(TenantOwned):
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="queries")
    question = models.ForeignKey(GoldenQuestion, on_delete=models.CASCADE, related_name="+")
    metrics = models.JSONField(default=dict)
    ranking = models.JSONField(default=list, help_text="Document ids, best first.")
    answer = models.JSONField(default=dict, help_text="Answer checks, when the run asked too.")

    class Meta:
        ordering = ["run", "question"]
        constraints = [models.UniqueConstraint(fields=["run", "question"], name="run_query_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} question {self.question_id}"
