"""A tenant's scores and rankings come from its own published documents only (docs/search.md,
"Tenant-isolated scoring"), through the REST API, on both backends:

- another tenant ingesting, publishing and leaving drafts full of the same words changes nothing in
  a tenant's responses, to the last byte;
- the tenant's own drafts (a new document not yet published, a new version of a published one)
  change nothing either;
- raw scores go only to callers who read everything; the others see ranks.

Documents are ingested for real (parse, chunk, embed, index), as in the answers conftest."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.documents import services as documents
from apps.search.backends import get_search_backend
from apps.tenants.actors import Actor
from apps.tenants.models import Scope
from tests.answers.conftest import SECURITY, TRAVEL, add_document
from tests.conftest import key_client

# Words every document of the library holds, in every mode and fusion the API offers.
PROBES = [
    {"query": "flights hotel night", "mode": mode, "fusion": fusion}
    for mode in ("bm25", "dense", "hybrid")
    for fusion in ("rrf", "weighted")
] + [{"query": "passwords remote access", "mode": "hybrid", "k": 5}, {"query": "salary bonuses", "mode": "bm25"}]

# The probe words, many times over, in documents of every kind that must not count.
NOISE = (
    b"# Flights and hotels\n\nFlights, hotel, night: flights hotel night flights. Passwords and remote access,"
    b" passwords, remote access. Salary bonuses, salary bands, bonuses every night.\n"
)


def responses(client) -> list[str]:
    """What the caller receives, minus what differs per request (the audit id, the timings)."""
    out = []
    for body in PROBES:
        searched = client.post("/api/v1/search", {"k": 10, **body}, format="json")
        if searched.status_code == 403:  # weighted fusion for a reader (test_weighted_fusion_...)
            out.append(searched.json()["code"])
            continue
        assert searched.status_code == 200, searched.content
        out.append(json.dumps(searched.json()["results"], sort_keys=True))
    asked = client.post("/api/v1/ask", {"query": "How much is a hotel night reimbursed?"}, format="json").json()
    out.append(json.dumps({k: asked[k] for k in ("answer", "citations", "sources", "grounded")}, sort_keys=True))
    return out


def callers(library):
    """One caller who reads everything, one reader who does not, one app acting as itself."""
    return {
        "owner": library.client(library.world.owner),
        "alice": library.client(library.alice),
        "app": key_client(library.world.key(scopes=[Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_WRITE])),
    }


def draft(tenant, collection, title: str, content: bytes):
    """A document ingested (ready) and never published."""
    document = documents.document_create(
        tenant=tenant,
        collection=collection,
        actor=Actor(None),
        title=title,
        file=SimpleUploadedFile(f"{title}.md", content),
    )
    document.refresh_from_db()
    assert document.published_version is None
    return document


@pytest.mark.django_db
def test_another_tenants_documents_never_change_a_tenants_responses(
    library, globex, django_capture_on_commit_callbacks
):
    before = {name: responses(client) for name, client in callers(library).items()}
    assert any('"bm25": null' not in r for r in before["owner"])  # scores are there to compare

    collection = documents.collection_create(tenant=globex.tenant, name="Handbook")
    add_document(globex.tenant, collection, "Travel policy", TRAVEL, django_capture_on_commit_callbacks)
    add_document(globex.tenant, collection, "Noise", NOISE, django_capture_on_commit_callbacks)
    add_document(globex.tenant, collection, "Security policy", SECURITY + NOISE, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        for i in range(3):
            draft(globex.tenant, collection, f"Draft {i}", NOISE * (i + 1))
    get_search_backend().refresh()

    assert {name: responses(client) for name, client in callers(library).items()} == before


@pytest.mark.django_db
def test_a_tenants_own_drafts_never_change_its_published_rankings(library, django_capture_on_commit_callbacks):
    before = {name: responses(client) for name, client in callers(library).items()}

    collection = library.travel.collection
    with django_capture_on_commit_callbacks(execute=True):
        draft(library.world.tenant, collection, "Travel draft", NOISE)
        version = documents.version_upload(
            document=library.travel, actor=Actor(None), file=SimpleUploadedFile("travel.md", TRAVEL + NOISE)
        )
    version.refresh_from_db()
    assert version.status == "ready" and library.travel.published_version_id != version.pk
    get_search_backend().refresh()

    assert {name: responses(client) for name, client in callers(library).items()} == before


@pytest.mark.django_db
def test_raw_scores_only_for_callers_who_read_everything(library):
    def scores(client) -> list[dict]:
        body = client.post("/api/v1/search", {"query": "flights hotel night", "k": 5}, format="json").json()
        assert body["results"]
        return [r["scores"] for r in body["results"]]

    for name, client in callers(library).items():
        for s in scores(client):
            if name == "alice":  # a reader: ranks, no values
                assert s["fused"] is s["bm25"] is s["dense"] is s["rerank"] is None, s
                assert s["fused_rank"] >= 1 and (s["bm25_rank"] or s["dense_rank"])
            else:
                assert isinstance(s["fused"], float) and (s["bm25"] is not None or s["dense"] is not None), (name, s)
    # the audit keeps the raw scores of every caller, for compliance
    from apps.audit.models import AuditRecord

    record = AuditRecord.objects.across_tenants().filter(user_id=library.alice.user.pk).latest("pk")
    assert all(c.scores["fused"] is not None for c in record.chunks.all())


@pytest.mark.django_db
def test_weighted_fusion_only_for_callers_who_read_everything(library):
    """Weighted fusion adds normalised BM25 scores: sweeping dense_weight, a reader would find where
    two results swap and recover a ratio of BM25 scores (the tenant's statistics, hidden documents
    included) from the order alone. So a reader gets 403 and reciprocal rank fusion still works."""
    weighted = {"query": "flights hotel night", "mode": "hybrid", "fusion": "weighted", "dense_weight": 0.3}
    for name, client in callers(library).items():
        response = client.post("/api/v1/search", weighted, format="json")
        asked = client.post("/api/v1/ask", {**weighted, "query": "How much is a hotel night?"}, format="json")
        if name == "alice":
            assert response.status_code == asked.status_code == 403, response.content
            assert (
                response.json()["code"] == "weighted_fusion_not_allowed"
                and "fusion" in response.json()["extra"]["fields"]
            )
        else:
            assert response.status_code == asked.status_code == 200, (name, response.content)
    alice = callers(library)["alice"]
    assert alice.post("/api/v1/search", {**weighted, "fusion": "rrf"}, format="json").status_code == 200
    assert (
        alice.post("/api/v1/search", {**weighted, "mode": "bm25"}, format="json").status_code == 200
    )  # no fusion in one retriever
