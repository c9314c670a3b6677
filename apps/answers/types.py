"""The values the answer pipeline passes between its steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from apps.access.principals import tenant_wide
from apps.search.types import (
    DEFAULT_DENSE_WEIGHT,
    DEFAULT_RRF_K,
    Candidate,
    Fusion,
    Mode,
    SearchFilters,
    SearchHit,
    SearchQuery,
)
from apps.tenants.resolution import TenantContext


@dataclass(frozen=True)
class RetrievalRequest:
    """What a tenant app asks for, validated (api.py) before it gets here."""

    query: str
    mode: Mode = Mode.HYBRID
    k: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)
    fusion: Fusion = Fusion.RRF
    dense_weight: float = DEFAULT_DENSE_WEIGHT
    rrf_k: int = DEFAULT_RRF_K
    max_per_document: int | None = None
    rerank: bool = False
    hyde: bool = False
    feedback: bool = False  # pseudo-relevance feedback on the dense side (steps.Feedback)
    context_tokens: int = 1500  # ask only

    def parameters(self) -> dict:
        """The retrieval configuration, as the audit record keeps it."""
        return {
            "mode": self.mode.value,
            "k": self.k,
            "fusion": self.fusion.value,
            "dense_weight": self.dense_weight,
            "rrf_k": self.rrf_k,
            "max_per_document": self.max_per_document,
            "rerank": self.rerank,
            "hyde": self.hyde,
            "feedback": self.feedback,
            "context_tokens": self.context_tokens,
        }

    def filters_dict(self) -> dict:
        return {
            k: (list(v) if isinstance(v, tuple) else v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in asdict(self.filters).items()
            if v not in ((), None)
        }


@dataclass(frozen=True)
class SectionFacts:
    """A chunk's parent section, as the database holds it."""

    section_id: int
    text: str
    start_offset: int
    end_offset: int


@dataclass(frozen=True, eq=False)  # eq=False: a NumPy vector has no single truth value to compare by
class ChunkFacts:
    """What the database says of a retrieved chunk, loaded by the permission re-check: plain values,
    so no ORM row travels further down the pipeline (context, generator, response, audit record).
    The parent section and the vector only where a step needs them (an ask's context, feedback)."""

    text: str
    text_sha256: str
    start_offset: int  # into the version's extracted text
    end_offset: int
    section: SectionFacts | None  # None: not loaded (a search), or the chunk has none
    vector: np.ndarray | None  # for feedback; None: not loaded

    # The columns the re-check reads (Chunk field look-ups), the section's and the vector's if asked.
    COLUMNS: ClassVar[tuple[str, ...]] = ("id", "version_id", "text", "text_sha256", "start_offset", "end_offset")
    SECTION_COLUMNS: ClassVar[tuple[str, ...]] = (
        "section_id",
        "section__text",
        "section__start_offset",
        "section__end_offset",
    )
    VECTOR_COLUMNS: ClassVar[tuple[str, ...]] = ("embedding",)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> ChunkFacts:
        """From a `values()` row of those columns."""
        return cls(
            text=row["text"],
            text_sha256=row["text_sha256"],
            start_offset=row["start_offset"],
            end_offset=row["end_offset"],
            section=SectionFacts(
                row["section_id"], row["section__text"], row["section__start_offset"], row["section__end_offset"]
            )
            if row.get("section_id") is not None
            else None,
            vector=np.frombuffer(bytes(row["embedding"]), dtype=np.float32) if "embedding" in row else None,
        )


@dataclass(frozen=True)
class RankedChunk:
    """One retrieved chunk on its way through the pipeline. Steps replace it, never change it."""

    hit: SearchHit
    fused_rank: int
    rerank_score: float | None = None
    facts: ChunkFacts | None = None  # loaded by the re-check (None: the chunk is gone from the database)
    passed_recheck: bool = False
    recheck_reason: str = ""

    @property
    def scores(self) -> dict[str, float | int | None]:
        return {
            "fused": self.hit.score,
            "fused_rank": self.fused_rank,
            **self.hit.components,
            "rerank": self.rerank_score,
        }

    @property
    def ranks(self) -> dict[str, float | int | None]:
        """The scores without their values: what a caller who may not read everything is shown.
        A BM25 score carries the tenant's statistics, documents the caller may not read included
        (docs/search.md, "Tenant-isolated scoring"); a rank among readable chunks does not add to
        what the order of the results already says."""
        return {key: (value if key.endswith("_rank") else None) for key, value in self.scores.items()}


@dataclass
class Passage:
    """A piece of context for the generator: a parent section (or a lone chunk), with the retrieved
    children it holds and its exact place in the version's extracted text."""

    number: int  # the citation marker, [1], [2], …
    document_id: int
    version_id: int
    title: str
    text: str
    start_offset: int
    end_offset: int
    chunks: list[RankedChunk]
    tokens: int
    section_id: int | None = None  # the parent section given whole, else None (a lone chunk)

    @property
    def home_section_id(self) -> int | None:
        """The section this passage is or lies in (a lone chunk's own section), if known."""
        if self.section_id is not None:
            return self.section_id
        facts = self.chunks[0].facts
        return facts.section.section_id if facts is not None and facts.section is not None else None

    def chunk_at(self, offset: int) -> RankedChunk:
        """The retrieved child chunk holding this character offset (else the passage's best)."""
        for ranked in self.chunks:
            if ranked.facts is not None and ranked.facts.start_offset <= offset < ranked.facts.end_offset:
                return ranked
        return self.chunks[0]


@dataclass(frozen=True)
class Citation:
    marker: int
    chunk_id: str
    document_id: int
    version_id: int
    start_offset: int  # into the version's extracted text
    end_offset: int
    quote: str


@dataclass(frozen=True)
class Answer:
    text: str
    citations: list[Citation]
    grounded: bool
    generator: str
    model: str
    refusal_reason: str = ""


# What every run starts with; every other field of PipelineRun is written by a step that declares it.
RUN_INPUTS = ("context", "principals", "request")


@dataclass
class PipelineRun:
    """The state one search or ask builds up. Each step declares the fields it reads and writes
    (steps.py); a `Pipeline` checks, when it is defined, that every field is written before it is read."""

    context: TenantContext
    principals: tuple[str, ...]
    request: RetrievalRequest
    dense_text: str = ""  # what the dense retriever embeds: the query, or the query and a HyDE passage
    vector: np.ndarray | None = None  # the question's own vector (feedback never moves it: the generator uses it)
    search_query: SearchQuery | None = None  # what the engine was sent
    bm25: list[Candidate] = field(default_factory=list)
    dense: list[Candidate] = field(default_factory=list)
    ranked: list[RankedChunk] = field(default_factory=list)
    feedback_candidates: list[RankedChunk] = field(default_factory=list)  # re-checked, one per document
    feedback_chunks: list[str] = field(default_factory=list)  # the chunks whose vectors moved the query
    feedback_dense: list[Candidate] | None = None  # the dense pass with the moved vector; None: no feedback
    results: list[RankedChunk] = field(default_factory=list)  # search: what is shown
    passages: list[Passage] = field(default_factory=list)  # ask: the generator's context
    answer: Answer | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def generated_answer(self) -> Answer:
        """The answer of an ask, once its steps ran (Generate sets it); a search has none."""
        if self.answer is None:
            raise RuntimeError("This run generated no answer: only an ask's steps do.")
        return self.answer

    @property
    def shown(self) -> list[RankedChunk]:
        """What left the process, in ranked order: a search's results, or the chunks an ask gave the generator."""
        given = {r.hit.chunk_id for r in self.results} | {c.hit.chunk_id for p in self.passages for c in p.chunks}
        return [r for r in self.ranked if r.hit.chunk_id in given]

    @property
    def cited(self) -> set[str]:
        """The chunk ids the answer cites."""
        return {c.chunk_id for c in self.answer.citations} if self.answer else set()

    @property
    def reads_everything(self) -> bool:
        """Does the caller read every document of the tenant (and so may see raw scores)?"""
        return tenant_wide(self.context.tenant.pk) in self.principals
