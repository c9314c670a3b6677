"""Golden sets and evaluation runs.

A run evaluates a golden set under one retrieval configuration through the real answer pipeline
(`answers.services.search_run` / `ask_run`: the same steps, access checks and audit records as the
API), as a named member of the tenant: what that member may read is what is measured. Whom a run
acts for is resolved by `resolution.act_for` when it is started and again before each question
when it executes, so a key revoked or a member deactivated in between fails the run with the
reason. Documents are ranked by their best chunk (one hit per document); metrics come from
ir-measures.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from apps.answers.services import ask_run, request_check, search_run
from apps.answers.types import RetrievalRequest
from apps.core.exceptions import ApplicationError, PermissionDenied
from apps.corpus.embedding import get_embedder
from apps.documents.models import Collection, Document
from apps.search import services as search_services
from apps.search.backends import get_search_backend
from apps.search.types import Fusion, Mode, SearchFilters
from apps.tenants import resolution
from apps.tenants.models import Membership, Scope, Tenant
from apps.tenants.resolution import TenantContext

from . import beir, metrics
from .models import EvaluationRun, GoldenQuestion, GoldenSet, Judgement, RunQuery, RunStatus

SUPPORT_THRESHOLD = 0.5  # cosine between an answer sentence and the passage it cites


# --------------------------------------------------------------------------- golden sets
def golden_set_create(
    *, tenant: Tenant, name: str, description: str = "", collection: Collection | None = None
) -> GoldenSet:
    if GoldenSet.objects.filter(tenant=tenant, name=name).exists():
        raise ApplicationError(f"A golden set named '{name}' exists already.", code="duplicate_name")
    return GoldenSet.objects.create(tenant=tenant, name=name, description=description, collection=collection)


@transaction.atomic
def question_add(
    *, golden_set: GoldenSet, text: str, judgements: dict[int, int], reference_answer: str = "", external_id: str = ""
) -> GoldenQuestion:
    """`judgements`: document id → grade (≥ 1). Documents must belong to the golden set's tenant."""
    found = set(Document.objects.filter(tenant=golden_set.tenant, pk__in=judgements).values_list("pk", flat=True))
    missing = sorted(set(judgements) - found)
    if missing:
        raise ApplicationError(
            f"No document {missing[0]} in this tenant.",
            code="invalid_document",
            extra={"fields": {"judgements": [f"Unknown documents: {missing}"]}},
        )
    question = GoldenQuestion.objects.create(
        golden_set=golden_set, text=text, reference_answer=reference_answer, external_id=external_id
    )
    Judgement.objects.bulk_create(Judgement(question=question, document_id=d, grade=g) for d, g in judgements.items())
    return question


def beir_import(
    *,
    tenant: Tenant,
    folder: Path,
    collection_name: str,
    name: str,
    batch: int = 128,
    stdout=None,
    progress: bool = True,
    **chunking,
) -> GoldenSet:
    """A BEIR folder into a tenant: its corpus ingested into a collection (resumable, published),
    its judged queries into a golden set (re-importing replaces the questions). `chunking`
    (chunk_size, chunk_overlap, chunk_strategy) applies to a new collection; an existing one must
    already have those settings."""
    from apps.documents import services as document_services
    from apps.ingestion import bulk

    data = beir.load(folder)  # fails early, with a clear message, on a folder that is not BEIR
    collection = Collection.objects.filter(tenant=tenant, name=collection_name).first()
    if collection is None:
        collection = document_services.collection_create(tenant=tenant, name=collection_name, **chunking)
    elif any(getattr(collection, field) != value for field, value in chunking.items()):
        have = {field: getattr(collection, field) for field in chunking}
        raise ApplicationError(
            f"Collection '{collection_name}' exists with other chunking {have}: name another collection.",
            code="chunking_mismatch",
        )
    ingested = bulk.ingest_items(
        collection=collection,
        items=bulk.beir_items(Path(folder) / "corpus.jsonl"),
        publish=True,
        batch=batch,
        progress=progress,
    )
    if stdout is not None:
        stdout.write(ingested.summary())
    # Publishing queued index updates for a worker; evaluate the database's truth whether or not
    # one runs: bring the collection's chunks in the index up to date here, in-process.
    search_services.sync_collection(collection_id=collection.pk)
    get_search_backend().refresh()
    documents = dict(
        Document.objects.filter(tenant=collection.tenant_id, collection=collection)
        .exclude(external_id="")
        .values_list("external_id", "pk")
    )
    with transaction.atomic():
        golden = GoldenSet.objects.filter(tenant=tenant, name=name).first() or golden_set_create(
            tenant=tenant, name=name, description=f"Imported from BEIR folder {data.name}", collection=collection
        )
        golden.questions.all().delete()
        for query_id, text in data.queries.items():
            judged = {documents[d]: grade for d, grade in data.qrels[query_id].items() if grade > 0 and d in documents}
            question = GoldenQuestion.objects.create(golden_set=golden, external_id=query_id, text=text)
            Judgement.objects.bulk_create(
                Judgement(question=question, document_id=d, grade=g) for d, g in judged.items()
            )
    return golden


# --------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class RunConfig:
    mode: str = Mode.HYBRID.value
    fusion: str = Fusion.RRF.value
    dense_weight: float = 0.65
    rrf_k: int = 60
    k: int = 100
    rerank: bool = False
    feedback: bool = False  # pseudo-relevance feedback (apps.search.feedback)
    answers: bool = False  # also ask each question and check the answer's citations
    limit: int | None = None  # only the first N questions (a quick look)
    label: str = ""

    def label_or_default(self) -> str:
        if self.label:
            return self.label
        name = self.mode if self.mode != Mode.HYBRID.value else f"hybrid {self.fusion}"
        return name + (" + feedback" if self.feedback else "") + (" + rerank" if self.rerank else "")


@lru_cache(maxsize=1)
def code_version() -> str:
    """The commit the code runs from (with -dirty for local changes), or KP_CODE_VERSION."""
    if os.environ.get("KP_CODE_VERSION"):
        return os.environ["KP_CODE_VERSION"]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _measure_names(k: int) -> list[str]:
    return ["nDCG@10", "MRR@10", f"Recall@{k}"] + (["Recall@10"] if k != 10 else [])


def _retrieval_request(config: RunConfig, query: str, **per_call) -> RetrievalRequest:
    return RetrievalRequest(
        query=query,
        mode=Mode(config.mode),
        fusion=Fusion(config.fusion),
        dense_weight=config.dense_weight,
        rrf_k=config.rrf_k,
        rerank=config.rerank,
        feedback=config.feedback,
        **per_call,
    )


def config_check(config: RunConfig) -> None:
    """What the pipeline would refuse for every question (bm25 with feedback, re-ranking with no
    model) is refused (400) before a run is stored."""
    request_check(_retrieval_request(config, ""))


def run_scopes(config: RunConfig) -> tuple[str, ...]:
    """What a run needs of whom it acts for: the run itself, the rankings, and the answers when it asks."""
    return (Scope.EVALUATION, Scope.SEARCH, *((Scope.ASK,) if config.answers else ()))


def run_acting(*, caller: TenantContext, config: RunConfig, as_user: str | None = None) -> TenantContext:
    """Whom a run acts for (resolution.act_for): a member as themselves, or the member a key with
    act_as_user names, with the scopes both allow; a key must name one."""
    return resolution.act_for(caller, as_user=as_user, require=run_scopes(config), member_required=True)


def run_start(
    *,
    golden_set: GoldenSet,
    config: RunConfig,
    caller: TenantContext | None = None,
    as_user: str | None = None,
    run_as: Membership | None = None,
) -> EvaluationRun:
    """`caller` (a request's context) with `as_user` for a key; or `run_as`, a member running as
    themselves outside a request (commands, tests)."""
    if run_as is not None:
        caller = resolution.member_context(run_as)
    if caller is None:
        raise ValueError("run_start needs a caller or run_as")
    if caller.tenant.pk != golden_set.tenant_id:
        raise ApplicationError("The member must belong to the golden set's tenant.", code="invalid_member")
    acting = run_acting(caller=caller, config=config, as_user=as_user)
    config_check(config)
    collection = golden_set.collection
    recorded = {
        **asdict(config),
        "label": config.label_or_default(),
        "search_backend": settings.SEARCH_BACKEND,
        "embedding_model": get_embedder().identity,
        "rerank_model": settings.ANSWERS["RERANK_MODEL_PATH"] if config.rerank else "",
        "feedback_settings": {
            "documents": settings.ANSWERS["FEEDBACK_DOCUMENTS"],
            "query_weight": settings.ANSWERS["FEEDBACK_QUERY_WEIGHT"],
        }
        if config.feedback
        else None,
        "chunking": {
            "size": collection.chunk_size,
            "overlap": collection.chunk_overlap,
            "strategy": collection.chunk_strategy,
        }
        if collection is not None
        else None,
    }
    assert acting.membership is not None  # act_for with member_required: a run acts as a member
    return EvaluationRun.objects.create(
        tenant=golden_set.tenant,
        golden_set=golden_set,
        label=recorded["label"],
        config=recorded,
        code_version=code_version(),
        run_as=acting.membership.username,
        api_key=acting.api_key,
        api_key_prefix=acting.api_key.prefix if acting.api_key else "",
        scopes=sorted(acting.scopes),
    )


def run_submit(
    *,
    golden_set: GoldenSet,
    config: RunConfig,
    caller: TenantContext | None = None,
    as_user: str | None = None,
    run_as: Membership | None = None,
) -> EvaluationRun:
    """A run started for a worker (in-process on the embedded profile), queued after commit; with
    the broker down it is marked failed at once, with a reason, rather than left waiting forever."""
    from apps.core.queue import enqueue

    from .tasks import run_evaluation

    def queue() -> None:
        if not enqueue(run_evaluation, run.pk):
            EvaluationRun.objects.for_tenant(run.tenant_id).filter(pk=run.pk).update(
                status=RunStatus.FAILED, error="The task queue is unavailable: start the run again later."
            )

    with transaction.atomic():
        run = run_start(golden_set=golden_set, config=config, caller=caller, as_user=as_user, run_as=run_as)
        transaction.on_commit(queue)
    return run


def run_context(run: EvaluationRun, config: RunConfig) -> TenantContext:
    """Whom the run acts for, resolved again now: who started it (the key must still be usable, a
    member who started it still active), then act_for, within the scopes recorded when it was
    started — never the member's full role."""
    if not run.scopes:
        raise PermissionDenied(
            "This run records no scopes (started before runs recorded who started them): start it again.",
            code="run_scopes_missing",
        )
    caller = resolution.stored_caller_context(
        tenant=run.tenant, api_key=run.api_key, api_key_prefix=run.api_key_prefix, username=run.run_as
    )
    acting = run_acting(caller=caller, config=config, as_user=run.run_as if run.api_key_prefix else None)
    # Both hold what the run needs (act_for checked each): the narrower of the two applies.
    return replace(acting, scopes=acting.scopes & frozenset(run.scopes))


class _CannotAct(Exception):
    def __init__(self, error: ApplicationError):
        super().__init__(error.message)
        self.error = error


def _acting_now(run: EvaluationRun, config: RunConfig) -> TenantContext:
    try:
        return run_context(run, config)
    except ApplicationError as exc:
        raise _CannotAct(exc) from exc


def run_execute(*, run: EvaluationRun, progress: bool = False) -> EvaluationRun:
    """Executes a started run. Each question is a search (and, with answers, an ask) through the
    audited services, each an audit record naming the key and the member, with
    `{"evaluation_run", "golden_set"}` in its parameters. If whom it acts for no longer resolves
    (key revoked, expired or deleted; member or tenant deactivated; a scope gone) the run fails
    with that reason, at the start or before the next question; other errors fail it and raise."""
    config = RunConfig(**{k: v for k, v in run.config.items() if k in RunConfig.__dataclass_fields__})
    questions = list(run.golden_set.questions.order_by("pk").prefetch_related("judgements"))[: config.limit]
    # A golden set tied to a collection is judged against that collection alone: another
    # collection holding the same texts (another chunking, say) must not crowd its ranking.
    filters = (
        SearchFilters(collection_ids=(run.golden_set.collection_id,))
        if run.golden_set.collection_id
        else SearchFilters()
    )
    origin = {"evaluation_run": run.pk, "golden_set": run.golden_set_id}
    try:
        rankings, answers = {}, {}
        for question in tqdm(questions, desc=run.label, unit="q", disable=not progress, leave=False):
            context = _acting_now(run, config)
            request = _retrieval_request(config, question.text, k=config.k, filters=filters, max_per_document=1)
            searched = search_run(context=context, request=request, origin=origin).run
            ranking = [r.hit.document_id for r in searched.shown]
            rankings[str(question.pk)] = {str(d): float(len(ranking) - i) for i, d in enumerate(ranking)}
            if config.answers:
                asked = ask_run(
                    context=context,
                    request=_retrieval_request(config, question.text, k=5, filters=filters),
                    origin=origin,
                ).run
                answers[str(question.pk)] = answer_checks(asked)
        if not questions:
            _acting_now(run, config)  # an empty run still fails for a caller that no longer resolves
        qrels = {str(q.pk): {str(j.document_id): j.grade for j in q.judgements.all()} for q in questions}
        names = _measure_names(config.k)
        per_query = metrics.per_query({q: d for q, d in qrels.items() if d}, rankings, names)
        RunQuery.objects.bulk_create(
            RunQuery(
                run=run,
                question=question,
                ranking=[int(d) for d in rankings[str(question.pk)]],
                metrics={
                    n: round(per_query[n][str(question.pk)], 6) for n in names if str(question.pk) in per_query[n]
                },
                answer=answers.get(str(question.pk), {}),
            )
            for question in questions
        )
        run.metrics = {n: round(sum(v.values()) / len(v), 6) if v else 0.0 for n, v in per_query.items()}
        run.metrics["judged_questions"] = len(next(iter(per_query.values()), {}))
        run.answer_checks = summarise_answers(list(answers.values())) if config.answers else {}
        run.status = RunStatus.DONE
    except _CannotAct as exc:
        # Whom the run acts for no longer resolves: a clean failure with the reason, nothing to retry.
        run.status, run.error = (
            RunStatus.FAILED,
            f"The run may no longer act for '{run.run_as}' ({exc.error.code}): {exc.error.message}",
        )
    except Exception as exc:
        run.status, run.error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.finished_at = timezone.now()
        run.save()
    return run


# --------------------------------------------------------------------------- answer checks
_MARKER = re.compile(r"\[(\d+)\]")


def answer_checks(asked) -> dict:
    """For one answer: do its citations point into the retrieved chunks, and is each answer sentence
    supported by the text it cites (cosine ≥ SUPPORT_THRESHOLD to a cited quote)?"""
    answer = asked.answer
    if not answer.grounded:
        return {"grounded": False}
    retrieved = {r.hit.chunk_id for r in asked.shown}
    citations_valid = all(c.chunk_id in retrieved for c in answer.citations)
    quotes = {c.marker: c.quote for c in answer.citations}
    sentences = [
        (m.group(0), [int(n) for n in _MARKER.findall(m.group(0))])
        for m in re.finditer(r"[^\[\]]+?(?:\s*\[\d+\])+", answer.text)
    ]
    pairs = [(_MARKER.sub("", s).strip(), quotes[n]) for s, markers in sentences for n in markers[:1] if n in quotes]
    supported = 0
    if pairs:
        embedder = get_embedder()
        left, right = embedder.encode([p[0] for p in pairs]), embedder.encode([p[1] for p in pairs])
        supported = int(((left * right).sum(axis=1) >= SUPPORT_THRESHOLD).sum())
    return {"grounded": True, "citations_valid": citations_valid, "sentences": len(sentences), "supported": supported}


def summarise_answers(checks: list[dict]) -> dict:
    grounded = [c for c in checks if c.get("grounded")]
    sentences = sum(c["sentences"] for c in grounded)
    return {
        "questions": len(checks),
        "grounded": len(grounded),
        "citations_valid": sum(1 for c in grounded if c["citations_valid"]),
        "sentences": sentences,
        "sentences_supported": sum(c["supported"] for c in grounded),
        "support_rate": round(sum(c["supported"] for c in grounded) / sentences, 4) if sentences else None,
    }


# --------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class QueryDelta:
    question_id: int
    question: str
    before: float
    after: float

    @property
    def delta(self) -> float:
        return round(self.after - self.before, 6)


@dataclass(frozen=True)
class Comparison:
    measure: str
    before: float
    after: float
    wins: list[QueryDelta]  # better in the second run, biggest gain first
    losses: list[QueryDelta]  # worse in the second run, biggest loss first
    ties: int


def run_compare(
    *, before: EvaluationRun, after: EvaluationRun, measure: str = "nDCG@10", epsilon: float = 1e-9
) -> Comparison:
    if before.golden_set_id != after.golden_set_id:
        raise ApplicationError("Only runs of the same golden set can be compared.", code="different_golden_sets")
    old = {q.question_id: q for q in before.queries.select_related("question")}
    new = {q.question_id: q for q in after.queries.select_related("question")}
    deltas = [
        QueryDelta(qid, new[qid].question.text, old[qid].metrics.get(measure, 0.0), new[qid].metrics.get(measure, 0.0))
        for qid in sorted(old.keys() & new.keys())
        if measure in old[qid].metrics or measure in new[qid].metrics
    ]
    return Comparison(
        measure=measure,
        before=before.metrics.get(measure, 0.0),
        after=after.metrics.get(measure, 0.0),
        wins=sorted((d for d in deltas if d.delta > epsilon), key=lambda d: -d.delta),
        losses=sorted((d for d in deltas if d.delta < -epsilon), key=lambda d: d.delta),
        ties=sum(1 for d in deltas if abs(d.delta) <= epsilon),
    )


STANDARD_CONFIGS = [
    RunConfig(mode="bm25"),
    RunConfig(mode="dense"),
    RunConfig(mode="hybrid", fusion="rrf"),
    RunConfig(mode="hybrid", fusion="weighted"),
    RunConfig(mode="dense", feedback=True),
    RunConfig(mode="hybrid", fusion="rrf", feedback=True),
    RunConfig(mode="hybrid", fusion="weighted", feedback=True),
]
