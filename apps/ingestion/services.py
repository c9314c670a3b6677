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

import numpy as np
from django.db import transaction

from apps.documents import services as document_services
from apps.documents.models import ChunkStrategy, DocumentVersion, IngestionStatus
from apps.search import services as search_services

from . import chunking, parsers
from .embedding import Embedder, get_embedder
from .models import Chunk, Section, chunk_id

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestReport:
    version_id: int
    status: str
    sections: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks the model had to encode
    reused: int = 0  # chunks whose embedding was found by (text hash, model)
    seconds: float = 0.0
    reason: str = ""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def embed_with_reuse(texts: list[str], *, tenant_id: int, embedder: Embedder, on_progress: Progress | None = None,
                     batch: int = 64) -> tuple[np.ndarray, int]:
    """Vectors for `texts`: those already stored for the same text and model (within the tenant)
    are reused; the rest are encoded in batches, reporting progress. Returns (vectors, reused)."""
    hashes = [text_hash(t) for t in texts]
    known = dict(
        Chunk.objects.filter(
            text_sha256__in=set(hashes), embedding_model=embedder.identity, version__document__tenant_id=tenant_id
        ).values_list("text_sha256", "embedding")
    )
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    todo = []
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = np.frombuffer(bytes(known[h]), dtype=np.float32)
        else:
            todo.append(i)
    done = len(texts) - len(todo)
    if on_progress:
        on_progress(done, len(texts))
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        vectors[part] = embedder.encode([texts[i] for i in part])
        done += len(part)
        if on_progress:
            on_progress(done, len(texts))
    return vectors, len(texts) - len(todo)


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
        DocumentVersion.objects.filter(pk=version.pk).update(progress_done=done, progress_total=total)

    return report


def ingest_version(*, version_id: int, embedder: Embedder | None = None) -> IngestReport:
    started = time.perf_counter()
    version = DocumentVersion.objects.select_related("document__collection").filter(pk=version_id).first()
    if version is None or version.purged_at is not None or not version.file:
        return IngestReport(version_id, "skipped", reason="the version is gone or purged")
    embedder = embedder or get_embedder()
    document_services.version_set_status(version=version, status=IngestionStatus.PROCESSING)

    try:
        with version.file.open("rb") as handle:
            parsed = parsers.parse(handle.read(), version.media_type)
    except parsers.BadContent as exc:
        document_services.version_set_status(version=version, status=IngestionStatus.FAILED, reason=str(exc))
        return IngestReport(version_id, IngestionStatus.FAILED, reason=str(exc), seconds=time.perf_counter() - started)

    plans = _plans(parsed, version, embedder)
    texts = [parsed.text[p.start : p.end] for p in plans]
    vectors, reused = embed_with_reuse(
        texts, tenant_id=version.document.tenant_id, embedder=embedder, on_progress=_progress(version)
    )

    with transaction.atomic():
        Chunk.objects.filter(version=version).delete()
        Section.objects.filter(version=version).delete()
        sections = Section.objects.bulk_create(
            Section(version=version, ordinal=i, heading=s.heading[:500], text=parsed.text[s.start : s.end],
                    start_offset=s.start, end_offset=s.end, page=s.page)
            for i, s in enumerate(parsed.sections)
        )
        Chunk.objects.bulk_create(
            Chunk(
                id=chunk_id(version.pk, plan.ordinal), version=version, section=sections[plan.section], ordinal=plan.ordinal,
                text=text, text_sha256=text_hash(text), start_offset=plan.start, end_offset=plan.end,
                token_count=plan.token_count, embedding=vector.tobytes(), embedding_model=embedder.identity,
            )
            for plan, text, vector in zip(plans, texts, vectors)
        )
    search_services.index_version(version_id=version.pk)
    search_services.sync_document(document_id=version.document_id)  # if it is the published one, it is searchable now
    DocumentVersion.objects.filter(pk=version.pk).update(progress_done=len(plans), progress_total=len(plans))
    version.refresh_from_db()
    document_services.version_set_status(version=version, status=IngestionStatus.READY)
    if version.publish_when_ready:
        _publish_if_newest(version)
    report = IngestReport(
        version_id, IngestionStatus.READY, sections=len(sections), chunks=len(plans), embedded=len(plans) - reused,
        reused=reused, seconds=round(time.perf_counter() - started, 3),
    )
    log.info("ingested %s", report)
    return report


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
        document_services.version_publish(version=version, actor=Actor(user=version.created_by), reason="published when ready, as asked at upload")
    except ApplicationError as exc:
        log.info("version %s not auto-published: %s", version.pk, exc.message)


def version_fail(*, version_id: int, reason: str) -> None:
    """The task gave up (retries exhausted): say why on the version."""
    version = DocumentVersion.objects.filter(pk=version_id).first()
    if version is not None and version.status != IngestionStatus.READY:
        document_services.version_set_status(version=version, status=IngestionStatus.FAILED, reason=reason)


@transaction.atomic
def ingestion_retry(*, version: DocumentVersion) -> bool:
    """Queue a failed (or stuck) version again. Ready versions and purged ones are left alone."""
    from . import sync

    if version.status == IngestionStatus.READY or version.purged_at is not None:
        return False
    document_services.version_set_status(version=version, status=IngestionStatus.PENDING, reason="queued again")
    sync.version_uploaded(version.pk)
    return True
