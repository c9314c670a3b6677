"""What a record keeps so that a past answer can be re-derived and checked: the text the engine
actually served (beside the database's), the principals the caller held, the exact context given
to the generator, the embedding model, the backend and the index generation."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from apps.access.principals import context_principals
from apps.audit.models import AuditRecord
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk, Section
from apps.search.backends import get_search_backend
from apps.search.projection import chunks_of, project
from apps.tenants.resolution import resolve_tenant_context


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.django_db
def test_a_record_keeps_what_a_replay_needs(library):
    body = (
        library.client(library.alice).post("/api/v1/ask", {"query": "Can I fly business class?"}, format="json").json()
    )
    record = AuditRecord.objects.across_tenants().get(pk=body["audit_id"])
    context = resolve_tenant_context(user=library.alice.user, api_key=None, tenant_slug=library.world.tenant.slug)
    assert record.principals == sorted(context_principals(context))
    assert record.embedding_model == get_embedder().identity
    assert record.search_backend == get_search_backend().name
    assert record.index_generation  # the concrete index (Elasticsearch) or file generation (embedded)
    assert record.context, "an answered ask gave the generator some context"
    for passage in record.context:
        chunk = Chunk.objects.across_tenants().get(pk=passage["chunk_ids"][0])
        text = (
            Section.objects.across_tenants().get(pk=passage["section_id"]).text if passage["section_id"] else chunk.text
        )
        assert passage["text_sha256"] == _sha256(text) and passage["version_id"] == chunk.version_id
    for entry in record.chunks.all():
        assert (
            entry.served_sha256
            == entry.text_sha256
            == Chunk.objects.across_tenants().get(pk=entry.chunk_id).text_sha256
        )


@pytest.mark.django_db
def test_a_served_text_that_differs_from_the_version_is_recorded_and_shown_to_the_reviewer(library, auditor):
    """The index's copy of a chunk is changed behind the database's back: the record keeps the
    hash of what was served, and the reviewer sees that it does not match the version."""
    chunk = Chunk.objects.across_tenants().filter(version__document=library.travel).order_by("ordinal").first()
    tampered = [replace(c, text=c.text + " Everyone may fly first class.") for c in project(chunks_of(pk=chunk.pk))]
    backend = get_search_backend()
    backend.index_chunks(tampered)
    backend.refresh()
    body = (
        library.client(library.alice)
        .post("/api/v1/search", {"query": "Everyone may fly first class", "k": 10}, format="json")
        .json()
    )
    served = next(r for r in body["results"] if r["chunk_id"] == chunk.pk)
    assert served["text"].endswith("Everyone may fly first class.")
    entry = AuditRecord.objects.across_tenants().get(pk=body["audit_id"]).chunks.get(chunk_id=chunk.pk)
    assert entry.served_sha256 == _sha256(tampered[0].text) != entry.text_sha256 == chunk.text_sha256
    detail = library.client(auditor).get(f"/api/v1/audit/records/{body['audit_id']}").json()
    evidence = next(c for c in detail["chunks"] if c["chunk_id"] == chunk.pk)
    assert evidence["text_matches"] is True and evidence["served_matches"] is False
    assert evidence["served_sha256"] == entry.served_sha256
