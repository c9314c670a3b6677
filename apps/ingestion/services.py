"""The ingestion pipeline of one document version: parse → chunk → embed (reusing what is known) →
store sections and chunks → index → ready.

Idempotent: a re-run replaces the version's sections and chunks with the same deterministic ids
and re-indexes them. Nothing is half-visible: chunks are written in one transaction, and a
version's index entries are searchable only once the version is published. Bad content fails the
version with a reason (never retried); an unavailable database or search engine propagates for the
task to retry.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.corpus import events as corpus_events
from apps.corpus import sentences as corpus_sentences
from apps.corpus import services as corpus_services
from apps.corpus.embedding import Embedder, get_embedder
from apps.corpus.models import Chunk, Section, Sentence, chunk_id
from apps.corpus.vectors import EMBEDDING_DIMS
from apps.documents import services as document_services
from apps.documents.models import ChunkStrategy, Document, DocumentVersion, IngestionStatus

from . import chunking, parsers

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestReport:
    version_id: int
    status: str
    sections: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks the model had to encode
    reused: int = 0  # chunks whose embedding was found by (input hash, model)
    sentences: int = 0  # sentences stored with their vectors, for extractive answers
    sentences_embedded: int = 0  # of those, the ones the model had to encode (the rest were reused)
    seconds: float = 0.0
    reason: str = ""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


KnownVectors = Callable[[set[str]], dict[str, bytes | memoryview]]


def stored_chunk_vectors(*, tenant_id: int, embedder: Embedder) -> KnownVectors:
    """The tenant's stored chunk vectors of this model, by the hash of the input they encoded."""

    def known(hashes: set[str]) -> dict[str, bytes | memoryview]:
        return dict(
            Chunk.objects.for_tenant(tenant_id)
            .filter(embedding_input_sha256__in=hashes, embedding_model=embedder.identity)
            .values_list("embedding_input_sha256", "embedding")
        )

    return known


def stored_sentence_vectors(*, tenant_id: int, embedder: Embedder) -> KnownVectors:
    """The tenant's stored sentence vectors of this model, by the hash of the sentence."""

    def known(hashes: set[str]) -> dict[str, bytes | memoryview]:
        return dict(
            Sentence.objects.for_tenant(tenant_id)
            .filter(text_sha256__in=hashes, embedding_model=embedder.identity)
            .values_list("text_sha256", "embedding")
        )

    return known


def embed_with_reuse(
    texts: list[str],
    *,
    tenant_id: int,
    embedder: Embedder,
    known_vectors: KnownVectors | None = None,
    on_progress: Progress | None = None,
    batch: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors for `texts` (model inputs): those the tenant already stored for the same input and
    model are reused (chunk vectors by default, `known_vectors` says where else to look); the rest
    are encoded in batches, reporting progress. Returns (vectors, reused mask)."""
    hashes = [text_hash(t) for t in texts]
    known_vectors = known_vectors or stored_chunk_vectors(tenant_id=tenant_id, embedder=embedder)
    known = known_vectors(set(hashes)) if hashes else {}
    vectors = np.zeros((len(texts), EMBEDDING_DIMS), dtype=np.float32)
    todo = []
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = np.frombuffer(bytes(known[h]), dtype=np.float32)
        else:
            todo.append(i)
    # Identical texts in this call are encoded once. Large groups per encode call: the model sorts
    # each call's texts by length, so bigger groups waste less padding (progress is per group).
    first: dict[str, int] = {}
    unique = [i for i in todo if first.setdefault(hashes[i], i) == i]
    done = len(texts) - len(todo)
    if on_progress:
        on_progress(done, len(texts))
    for start in range(0, len(unique), batch):
        part = unique[start : start + batch]
        vectors[part] = embedder.encode([texts[i] for i in part])
        done += len(part)
        if on_progress:
            on_progress(min(done, len(texts)), len(texts))
    for i in todo:
        vectors[i] = vectors[first[hashes[i]]]
    reused = np.ones(len(texts), dtype=bool)
    reused[todo] = False
    return vectors, reused


def _plans(parsed: parsers.ParsedDocument, version: DocumentVersion, embedder: Embedder) -> list[chunking.ChunkPlan]:
    collection = version.document.collection
    tokenizer = chunking.tokenizer_for(embedder.model_path)
    if collection.chunk_strategy == ChunkStrategy.SEMANTIC:
        return chunking.plan_semantic_chunks(parsed, tokenizer, embedder.encode, size=collection.chunk_size)
    return chunking.plan_token_chunks(parsed, tokenizer, size=collection.chunk_size, overlap=collection.chunk_overlap)


def _progress(version: DocumentVersion) -> Progress:
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.5:  # at most two writes a second
            return
        last[0] = now
        DocumentVersion.objects.for_tenant(version.document.tenant_id).filter(pk=version.pk).update(
            progress_done=done, progress_total=total
        )

    return report


def _part_of(progress: Progress | None, *, before: int, total: int) -> Progress | None:
    """Progress of one part of the work, counted into the whole: `before` done ahead of it."""
    if progress is None:
        return None
    whole = progress

    def report(done: int, _: int) -> None:
        whole(before + done, total)

    return report


@dataclass
class _Prepared:
    version: DocumentVersion
    parsed: parsers.ParsedDocument
    plans: list[chunking.ChunkPlan]
    texts: list[str]  # the chunks' texts
    inputs: list[str]  # what the model encodes for each (title + text)
    # Per parsed section, its sentences (text, start, end); None when sentence vectors are off.
    sentences: list[list[tuple[str, int, int]]] | None

    @property
    def sentence_texts(self) -> list[str]:
        return [text for section in self.sentences or () for text, _, _ in section]


def _prepare(version: DocumentVersion, embedder: Embedder) -> _Prepared | IngestReport:
    """Parse and chunk one version (already marked processing); bad content fails it here (no retry)."""
    try:
        with version.file.open("rb") as handle:
            parsed = parsers.parse(handle.read(), version.media_type)
    except parsers.BadContent as exc:
        document_services.version_set_status(version=version, status=IngestionStatus.FAILED, reason=str(exc))
        return IngestReport(version.pk, IngestionStatus.FAILED, reason=str(exc))
    plans = _plans(parsed, version, embedder)
    texts = [parsed.text[p.start : p.end] for p in plans]
    title = version.document.title
    sentences = (
        [corpus_sentences.spans(parsed.text[s.start : s.end], s.start) for s in parsed.sections]
        if settings.INGESTION["SENTENCE_VECTORS"]
        else None
    )
    return _Prepared(version, parsed, plans, texts, [embedder.passage_input(title, t) for t in texts], sentences)


def _store(
    items: list[_Prepared], vectors: np.ndarray, sentence_vectors: np.ndarray, embedder: Embedder
) -> list[_Prepared]:
    """Sections, chunks and sentences of a batch of versions in one transaction, replacing any earlier ones:
    a handful of statements for the whole batch, not several per version (at 300 small documents
    the per-version round trips cost as much as a tenth of the model's time). Returns the items
    stored: a version purged while the batch was being embedded is left out."""
    # Rows of `vectors` and `sentence_vectors` per version, counted over every item handed in:
    # an item left out below (purged meanwhile) must not shift the others onto its vectors.
    first_row, first_sentence_row, row, sentence_row = {}, {}, 0, 0
    for item in items:
        first_row[item.version.pk], row = row, row + len(item.plans)
        first_sentence_row[item.version.pk], sentence_row = sentence_row, sentence_row + len(item.sentence_texts)
    with transaction.atomic():
        # The documents' rows are locked, as a purge locks them, then read again: a purge that
        # committed meanwhile wins, and no text or vector of a purged version is written back.
        tenant_id = items[0].version.document.tenant_id  # a batch is one tenant's (ingest_versions groups them)
        document_ids = sorted({item.version.document_id for item in items})
        documents = Document.objects.for_tenant(tenant_id).select_for_update().filter(pk__in=document_ids)
        list(documents.order_by("pk").values_list("pk"))
        live = set(
            DocumentVersion.objects.for_tenant(tenant_id)
            .filter(pk__in=first_row, purged_at__isnull=True)
            .values_list("pk", flat=True)
        )
        items = [item for item in items if item.version.pk in live]
        version_ids = [item.version.pk for item in items]
        # A re-ingest (another chunking, another model) may make fewer chunks than before: the index
        # loses the ids that are no more, after commit (the new ones are indexed by id after _store).
        before = corpus_services.refs_of(tenant_id=tenant_id, version_id__in=version_ids)
        Chunk.objects.for_tenant(tenant_id).filter(version_id__in=version_ids).delete()
        Section.objects.for_tenant(tenant_id).filter(version_id__in=version_ids).delete()
        sections = Section.objects.bulk_create(
            Section(
                version=item.version,
                ordinal=i,
                heading=s.heading[:500],
                text=item.parsed.text[s.start : s.end],
                start_offset=s.start,
                end_offset=s.end,
                page=s.page,
                sentences_model=corpus_sentences.segmented_by(embedder.identity) if item.sentences is not None else "",
            )
            for item in items
            for i, s in enumerate(item.parsed.sections)
        )
        sentence_rows, first_section = [], 0
        for item in items:
            row = first_sentence_row[item.version.pk]
            for i, found in enumerate(item.sentences or ()):
                for text, start, end in found:
                    sentence_rows.append(
                        Sentence(
                            section=sections[first_section + i],
                            start_offset=start,
                            end_offset=end,
                            text_sha256=text_hash(text),
                            embedding=sentence_vectors[row].tobytes(),
                            embedding_model=embedder.identity,
                        )
                    )
                    row += 1
            first_section += len(item.parsed.sections)
        Sentence.objects.bulk_create(sentence_rows, batch_size=1000)
        chunks, first_section = [], 0
        for item in items:
            row = first_row[item.version.pk]
            for plan, text, model_input in zip(item.plans, item.texts, item.inputs, strict=True):
                chunks.append(
                    Chunk(
                        id=chunk_id(item.version.pk, plan.ordinal),
                        version=item.version,
                        section=sections[first_section + plan.section],
                        ordinal=plan.ordinal,
                        text=text,
                        text_sha256=text_hash(text),
                        start_offset=plan.start,
                        end_offset=plan.end,
                        token_count=plan.token_count,
                        embedding=vectors[row].tobytes(),
                        embedding_model=embedder.identity,
                        embedding_input_sha256=text_hash(model_input),
                    )
                )
                row += 1
            first_section += len(item.parsed.sections)
        Chunk.objects.bulk_create(chunks, batch_size=500)
        kept = {chunk.id for chunk in chunks}
        removed = tuple(ref for ref in before if ref.chunk_id not in kept)
        if removed:
            corpus_events.announce(corpus_events.ChunksRemoved(removed))
        for item in items:
            item.version.progress_done = item.version.progress_total = len(item.plans)
        DocumentVersion.objects.for_tenant(tenant_id).bulk_update(
            [item.version for item in items], ["progress_done", "progress_total"]
        )
    return items


def _finish(items: list[_Prepared]) -> None:
    """Indexed: the versions are ready (and published, where that was asked at upload)."""
    versions = [item.version for item in items]
    document_services.versions_set_status(versions=versions, status=IngestionStatus.READY)
    # Read again: "publish when ready" may have been asked while this batch was being embedded.
    wanted = set(
        DocumentVersion.objects.across_tenants()  # the versions it was handed
        .filter(pk__in=[v.pk for v in versions], publish_when_ready=True)
        .values_list("pk", flat=True)
    )
    for version in versions:
        if version.pk in wanted:
            _publish_if_newest(version)


def ingest_versions(*, version_ids: list[int], embedder: Embedder | None = None) -> list[IngestReport]:
    """Ingest several versions with their chunks embedded in shared batches (the model is faster on
    full batches than on one small document at a time); a tenant's versions are stored together."""
    started = time.perf_counter()
    embedder = embedder or get_embedder()
    reports: dict[int, IngestReport] = {}
    prepared: list[_Prepared] = []
    # Across tenants: a worker is handed version ids (of any tenant), and groups them by tenant below.
    versions = (
        DocumentVersion.objects.across_tenants().select_related("document__collection").filter(pk__in=version_ids)
    )
    found = {v.pk: v for v in versions if v.purged_at is None and v.file}
    document_services.versions_set_status(versions=list(found.values()), status=IngestionStatus.PROCESSING)
    for version_id in version_ids:
        version = found.get(version_id)
        if version is None:
            reports[version_id] = IngestReport(version_id, "skipped", reason="the version is gone or purged")
            continue
        item = _prepare(version, embedder)
        if isinstance(item, IngestReport):
            reports[version_id] = item
        else:
            prepared.append(item)
    by_tenant: dict[int, list[_Prepared]] = {}
    for item in prepared:
        by_tenant.setdefault(item.version.document.tenant_id, []).append(item)
    for tenant_id, items in by_tenant.items():
        inputs = [t for item in items for t in item.inputs]
        sentence_texts = [t for item in items for t in item.sentence_texts]
        # Progress counts what the model encodes: the chunks, then the sentences.
        progress = _progress(items[0].version) if len(items) == 1 else None
        total = len(inputs) + len(sentence_texts)
        vectors, reused = embed_with_reuse(
            inputs,
            tenant_id=tenant_id,
            embedder=embedder,
            on_progress=_part_of(progress, before=0, total=total),
        )
        sentence_vectors, sentences_reused = embed_with_reuse(
            sentence_texts,
            tenant_id=tenant_id,
            embedder=embedder,
            known_vectors=stored_sentence_vectors(tenant_id=tenant_id, embedder=embedder),
            on_progress=_part_of(progress, before=len(inputs), total=total),
        )
        stored = {item.version.pk for item in _store(items, vectors, sentence_vectors, embedder)}
        offset = sentence_offset = 0
        for item in items:
            part = slice(offset, offset + len(item.texts))
            offset += len(item.texts)
            sentence_part = slice(sentence_offset, sentence_offset + len(item.sentence_texts))
            sentence_offset += len(item.sentence_texts)
            if item.version.pk not in stored:
                reports[item.version.pk] = IngestReport(
                    item.version.pk, "skipped", reason="purged while being ingested"
                )
                continue
            reports[item.version.pk] = IngestReport(
                item.version.pk,
                IngestionStatus.READY,
                sections=len(item.parsed.sections),
                chunks=len(item.plans),
                embedded=len(item.plans) - int(reused[part].sum()),
                reused=int(reused[part].sum()),
                sentences=len(item.sentence_texts),
                sentences_embedded=len(item.sentence_texts) - int(sentences_reused[sentence_part].sum()),
                seconds=round(time.perf_counter() - started, 3),
            )
        # The index copies them now, each document in its current state (a re-ingested published
        # version is searchable at once, a new one once published); a search engine that is down
        # fails this task, which retries, so a version is ready only once it is searchable.
        items = [item for item in items if item.version.pk in stored]
        if items:
            corpus_events.announce(corpus_events.ChunksStored(tuple(item.version.pk for item in items)))
            _finish(items)
    for report in reports.values():
        log.info("ingested %s", report)
    return [reports[v] for v in version_ids]


def ingest_version(*, version_id: int, embedder: Embedder | None = None) -> IngestReport:
    return ingest_versions(version_ids=[version_id], embedder=embedder)[0]


def _publish_if_newest(version: DocumentVersion) -> None:
    """Publish as asked at upload, unless a newer version is already published or the document was
    archived or deleted meanwhile (then the upload's wish is stale and an editor decides)."""
    from apps.core.exceptions import ApplicationError
    from apps.tenants.actors import Actor

    document = version.document
    document.refresh_from_db()
    current = document.published_version
    if current is not None and current.number >= version.number:
        return
    try:
        document_services.version_publish(
            version=version, actor=Actor(user=version.created_by), reason="published when ready, as asked at upload"
        )
    except ApplicationError as exc:
        log.info("version %s not auto-published: %s", version.pk, exc.message)


def version_fail(*, version_id: int, reason: str) -> None:
    """The task gave up (retries exhausted): say why on the version."""
    version = DocumentVersion.objects.across_tenants().filter(pk=version_id).first()  # a task's version id
    if version is not None and version.status != IngestionStatus.READY:
        document_services.version_set_status(version=version, status=IngestionStatus.FAILED, reason=reason)


def stalled_versions(*, pending_after: timedelta, processing_after: timedelta) -> list[int]:
    """Versions whose ingestion should have started or finished by now: pending longer than
    `pending_after` (no task reached a worker) or processing longer than `processing_after` (its
    worker died; the broker would only hand the task on after its visibility timeout)."""
    now = timezone.now()
    return list(
        DocumentVersion.objects.across_tenants()  # a sweep: every tenant's
        .filter(purged_at__isnull=True)
        .filter(
            Q(status=IngestionStatus.PENDING, created_at__lt=now - pending_after)
            | Q(status=IngestionStatus.PROCESSING, processing_started_at__lt=now - processing_after)
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def requeue_stalled() -> list[int]:
    from apps.core.queue import enqueue

    from .tasks import ingest_version

    config = settings.INGESTION
    stalled = stalled_versions(
        pending_after=timedelta(seconds=config["REQUEUE_PENDING_AFTER"]),
        processing_after=timedelta(seconds=config["REQUEUE_PROCESSING_AFTER"]),
    )
    sent = [version_id for version_id in stalled if enqueue(ingest_version, version_id)]
    if sent:
        log.warning("re-queued %d stalled versions: %s", len(sent), sent[:20])
    return sent
