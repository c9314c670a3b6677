"""Golden sets and evaluation runs in the admin site: questions and their judged documents are
edited here; runs are read-only (they are started from the API or `evaluate_beir`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.tenants.admin import TenantListFilter, TenantScopedAdmin, TenantScopedTabularInline

from .models import EvaluationRun, GoldenQuestion, GoldenSet, Judgement, RunQuery


class GoldenQuestionInline(TenantScopedTabularInline):
    model = GoldenQuestion
    fields = ("text", "reference_answer", "external_id")
    extra = 0
    show_change_link = True


@admin.register(GoldenSet)
class GoldenSetAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant", "question_count", "created_at")
    list_filter = (TenantListFilter,)
    search_fields = ("name",)
    inlines = [GoldenQuestionInline]

    @admin.display(description="questions")
    def question_count(self, golden_set):
        return golden_set.questions.count()


class JudgementForm(forms.ModelForm):
    # The document must be of the question's tenant, also for a question being added: every admin
    # form checks that (TenantCheckedForm), with the raw-id field limited to the staff's tenants.
    class Meta:
        model = Judgement
        fields = ("document", "grade")


class JudgementInline(TenantScopedTabularInline):
    model = Judgement
    form = JudgementForm
    raw_id_fields = ("document",)
    extra = 1


@admin.register(GoldenQuestion)
class GoldenQuestionAdmin(TenantScopedAdmin):
    tenant_lookup = "golden_set__tenant"
    list_display = ("text", "golden_set", "external_id")
    list_filter = ("golden_set",)
    search_fields = ("text", "external_id")
    inlines = [JudgementInline]


class RunQueryInline(TenantScopedTabularInline):
    model = RunQuery
    fields = ("question", "metrics", "answer")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvaluationRun)
class EvaluationRunAdmin(TenantScopedAdmin):
    list_display = ("pk", "label", "golden_set", "status", "ndcg", "mrr", "code_version", "created_at")
    list_filter = (TenantListFilter, "status", "golden_set")
    readonly_fields = (
        "tenant",
        "golden_set",
        "label",
        "config",
        "code_version",
        "run_as",
        "status",
        "error",
        "metrics",
        "answer_checks",
        "created_at",
        "finished_at",
    )
    inlines = [RunQueryInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="nDCG@10")
    def ndcg(self, run):
        return f"{run.metrics.get('nDCG@10', 0):.3f}" if run.metrics else "—"

    @admin.display(description="MRR@10")
    def mrr(self, run):
        return f"{run.metrics.get('MRR@10', 0):.3f}" if run.metrics else "—"
