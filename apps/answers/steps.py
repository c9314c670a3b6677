"""The retrieval pipeline as small steps over one `PipelineRun`, declared once:

    RETRIEVE = expand (HyDE, optional) → embed → search → fuse → feedback (optional) → re-rank (optional)
    SEARCH = RETRIEVE → re-check → select          ASK = RETRIEVE → re-check (with sections) → context → generate

Each step names the `PipelineRun` fields it reads and the ones it writes (Haystack's components,
as plain classes). A `Pipeline` refuses, when it is defined, a step that reads a field no earlier
step writes and the run is not given (`types.RUN_INPUTS`); tests/answers/test_pipeline.py also
checks that each step touches only the fields it declares. `run_steps` times each step into
`run.timings` under its `name` (milliseconds; steps that share a name add up), which the response
and the audit record both carry."""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import ClassVar

import numpy as np
from django.conf import settings

from apps.core.exceptions import ApplicationError, ServiceUnavailable
from apps.corpus import selectors as corpus_selectors
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk
from apps.documents.selectors import readable_published_documents
from apps.search import feedback, ranking
from apps.search.backends import SearchBackendError, get_search_backend
from apps.search.types import MAX_K, Candidate, Mode, SearchQuery
from apps.tenants.resolution import TenantContext

from . import context as context_assembly
from .generators import ExtractiveGenerator, get_generator
from .query_vectors import query_vector
from .rerank import get_reranker
from .types import RUN_INPUTS, ChunkFacts, PipelineRun, RankedChunk, RetrievalRequest


class Step(abc.ABC):
    name: ClassVar[str]  # its key in run.timings
    reads: ClassVar[tuple[str, ...]] = ()  # the PipelineRun fields it reads
    writes: ClassVar[tuple[str, ...]] = ()  # the PipelineRun fields it sets (it may leave them as they are)

    @abc.abstractmethod
    def __call__(self, run: PipelineRun) -> None: ...


class PipelineError(Exception):
    """A pipeline declared in an order that cannot run: a programming error, raised at import."""


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        known = {f.name for f in fields(PipelineRun)}
        written = set(RUN_INPUTS)
        for position, step in enumerate(self.steps, start=1):
            label = f"step {position} ({type(step).__name__}, timed as {step.name!r})"
            unknown = [name for name in (*step.reads, *step.writes) if name not in known]
            if unknown:
                raise PipelineError(f"{label} names {unknown}, which are not fields of PipelineRun.")
            missing = [name for name in step.reads if name not in written]
            if missing:
                raise PipelineError(
                    f"{label} reads {missing}, which no earlier step writes and the run is not given "
                    f"(its inputs: {', '.join(RUN_INPUTS)}): put the step that writes them first."
                )
            written.update(step.writes)


def run_steps(run: PipelineRun, pipeline: Pipeline) -> None:
    spent: dict[str, float] = {}
    for step in pipeline.steps:
        started = time.perf_counter()
        try:
            step(run)
        finally:
            spent[step.name] = spent.get(step.name, 0.0) + time.perf_counter() - started
            run.timings[step.name] = round(spent[step.name] * 1000, 2)


# --------------------------------------------------------------------------- helpers (plain values in and out)
def _search_query(
    request: RetrievalRequest, *, tenant_id: int, principals: tuple[str, ...], vector: np.ndarray | None
) -> SearchQuery:
    depth = max(request.k, settings.ANSWERS["RERANK_DEPTH"]) if request.rerank else request.k
    return SearchQuery(
        tenant_id=tenant_id,
        principals=principals,
        text=request.query,
        vector=vector,
        mode=request.mode,
        k=min(depth, MAX_K),
        filters=request.filters,
        fusion=request.fusion,
        dense_weight=request.dense_weight,
        rrf_k=request.rrf_k,
        max_per_document=request.max_per_document,
    )


def _retrieve(query: SearchQuery) -> tuple[list[Candidate], list[Candidate]]:
    try:
        return get_search_backend().retrieve(query)
    except SearchBackendError as exc:
        raise ServiceUnavailable(
            "Search is unavailable right now; try again shortly.", code="search_unavailable", extra={"reason": str(exc)}
        ) from exc


def _fused(query: SearchQuery, bm25: list[Candidate], dense: list[Candidate]) -> list[RankedChunk]:
    return [RankedChunk(hit=hit, fused_rank=hit.rank) for hit in ranking.rank(query, bm25, dense)]


def recheck(
    context: TenantContext, ranked: Sequence[RankedChunk], *, sections: bool = False, vectors: bool = False
) -> list[RankedChunk]:
    """`ranked` again, each marked as passing the database's re-check or not (with the reason), and
    carrying the database's facts about its chunk: with its parent section's text and offsets if
    `sections`, its vector if `vectors` (neither is read otherwise: a search needs no section text,
    only feedback needs vectors). One query for the documents, one for the chunks (measured against
    one statement with the documents as a sub-select: two are 0.5 ms faster, p50 4.8 against 5.3 ms
    over 60 candidates; docs/benchmarks/throughput-profile.md). A hit must also name its chunk's own
    document: the response and the audit show the hit's document id, collection and title."""
    document_ids = {r.hit.document_id for r in ranked}
    readable = dict(
        readable_published_documents(context)
        .filter(pk__in=document_ids)
        .order_by()
        .values_list("pk", "published_version_id")
    )
    columns = (
        *ChunkFacts.COLUMNS,
        *(ChunkFacts.SECTION_COLUMNS if sections else ()),
        *(ChunkFacts.VECTOR_COLUMNS if vectors else ()),
    )
    rows = {
        row["id"]: row
        for row in Chunk.objects.for_tenant(context.tenant)
        .filter(pk__in=[r.hit.chunk_id for r in ranked])
        .order_by()
        .values(*columns, "version__document_id")
    }
    checked = []
    for r in ranked:
        row = rows.get(r.hit.chunk_id)
        if row is None or row["version_id"] != r.hit.version_id:
            checked.append(replace(r, passed_recheck=False, recheck_reason="the chunk is no longer in the database"))
            continue
        # Or a stale or tampered index could label a readable chunk with a document the caller may
        # not read, and the response would show that document's title (tests/answers/test_recheck_attacks.py).
        if row["version__document_id"] != r.hit.document_id:
            reason = "the index names another document than the chunk's"
        elif r.hit.document_id not in readable:
            reason = "the caller may not read the document (now), or it is not published"
        elif readable[r.hit.document_id] != r.hit.version_id:
            reason = "the version is no longer the published one"
        else:
            reason = ""
        checked.append(replace(r, facts=ChunkFacts.of(row), passed_recheck=not reason, recheck_reason=reason))
    return checked


def top_readable(ranked: list[RankedChunk], k: int) -> list[RankedChunk]:
    """The best k that passed the re-check (re-ranking may have fetched more than k)."""
    return [r for r in ranked if r.passed_recheck][:k]


# --------------------------------------------------------------------------- the steps
class ExpandQuery(Step):
    """HyDE: the dense retriever embeds a hypothetical answer written by the chat model, which
    often lies closer to the real passages than the bare question does."""

    name = "expand"
    reads = ("request",)
    writes = ("dense_text",)

    def __call__(self, run: PipelineRun) -> None:
        request = run.request
        if request.hyde and request.mode != Mode.BM25:
            generator = get_generator()
            if not hasattr(generator, "hypothetical_passage"):
                raise ApplicationError(
                    "hyde needs a chat model (ANSWER_GENERATOR=openai); this platform has none configured.",
                    code="hyde_unavailable",
                )
            run.dense_text = f"{request.query}\n{generator.hypothetical_passage(request.query)}"


class EmbedQuery(Step):
    name = "embed"
    reads = ("context", "request", "dense_text")
    writes = ("vector",)

    def __call__(self, run: PipelineRun) -> None:
        if run.request.mode != Mode.BM25:
            # Encoded, or the vector of this caller's own earlier identical query (query_vectors.py);
            # HyDE's text (query + generated passage) never repeats, so it is not kept.
            text = run.dense_text or run.request.query
            run.vector = query_vector(run.context, text, get_embedder(), cache=not run.dense_text)


class Search(Step):
    """BM25 and kNN in the engine, with the tenant, principals and `published` filters inside the
    query (the backend adds them to every query it sends)."""

    name = "search"
    reads = ("context", "principals", "request", "vector")
    writes = ("search_query", "bm25", "dense")

    def __call__(self, run: PipelineRun) -> None:
        query = _search_query(
            run.request, tenant_id=run.context.tenant.pk, principals=run.principals, vector=run.vector
        )
        run.search_query = query
        run.bm25, run.dense = _retrieve(query)


class Fuse(Step):
    """RRF or weighted fusion, the per-document cap, highlights (`apps.search.ranking.rank`)."""

    name = "fuse"
    reads = ("search_query", "bm25", "dense")
    writes = ("ranked",)

    def __call__(self, run: PipelineRun) -> None:
        assert run.search_query is not None  # Search wrote it
        run.ranked = _fused(run.search_query, run.bm25, run.dense)


# Pseudo-relevance feedback (`apps.search.feedback`), three steps timed together as "feedback": the
# query vector moves toward the best documents of the first pass, the dense retriever runs again,
# and fusion ranks the BM25 candidates with the new dense ones (Cranfield hybrid nDCG@10:
# docs/evaluation.md). Feedback comes only from chunks that pass the database's re-check, so a
# document the caller has just lost access to cannot steer their results.
class RecheckFeedbackCandidates(Step):
    """The best chunk of each of the first pass's leading documents, re-checked (a few spare
    documents cover those the re-check drops)."""

    name = "feedback"
    reads = ("context", "request", "ranked")
    writes = ("feedback_candidates",)

    def __call__(self, run: PipelineRun) -> None:
        if not run.request.feedback or run.request.mode == Mode.BM25 or not run.ranked:
            return
        wanted = settings.ANSWERS["FEEDBACK_DOCUMENTS"]
        candidates = feedback.one_per_document(run.ranked, lambda r: r.hit.document_id, 2 * wanted)
        run.feedback_candidates = recheck(run.context, candidates, vectors=True)


class Feedback(Step):
    """The dense pass again, with the query vector moved toward the candidates that passed."""

    name = "feedback"
    reads = ("vector", "search_query", "feedback_candidates")
    writes = ("feedback_chunks", "feedback_dense")

    def __call__(self, run: PipelineRun) -> None:
        chosen = [r for r in run.feedback_candidates if r.passed_recheck][: settings.ANSWERS["FEEDBACK_DOCUMENTS"]]
        if not chosen:  # no feedback asked for, or nothing readable to take it from
            return
        assert run.search_query is not None and run.vector is not None  # Search and EmbedQuery wrote them
        moved = feedback.moved_vector(
            run.vector,
            [r.facts.vector for r in chosen if r.facts is not None and r.facts.vector is not None],
            query_weight=settings.ANSWERS["FEEDBACK_QUERY_WEIGHT"],
        )
        run.feedback_chunks = [r.hit.chunk_id for r in chosen]
        # run.vector stays the question's own: the generator compares answer sentences with it.
        _, run.feedback_dense = _retrieve(replace(run.search_query, vector=moved, mode=Mode.DENSE))


class Refuse(Step):
    """Fusion once more, of the first pass's BM25 candidates with feedback's dense ones."""

    name = "feedback"
    reads = ("search_query", "bm25", "feedback_dense")
    writes = ("ranked",)

    def __call__(self, run: PipelineRun) -> None:
        if run.feedback_dense is not None:
            assert run.search_query is not None  # Search wrote it
            run.ranked = _fused(run.search_query, run.bm25, run.feedback_dense)


class Rerank(Step):
    name = "rerank"
    reads = ("request", "ranked")
    writes = ("ranked",)

    def __call__(self, run: PipelineRun) -> None:
        if not run.request.rerank or not run.ranked:
            return
        reranker = get_reranker()
        assert reranker is not None  # services.request_check refused the request otherwise
        scores = reranker.score(run.request.query, [r.hit.text for r in run.ranked])
        scored = [replace(r, rerank_score=round(score, 6)) for r, score in zip(run.ranked, scores, strict=True)]
        run.ranked = sorted(scored, key=lambda r: (-(r.rerank_score or 0.0), r.fused_rank))


class RecheckPermissions(Step):
    """The engine filtered by the principals its index holds; the database has the last word. A
    grant revoked a moment ago, a document archived, a version replaced: whatever the index has not
    caught up with yet is dropped here, before anything leaves the process. An ask's re-check also
    loads the chunks' parent sections, for its context."""

    name = "recheck"
    reads = ("context", "ranked")
    writes = ("ranked",)

    def __init__(self, *, sections: bool) -> None:
        self.sections = sections

    def __call__(self, run: PipelineRun) -> None:
        run.ranked = recheck(run.context, run.ranked, sections=self.sections)


class ShowResults(Step):
    """A search shows the best k chunks that passed the re-check."""

    name = "select"
    reads = ("request", "ranked")
    writes = ("results",)

    def __call__(self, run: PipelineRun) -> None:
        run.results = top_readable(run.ranked, run.request.k)


class AssembleContext(Step):
    name = "context"
    reads = ("request", "ranked")
    writes = ("passages",)

    def __call__(self, run: PipelineRun) -> None:
        run.passages = context_assembly.assemble(
            top_readable(run.ranked, run.request.k), budget=run.request.context_tokens
        )


class Generate(Step):
    name = "generate"
    reads = ("context", "request", "vector", "dense_text", "passages")
    writes = ("answer",)

    def __call__(self, run: PipelineRun) -> None:
        generator = get_generator()
        # The question's own vector, not a HyDE one: the generator compares answer sentences with the question.
        vector = run.vector if run.vector is not None and not run.dense_text else None
        stored = {}
        if isinstance(generator, ExtractiveGenerator) and run.passages:
            stored = corpus_selectors.section_sentences(
                tenant_id=run.context.tenant.pk,
                section_ids={p.home_section_id for p in run.passages if p.home_section_id is not None},
                model=get_embedder().identity,
            )
        run.answer = generator.generate(
            run.request.query, run.passages, question_vector=vector, stored_sentences=stored
        )


RETRIEVE: tuple[Step, ...] = (
    ExpandQuery(),
    EmbedQuery(),
    Search(),
    Fuse(),
    RecheckFeedbackCandidates(),
    Feedback(),
    Refuse(),
    Rerank(),
)
SEARCH = Pipeline((*RETRIEVE, RecheckPermissions(sections=False), ShowResults()))
ASK = Pipeline((*RETRIEVE, RecheckPermissions(sections=True), AssembleContext(), Generate()))
