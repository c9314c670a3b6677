"""The retrieval pipeline as small steps over one `PipelineRun`:

    expand (HyDE, optional) → embed → search → fuse → feedback (optional) → re-rank (optional)
        → re-check → context → generate

Each step reads what earlier steps left on the run and adds its own part; `run_steps` times each
one into `run.timings` (milliseconds), which the response and the audit record both carry. A
search stops after the re-check; an ask goes on to context and generation."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from django.conf import settings

from apps.core.exceptions import ApplicationError, ServiceUnavailable
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk
from apps.documents.selectors import readable_published_documents
from apps.search import feedback
from apps.search.backends import SearchBackendError, get_search_backend
from apps.search.types import MAX_K, Mode, SearchQuery

from . import context as context_assembly
from .generators import get_generator
from .rerank import get_reranker
from .types import PipelineRun, RankedChunk


class ExpandQuery:
    """HyDE: the dense retriever embeds a hypothetical answer written by the chat model, which
    often lies closer to the real passages than the bare question does."""

    name = "expand"

    def __call__(self, run: PipelineRun) -> None:
        if run.request.hyde and run.request.mode != Mode.BM25:
            generator = get_generator()
            if not hasattr(generator, "hypothetical_passage"):
                raise ApplicationError(
                    "hyde needs a chat model (ANSWER_GENERATOR=openai); this platform has none configured.",
                    code="hyde_unavailable",
                )
            run.dense_text = f"{run.request.query}\n{generator.hypothetical_passage(run.request.query)}"


class EmbedQuery:
    name = "embed"

    def __call__(self, run: PipelineRun) -> None:
        if run.request.mode != Mode.BM25:
            run.vector = get_embedder().encode([run.dense_text or run.request.query])[0]


def _search_query(run: PipelineRun) -> SearchQuery:
    request = run.request
    depth = max(request.k, settings.ANSWERS["RERANK_DEPTH"]) if request.rerank else request.k
    return SearchQuery(
        tenant_id=run.context.tenant.pk,
        principals=run.principals,
        text=request.query,
        vector=run.vector,
        mode=request.mode,
        k=min(depth, MAX_K),
        filters=request.filters,
        fusion=request.fusion,
        dense_weight=request.dense_weight,
        rrf_k=request.rrf_k,
        max_per_document=request.max_per_document,
    )


def _retrieve(query: SearchQuery):
    try:
        return get_search_backend().retrieve(query)
    except SearchBackendError as exc:
        raise ServiceUnavailable(
            "Search is unavailable right now; try again shortly.", code="search_unavailable", extra={"reason": str(exc)}
        ) from exc


class Search:
    """BM25 and kNN in the engine, with the tenant, principals and `published` filters inside the
    query (the backend adds them to every query it sends)."""

    name = "search"

    def __call__(self, run: PipelineRun) -> None:
        run.bm25, run.dense = _retrieve(_search_query(run))


class Fuse:
    name = "fuse"

    def __call__(self, run: PipelineRun) -> None:
        hits = get_search_backend().rank(_search_query(run), run.bm25, run.dense)
        run.ranked = [RankedChunk(hit=hit, fused_rank=hit.rank) for hit in hits]


class Feedback:
    """Pseudo-relevance feedback (`apps.search.feedback`): the query vector moves toward the best
    documents of the first pass, the dense retriever runs again, and fusion ranks the BM25
    candidates with the new dense ones (Cranfield hybrid nDCG@10: docs/evaluation.md). Feedback
    comes only from chunks that pass the database's re-check, so a document the caller has just
    lost access to cannot steer their results."""

    name = "feedback"

    def __call__(self, run: PipelineRun) -> None:
        if not run.request.feedback or run.request.mode == Mode.BM25 or not run.ranked:
            return
        wanted = settings.ANSWERS["FEEDBACK_DOCUMENTS"]
        # A few spare documents cover those the re-check drops.
        candidates = feedback.one_per_document(run.ranked, lambda r: r.hit.document_id, 2 * wanted)
        recheck(run, candidates)
        chosen = [r for r in candidates if r.passed_recheck][:wanted]
        if not chosen:
            return
        moved = feedback.moved_vector(
            run.vector, [r.row.vector for r in chosen], query_weight=settings.ANSWERS["FEEDBACK_QUERY_WEIGHT"]
        )
        run.feedback_chunks = [r.hit.chunk_id for r in chosen]
        # run.vector stays the question's own: the generator compares answer sentences with it.
        _, run.dense = _retrieve(replace(_search_query(run), vector=moved, mode=Mode.DENSE))
        Fuse()(run)


class Rerank:
    name = "rerank"

    def __call__(self, run: PipelineRun) -> None:
        if not run.request.rerank or not run.ranked:
            return
        reranker = get_reranker()
        scores = reranker.score(run.request.query, [r.hit.text for r in run.ranked])
        for ranked, score in zip(run.ranked, scores, strict=True):
            ranked.rerank_score = round(score, 6)
        run.ranked.sort(key=lambda r: (-r.rerank_score, r.fused_rank))


def recheck(run: PipelineRun, ranked: Sequence[RankedChunk]) -> None:
    """Mark each of `ranked` as passing the database's re-check or not, with the reason."""
    document_ids = {r.hit.document_id for r in ranked}
    readable = dict(
        readable_published_documents(run.context)
        .filter(pk__in=document_ids)
        .order_by()
        .values_list("pk", "published_version_id")
    )
    rows = Chunk.objects.select_related("section").in_bulk([r.hit.chunk_id for r in ranked])
    for r in ranked:
        row = rows.get(r.hit.chunk_id)
        if row is None or row.version_id != r.hit.version_id:
            r.recheck_reason = "the chunk is no longer in the database"
        elif r.hit.document_id not in readable:
            r.recheck_reason = "the caller may not read the document (now), or it is not published"
        elif readable[r.hit.document_id] != r.hit.version_id:
            r.recheck_reason = "the version is no longer the published one"
        else:
            r.passed_recheck = True
        if row is not None and row.version_id == r.hit.version_id:
            r.row = row


class RecheckPermissions:
    """The engine filtered by the principals its index holds; the database has the last word. A
    grant revoked a moment ago, a document archived, a version replaced: whatever the index has not
    caught up with yet is dropped here, before anything leaves the process."""

    name = "recheck"

    def __call__(self, run: PipelineRun) -> None:
        recheck(run, run.ranked)


def top_readable(run: PipelineRun) -> list[RankedChunk]:
    """The best k that passed the re-check (re-ranking may have fetched more than k)."""
    return [r for r in run.ranked if r.passed_recheck][: run.request.k]


class ShowResults:
    """A search shows the best k chunks that passed the re-check."""

    name = "select"

    def __call__(self, run: PipelineRun) -> None:
        for ranked in top_readable(run):
            ranked.shown = True


class AssembleContext:
    name = "context"

    def __call__(self, run: PipelineRun) -> None:
        run.passages = context_assembly.assemble(top_readable(run), budget=run.request.context_tokens)


class Generate:
    name = "generate"

    def __call__(self, run: PipelineRun) -> None:
        vector = run.vector if run.vector is not None and not run.dense_text else None
        run.answer = get_generator().generate(run.request.query, run.passages, question_vector=vector)


SEARCH_STEPS = (
    ExpandQuery(),
    EmbedQuery(),
    Search(),
    Fuse(),
    Feedback(),
    Rerank(),
    RecheckPermissions(),
    ShowResults(),
)
ASK_STEPS = (
    ExpandQuery(),
    EmbedQuery(),
    Search(),
    Fuse(),
    Feedback(),
    Rerank(),
    RecheckPermissions(),
    AssembleContext(),
    Generate(),
)


def run_steps(run: PipelineRun, steps: Sequence) -> None:
    for step in steps:
        started = time.perf_counter()
        try:
            step(run)
        finally:
            run.timings[step.name] = round((time.perf_counter() - started) * 1000, 2)
