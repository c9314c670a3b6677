"""Search and ask for a tenant app: run the pipeline for the caller (or the user a key acts for),
then write the audit record — also when the pipeline failed, so a refused or broken request
leaves its trace too."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from apps.access.principals import context_principals
from apps.audit import services as audit
from apps.audit.models import AuditRecord, Kind, Outcome
from apps.core.exceptions import ApplicationError, PermissionDenied
from apps.corpus.embedding import get_embedder
from apps.search.backends import get_search_backend
from apps.search.types import Fusion, Mode
from apps.tenants.resolution import TenantContext

from .rerank import get_reranker
from .steps import ASK, SEARCH, Pipeline, run_steps
from .types import PipelineRun, RetrievalRequest


@dataclass(frozen=True)
class Outcomes:
    run: PipelineRun
    record: AuditRecord


def request_check(request: RetrievalRequest) -> None:
    """Refuse (400) what this request asks of the platform and cannot get; evaluation runs check
    their configuration with it before they are stored."""
    if request.feedback and request.mode == Mode.BM25:
        raise ApplicationError(
            "Feedback moves the query vector, and mode bm25 has none: use mode dense or hybrid, or send "
            "feedback=false.",
            code="feedback_needs_vectors",
            extra={"fields": {"feedback": ["Needs mode dense or hybrid."]}},
        )
    if request.rerank and get_reranker() is None:
        raise ApplicationError(
            "Re-ranking is not configured on this platform (RERANK_MODEL_PATH); send rerank=false.",
            code="rerank_unavailable",
            extra={"fields": {"rerank": ["Re-ranking is not configured."]}},
        )


def fusion_check(run: PipelineRun) -> None:
    """Weighted fusion adds min-max normalised BM25 scores: sweeping dense_weight, a caller finds
    where two results swap and so recovers ratios of BM25 scores from the order alone. Those scores
    carry the tenant's statistics, documents the caller may not read included (docs/search.md,
    "Tenant-isolated scoring"), so weighted fusion is for callers who read everything, as raw
    scores are; reciprocal rank fusion uses ranks only."""
    request = run.request
    if request.mode == Mode.HYBRID and request.fusion == Fusion.WEIGHTED and not run.reads_everything:
        raise PermissionDenied(
            "Weighted fusion reads raw BM25 scores, which depend on documents you may not read: use fusion=rrf "
            "(the default), or a caller who reads every document of the tenant.",
            code="weighted_fusion_not_allowed",
            extra={"fields": {"fusion": ["Only rrf for callers who do not read everything."]}},
        )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _chunk_entries(run: PipelineRun) -> list[audit.ChunkEntry]:
    shown, cited = {r.hit.chunk_id for r in run.shown}, run.cited
    return [
        audit.ChunkEntry(
            rank=rank,
            chunk_id=r.hit.chunk_id,
            document_id=r.hit.document_id,
            version_id=r.hit.version_id,
            # The database's text and the engine's copy are hashed apart: the copy is what was served.
            text_sha256=r.facts.text_sha256 if r.facts is not None else "",
            served_sha256=_sha256(r.hit.text),
            scores=r.scores,
            passed_recheck=r.passed_recheck,
            recheck_reason=r.recheck_reason,
            shown=r.hit.chunk_id in shown,
            cited=r.hit.chunk_id in cited,
        )
        for rank, r in enumerate(run.ranked, start=1)
    ]


def _entry(
    run: PipelineRun, kind: str, *, outcome: str, error: str = "", origin: dict | None = None
) -> audit.RecordEntry:
    answer = run.answer
    return audit.RecordEntry(
        kind=kind,
        outcome=outcome,
        query=run.request.query,
        filters=run.request.filters_dict(),
        # Which chunks moved the query vector (feedback): they shaped the ranking, so the record names them.
        # `origin` says what asked, when not a tenant app's request ({"evaluation_run": id, "golden_set": id}).
        parameters={
            **run.request.parameters(),
            **({"feedback_chunks": run.feedback_chunks} if run.feedback_chunks else {}),
            **(origin or {}),
        },
        chunks=_chunk_entries(run),
        answer=answer.text if answer else "",
        citations=[vars(c) for c in answer.citations] if answer else [],
        generator=answer.generator if answer else "",
        generator_model=answer.model if answer else "",
        timings=run.timings,
        error=error or (answer.refusal_reason if answer else ""),
        **_provenance(run),
    )


def _provenance(run: PipelineRun) -> dict:
    """What a replay needs to re-derive the answer: whose access applied, the exact context given
    to the generator, and which model, engine and index generation answered."""
    # The dense candidates that were ranked: feedback's second pass replaces the first.
    dense = run.feedback_dense if run.feedback_dense is not None else run.dense
    served_by = sorted({c.index for c in (*run.bm25, *dense) if c.index})
    return {
        "principals": sorted(run.principals),
        "context": [
            {
                "number": p.number,
                "document_id": p.document_id,
                "version_id": p.version_id,
                "section_id": p.section_id,
                "start_offset": p.start_offset,
                "end_offset": p.end_offset,
                "text_sha256": _sha256(p.text),
                "chunk_ids": [c.hit.chunk_id for c in p.chunks],
            }
            for p in run.passages
        ],
        "embedding_model": get_embedder().identity if run.vector is not None else "",
        "search_backend": get_search_backend().name,
        "index_generation": ",".join(served_by),
    }


PIPELINES: dict[str, Pipeline] = {Kind.SEARCH: SEARCH, Kind.ASK: ASK}


def _new_run(context: TenantContext, request: RetrievalRequest) -> PipelineRun:
    """Refuse what cannot run (request_check, fusion_check); else a run for the context's principals."""
    request_check(request)
    run = PipelineRun(context=context, principals=tuple(context_principals(context)), request=request)
    fusion_check(run)
    return run


def pipeline_run(*, context: TenantContext, request: RetrievalRequest, kind: str) -> PipelineRun:
    """The pipeline alone, without an audit record and without the act-as check: for tests that
    probe the pipeline's access filtering (tests/hardening/test_acl_fuzz.py). Nothing in apps/
    may call it (tests/tenants/test_acting_for.py checks): whatever retrieves for someone goes
    through search_run / ask_run, which are audited and take only a context from act_for."""
    run = _new_run(context, request)
    run_steps(run, PIPELINES[kind])
    return run


def _run(*, context: TenantContext, request: RetrievalRequest, kind: str, origin: dict | None) -> Outcomes:
    """pipeline_run with the act-as check first and the audit record after, also when a step failed."""
    if not context.acting_resolved:
        # A programming error, not the caller's: whom this runs for was never resolved.
        raise RuntimeError(
            "A retrieval's context must come from apps.tenants.resolution.act_for (who acts, for whom, with "
            "which scopes)."
        )
    run = _new_run(context, request)
    try:
        run_steps(run, PIPELINES[kind])
    except ApplicationError as exc:
        error = f"{exc.code}: {exc.message} {exc.extra or ''}".strip()
        audit.record_append(
            context=context, entry=_entry(run, kind, outcome=Outcome.FAILED, error=error, origin=origin)
        )
        raise
    except Exception as exc:  # a bug: still audited, then Django's 500 handler logs it
        audit.record_append(
            context=context,
            entry=_entry(run, kind, outcome=Outcome.FAILED, error=f"internal error: {exc!r}", origin=origin),
        )
        raise
    if kind == Kind.ASK:
        outcome = Outcome.ANSWERED if run.generated_answer().grounded else Outcome.REFUSED
    else:
        outcome = Outcome.ANSWERED if run.shown else Outcome.NO_RESULTS
    record = audit.record_append(context=context, entry=_entry(run, kind, outcome=outcome, origin=origin))
    return Outcomes(run=run, record=record)


def search_run(*, context: TenantContext, request: RetrievalRequest, origin: dict | None = None) -> Outcomes:
    """`context` from resolution.act_for; `origin` is added to the audit record's parameters."""
    return _run(context=context, request=request, kind=Kind.SEARCH, origin=origin)


def ask_run(*, context: TenantContext, request: RetrievalRequest, origin: dict | None = None) -> Outcomes:
    return _run(context=context, request=request, kind=Kind.ASK, origin=origin)
