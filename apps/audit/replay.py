"""Replay of one audit record: rebuild what the caller was shown and what the generator read from
the immutable versions, check every hash the record kept, and say what would differ if the same
query ran now.

The texts are re-derived from the stored file of each version (its SHA-256 checked first, then
parsed again: chunk and section texts are slices of the parsed text at the offsets the database
keeps), not read back from the chunk rows, so a chunk row edited behind the platform's back does
not vouch for itself. A read: nothing here writes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from apps.access.principals import TENANT_WIDE_ROLES, document_reader_principals, user_principals
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk, Section
from apps.documents.models import Document, DocumentState, DocumentVersion
from apps.ingestion import parsers
from apps.search.backends import get_search_backend
from apps.tenants.models import Membership, Tenant

from . import chain
from .models import AuditRecord


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class ReplayedChunk:
    rank: int
    chunk_id: str
    document_id: int
    version_id: int
    shown: bool
    cited: bool
    text: str | None  # re-derived from the version's file; None when it cannot be
    text_matches: bool | None  # the record's hash of the database text
    served_matches: bool | None  # the record's hash of what the engine served
    now: list[str] = field(default_factory=list)  # what would differ today


@dataclass
class ReplayedPassage:
    number: int
    version_id: int
    section_id: int | None
    text: str | None
    text_matches: bool | None


@dataclass
class ReplayedCitation:
    marker: int
    chunk_id: str
    version_id: int
    quote: str
    quote_matches: bool | None  # the quote is the version's text at the cited offsets


@dataclass
class Replay:
    record_id: int
    sequence: int
    record_intact: bool  # the record still hashes to what the chain holds
    chunks: list[ReplayedChunk]
    context: list[ReplayedPassage]
    citations: list[ReplayedCitation]
    now: list[str]  # differences of the platform as a whole: model, backend, the caller's access
    unverifiable: list[str] = field(default_factory=list)  # texts that should be checkable and are not

    @property
    def hashes_match(self) -> bool:
        """Fails closed: a text that cannot be rebuilt counts against the record, unless its version
        was purged (which the platform records, and which removes the file on purpose)."""
        checks = [c.text_matches for c in self.chunks] + [c.served_matches for c in self.chunks]
        checks += [p.text_matches for p in self.context] + [c.quote_matches for c in self.citations]
        return self.record_intact and not self.unverifiable and all(check is not False for check in checks)


class _Versions:
    """Each version's text, parsed once per replay from its stored file, after its SHA-256."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self._texts: dict[int, str | None] = {}
        self.problems: dict[int, str] = {}
        self.suspect: set[int] = set()  # versions whose text should be there and is not

    def text(self, version_id: int) -> str | None:
        if version_id not in self._texts:
            self._texts[version_id] = self._load(version_id)
        return self._texts[version_id]

    def _load(self, version_id: int) -> str | None:
        version = (
            DocumentVersion.objects.filter(pk=version_id, document__tenant=self.tenant)
            .select_related("document")
            .first()
        )
        if version is None:
            self.problems[version_id] = "the version no longer exists"
            self.suspect.add(version_id)  # versions are never deleted: purge keeps a tombstone
            return None
        document = version.document
        if version.purged_at is not None and document.purged_at is not None and document.state == DocumentState.DELETED:
            self.problems[version_id] = f"version {version.number} was purged on {version.purged_at:%Y-%m-%d}"
            return None
        self.suspect.add(version_id)  # until its file is read, hashed and parsed
        if not version.file:
            self.problems[version_id] = "the version has no file, yet it was never purged"
            return None
        try:
            with version.file.open("rb") as handle:
                data = handle.read()
        except OSError as exc:
            self.problems[version_id] = f"the version's file cannot be read ({exc.__class__.__name__})"
            return None
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest().encode(), version.sha256.encode()):
            self.problems[version_id] = "the version's file no longer has the SHA-256 recorded at upload"
            return None
        try:
            text = parsers.parse(data, version.media_type).text
        except parsers.BadContent as exc:
            self.problems[version_id] = f"the version's file no longer parses: {exc}"
            return None
        self.suspect.discard(version_id)
        return text


def _slice(versions: _Versions, version_id: int, start: int | None, end: int | None) -> str | None:
    text = versions.text(version_id)
    return text[start:end] if text is not None and start is not None and end is not None else None


def _access_now(record: AuditRecord, documents: dict[int, Document]) -> tuple[dict[int, list[str]], list[str]]:
    """Per document, whether the principals the caller held then still read it, and whether the
    same caller today would."""
    held_then = set(record.principals)
    membership = (
        Membership.objects.filter(tenant=record.tenant, user_id=record.user_id).select_related("user").first()
        if record.user_id
        else None
    )
    general: list[str] = []
    held_now: set[str] | None = None
    if membership is not None:
        if not membership.is_active:
            general.append(f"{record.username} is no longer an active member")
            held_now = set()
        else:
            held_now = set(
                user_principals(
                    user=membership.user, tenant=record.tenant, reads_everything=membership.role in TENANT_WIDE_ROLES
                )
            )
            if held_then and held_now != held_then:
                general.append(f"{record.username}'s principals changed since (groups or role)")
    notes: dict[int, list[str]] = {}
    for document_id, document in documents.items():
        readers = set(document_reader_principals(document))
        document_notes = []
        if held_then and not readers & held_then:
            document_notes.append("access revoked since: the principals held then no longer read this document")
        elif held_now is not None and not readers & held_now:
            document_notes.append(f"{record.username} may no longer read this document")
        notes[document_id] = document_notes
    return notes, general


def record_replay(*, record: AuditRecord) -> Replay:
    """Rebuild and check one record (the tenant is the record's: callers got it through a
    tenant-scoped selector)."""
    entries = list(record.chunks.order_by("rank"))
    versions = _Versions(record.tenant)
    rows = {
        c.id: c
        for c in Chunk.objects.filter(id__in=[e.chunk_id for e in entries], version__document__tenant=record.tenant)
    }
    document_ids = {e.document_id for e in entries} | {p["document_id"] for p in record.context}
    documents = {
        d.pk: d for d in Document.objects.filter(pk__in=document_ids, tenant=record.tenant).select_related("collection")
    }
    access, general = _access_now(record, documents)

    chunks = []
    for entry in entries:
        row = rows.get(entry.chunk_id)
        text = (
            _slice(versions, entry.version_id, row.start_offset, row.end_offset)
            if row and row.version_id == entry.version_id
            else None
        )
        now = []
        if text is None:
            if entry.version_id not in versions.problems:  # the version is there, its chunk row is not
                versions.problems[entry.version_id] = "the chunk is gone from the database, its version is not purged"
                versions.suspect.add(entry.version_id)
            now.append(versions.problems[entry.version_id])
        document = documents.get(entry.document_id)
        if document is None:
            now.append("the document no longer exists")
        else:
            if document.state != DocumentState.PUBLISHED:
                now.append(f"the document is {document.state} now: it would not be searched")
            elif document.published_version_id != entry.version_id:
                number = document.published_version.number if document.published_version else None
                now.append(f"the document now serves version {number}: this chunk's version would not be searched")
            now += access.get(entry.document_id, [])
        chunks.append(
            ReplayedChunk(
                rank=entry.rank,
                chunk_id=entry.chunk_id,
                document_id=entry.document_id,
                version_id=entry.version_id,
                shown=entry.shown,
                cited=entry.cited,
                text=text,
                text_matches=_sha256(text) == entry.text_sha256 if text is not None else None,
                served_matches=_sha256(text) == entry.served_sha256
                if text is not None and entry.served_sha256
                else None,
                now=now,
            )
        )

    sections = {
        s.pk: s
        for s in Section.objects.filter(
            pk__in=[p["section_id"] for p in record.context if p.get("section_id")],
            version__document__tenant=record.tenant,
        )
    }
    context = []
    for passage in record.context:
        text = _slice(versions, passage["version_id"], passage["start_offset"], passage["end_offset"])
        section = sections.get(passage.get("section_id"))
        if section is not None and (section.start_offset, section.end_offset) != (
            passage["start_offset"],
            passage["end_offset"],
        ):
            text = None  # the section row no longer sits where the record says
        context.append(
            ReplayedPassage(
                passage["number"],
                passage["version_id"],
                passage.get("section_id"),
                text,
                _sha256(text) == passage["text_sha256"] if text is not None else None,
            )
        )

    citations = []
    for citation in record.citations:
        text = _slice(versions, citation["version_id"], citation["start_offset"], citation["end_offset"])
        citations.append(
            ReplayedCitation(
                citation["marker"],
                citation["chunk_id"],
                citation["version_id"],
                citation["quote"],
                text == citation["quote"] if text is not None else None,
            )
        )

    if record.embedding_model and record.embedding_model != get_embedder().identity:
        general.append("the embedding model changed since: dense scores would differ")
    backend = get_search_backend().name
    if record.search_backend and record.search_backend != backend:
        general.append(f"the search backend is {backend} now, not {record.search_backend}")
    intact = chain.record_hash(record, list(record.chunks.order_by("rank"))) == record.record_hash
    unverifiable = [f"version {v}: {versions.problems[v]}" for v in sorted(versions.suspect)]
    return Replay(record.pk, record.sequence, intact, chunks, context, citations, general, unverifiable)
