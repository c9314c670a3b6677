"""Pseudo-relevance feedback (feedback=true): the dense retriever runs again with the query vector
moved toward the first pass's best readable documents; the audit record names those chunks."""

import numpy as np
import pytest

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.audit.models import AuditRecord
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk
from apps.documents import services as document_services
from apps.search.backends import get_search_backend
from apps.tenants.actors import Actor

QUERY = "hotel receipts and business class flights"


def search(client, **body):
    response = client.post("/api/v1/search", {"query": QUERY, "k": 6, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def vectors(chunk_ids) -> dict[str, np.ndarray]:
    return {c.pk: c.vector for c in Chunk.objects.across_tenants().filter(pk__in=chunk_ids)}


@pytest.mark.django_db
def test_feedback_searches_again_with_the_query_moved_toward_the_best_documents(library, settings):
    settings.ANSWERS = {**settings.ANSWERS, "FEEDBACK_DOCUMENTS": 2, "FEEDBACK_QUERY_WEIGHT": 0.5}
    client = library.client(library.world.owner)
    plain, moved = search(client), search(client, feedback=True)
    assert "feedback" in moved["timings"]

    record = AuditRecord.objects.across_tenants().get(pk=moved["audit_id"])
    assert record.parameters["feedback"] is True
    sources = record.parameters["feedback_chunks"]
    # the best chunk of each of the first two documents of the plain (first-pass) ranking
    first_pass_documents = list(dict.fromkeys(r["document_id"] for r in plain["results"]))[:2]
    assert [Chunk.objects.across_tenants().get(pk=c).version.document_id for c in sources] == first_pass_documents

    query = get_embedder().encode([QUERY])[0]
    expected = 0.5 * query + 0.5 * np.mean(list(vectors(sources).values()), axis=0)
    expected /= np.linalg.norm(expected)
    by_id = vectors([r["chunk_id"] for r in moved["results"]])
    for result in moved["results"]:
        if result["scores"]["dense"] is not None:
            assert result["scores"]["dense"] == pytest.approx(float(by_id[result["chunk_id"]] @ expected), abs=1e-3)
    # the feedback documents' own chunks come closer to the moved query than to the plain one
    plain_dense = {r["chunk_id"]: r["scores"]["dense"] for r in plain["results"]}
    moved_dense = {r["chunk_id"]: r["scores"]["dense"] for r in moved["results"]}
    in_both = [c for c in sources if c in moved_dense and c in plain_dense]
    assert in_both and all(moved_dense[c] > plain_dense[c] + 0.02 for c in in_both)

    assert "feedback_chunks" not in AuditRecord.objects.across_tenants().get(pk=plain["audit_id"]).parameters


@pytest.mark.django_db
def test_a_document_the_caller_just_lost_does_not_steer_their_feedback(library, django_capture_on_commit_callbacks):
    finance = library.salaries.collection
    with django_capture_on_commit_callbacks(execute=True):
        document_services.grants_replace(
            obj=finance,
            grants=[Grant(library.bob.user, Level.VIEW), Grant(library.alice.user, Level.VIEW)],
            actor=Actor(user=None),
        )
    get_search_backend().refresh()
    # Alice loses the finance grant; the index update is queued after commit and not run: the
    # engine still lets her match the salary bands.
    with django_capture_on_commit_callbacks(execute=False):
        document_services.grants_replace(
            obj=finance, grants=[Grant(library.bob.user, Level.VIEW)], actor=Actor(user=None)
        )
    response = library.client(library.alice).post(
        "/api/v1/search", {"query": "salary bands for engineers and bonuses", "k": 6, "feedback": True}, format="json"
    )
    assert response.status_code == 200, response.content
    record = AuditRecord.objects.across_tenants().get(pk=response.json()["audit_id"])
    salaries = set(
        Chunk.objects.across_tenants().filter(version__document=library.salaries).values_list("pk", flat=True)
    )
    assert salaries & {c.chunk_id for c in record.chunks.all()}, (
        "the stale index should still have matched the salary bands"
    )
    sources = record.parameters["feedback_chunks"]
    assert sources and not salaries & set(sources)
    assert library.salaries.pk not in {r["document_id"] for r in response.json()["results"]}


@pytest.mark.django_db
def test_feedback_with_bm25_is_refused_with_what_to_send(library):
    response = library.client(library.world.owner).post(
        "/api/v1/search", {"query": QUERY, "mode": "bm25", "feedback": True}, format="json"
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "feedback_needs_vectors" and "dense or hybrid" in body["message"]
