"""A real Celery worker process, fed through Redis, keeps the Elasticsearch index in step with the
database (full profile). Transactional tests: the worker only sees committed rows."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from tests.workers import WORKER_PREFIX, Worker, task_queue, wait_for, worker_index  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.full_profile, pytest.mark.celery_worker]


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker):
    """One worker for the session, on a queue of its own, against the test database."""
    worker = Worker(f"kp-test-{uuid.uuid4().hex[:8]}")
    with task_queue(worker.queue):
        try:
            worker.wait_ready()
            yield worker.process
        finally:
            worker.stop()


@pytest.mark.django_db(transaction=True)
def test_the_worker_applies_lifecycle_changes_to_the_index(celery_worker_process, worker_index):
    from apps.documents import services as document_services
    from apps.documents.models import Document, IngestionStatus
    from apps.search import services as search_services
    from apps.tenants import services as tenant_services
    from apps.tenants.actors import Actor
    from tests.documents.conftest import text_file
    from tests.search.conftest import add_chunks

    assert connection.vendor == "postgresql"
    tenant = tenant_services.tenant_create(slug="acme", name="Acme")
    collection = document_services.collection_create(tenant=tenant, name="Policies")
    document = document_services.document_create(
        tenant=tenant, collection=collection, title="Policy", actor=Actor(None), file=text_file()
    )
    version = document.versions.get()
    add_chunks(version, ["Flights under six hours are booked in economy class."])
    document_services.version_set_status(version=version, status=IngestionStatus.READY)
    search_services.index_version(version_id=version.pk)

    def published_in_index() -> bool:
        worker_index.refresh()
        hits = worker_index.client.search(
            index=f"{WORKER_PREFIX}-chunks-t*", allow_no_indices=True, query={"term": {"published": True}}
        )
        return hits["hits"]["total"]["value"] == 1

    assert not published_in_index()
    document_services.version_publish(version=version, actor=Actor(None))  # commits, queues the sync
    assert wait_for(published_in_index), "the worker did not publish the chunks in the index"

    document_services.document_archive(
        document=Document.objects.across_tenants().get(pk=document.pk), actor=Actor(None)
    )
    assert wait_for(lambda: not published_in_index()), "the worker did not hide the archived document"


@pytest.mark.django_db(transaction=True)
def test_the_worker_ingests_an_upload_until_it_is_searchable(celery_worker_process, worker_index):
    from apps.corpus.models import Chunk
    from apps.documents import services as document_services
    from apps.documents.models import DocumentVersion, IngestionStatus
    from apps.tenants import services as tenant_services
    from apps.tenants.actors import Actor
    from tests.documents.conftest import text_file

    tenant = tenant_services.tenant_create(slug="acme", name="Acme")
    collection = document_services.collection_create(tenant=tenant, name="Policies")
    document = document_services.document_create(
        tenant=tenant,
        collection=collection,
        title="Policy",
        actor=Actor(None),
        publish_when_ready=True,
        file=text_file(b"# Travel\n\nFlights under six hours are booked in economy class.\n"),
    )  # committed: the upload's ingestion task goes to the worker through Redis
    version = document.versions.get()

    def ready() -> bool:
        return DocumentVersion.objects.across_tenants().get(pk=version.pk).status in (
            IngestionStatus.READY,
            IngestionStatus.FAILED,
        )

    assert wait_for(ready, timeout=120), "the worker did not ingest the version"
    version.refresh_from_db()
    assert version.status == IngestionStatus.READY, version.status_reason
    assert Chunk.objects.across_tenants().filter(version=version).count() >= 1

    def searchable() -> bool:
        worker_index.refresh()
        hits = worker_index.client.search(
            index=f"{WORKER_PREFIX}-chunks-t*", allow_no_indices=True, query={"term": {"published": True}}
        )
        return hits["hits"]["total"]["value"] >= 1

    assert wait_for(searchable), "the published version's chunks are not searchable"


ES_PID_FILE = Path(os.environ.get("KP_STATE_DIR", "/var/lib/knowledge-platform")) / "es-logs" / "es.pid"


@pytest.mark.django_db(transaction=True)
def test_the_search_engine_stalls_mid_ingest_the_task_retries_and_completes(celery_worker_process, worker_index):
    """Elasticsearch frozen (SIGSTOP) while the worker ingests: the index write times out, the task
    retries with backoff, and completes once the engine is back (SIGCONT)."""
    import signal

    from apps.documents import services as document_services
    from apps.documents.models import DocumentVersion, IngestionStatus
    from apps.tenants import services as tenant_services
    from apps.tenants.actors import Actor
    from tests.documents.conftest import text_file

    if not ES_PID_FILE.is_file():
        pytest.fail(f"no Elasticsearch pid file at {ES_PID_FILE} (bin/services start writes it)")
    pid = int(ES_PID_FILE.read_text().strip())
    tenant = tenant_services.tenant_create(slug="acme", name="Acme")
    collection = document_services.collection_create(tenant=tenant, name="Policies")
    os.kill(pid, signal.SIGSTOP)
    try:
        document = document_services.document_create(
            tenant=tenant,
            collection=collection,
            title="Policy",
            actor=Actor(None),
            publish_when_ready=True,
            file=text_file(b"# Travel\n\nFlights under six hours are booked in economy class.\n"),
        )
        version = document.versions.get()
        time.sleep(12)  # parse, chunk, embed, store: then the index write stalls and fails
        stalled = DocumentVersion.objects.across_tenants().get(pk=version.pk)
        assert stalled.status == IngestionStatus.PROCESSING, (stalled.status, stalled.status_reason)
    finally:
        os.kill(pid, signal.SIGCONT)

    def done() -> bool:
        return DocumentVersion.objects.across_tenants().get(pk=version.pk).status in (
            IngestionStatus.READY,
            IngestionStatus.FAILED,
        )

    assert wait_for(done, timeout=180), "the task did not complete after the engine came back"
    version.refresh_from_db()
    assert version.status == IngestionStatus.READY, version.status_reason

    def searchable() -> bool:
        worker_index.refresh()
        hits = worker_index.client.search(
            index=f"{WORKER_PREFIX}-chunks-t*", allow_no_indices=True, query={"term": {"published": True}}
        )
        return hits["hits"]["total"]["value"] >= 1

    assert wait_for(searchable), "the published chunks are not searchable after the retry"


@pytest.mark.django_db(transaction=True)
def test_upload_ingest_ask_and_the_audit_record_shows_the_chunks_and_their_exact_text(
    celery_worker_process, worker_index
):
    """End to end through the API: a tenant app uploads (the worker ingests and publishes), then
    asks; the compliance team's view of the record holds every chunk with its exact text."""
    from apps.corpus.models import Chunk
    from apps.documents.models import DocumentVersion, IngestionStatus
    from apps.tenants import services as tenant_services
    from apps.tenants.models import Role, Scope
    from tests.conftest import key_client, user_client
    from tests.documents.conftest import text_file

    tenant = tenant_services.tenant_create(slug="acme", name="Acme")
    _, raw = tenant_services.api_key_create(
        tenant=tenant, name="app", scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.ASK]
    )
    app = key_client(raw)
    collection = app.post("/api/v1/collections", {"name": "Policies"}, format="json").json()
    policy = (
        b"# Travel policy\n\nEmployees book economy class for flights under six hours.\n\n"
        b"Hotel costs are reimbursed up to 150 euros per night.\n"
    )
    document = app.post(
        "/api/v1/documents",
        {
            "collection": collection["id"],
            "title": "Travel policy",
            "publish_when_ready": True,
            "file": text_file(policy),
        },
        format="multipart",
    ).json()

    def published() -> bool:
        version = DocumentVersion.objects.across_tenants().filter(document_id=document["id"]).first()
        return (
            version is not None
            and version.status == IngestionStatus.READY
            and version.document.published_version_id == version.pk
        )

    assert wait_for(published, timeout=120), "the worker did not ingest and publish the upload"

    def answered():
        worker_index.refresh()
        body = app.post("/api/v1/ask", {"query": "How much is reimbursed for a hotel night?"}, format="json").json()
        return body if body.get("grounded") else None

    assert wait_for(answered), "the published version never answered"
    body = answered()
    assert "150 euros per night" in body["answer"] and body["citations"]

    auditor = tenant_services.member_create(tenant=tenant, username="carol", role=Role.COMPLIANCE)
    record = user_client(auditor, "acme").get(f"/api/v1/audit/records/{body['audit_id']}").json()
    assert record["answer"] == body["answer"] and record["kind"] == "ask"
    assert [c["chunk_id"] for c in record["chunks"] if c["shown"]] == [s["chunk_id"] for s in body["sources"]]
    for chunk in record["chunks"]:
        assert chunk["text"] == Chunk.objects.across_tenants().get(pk=chunk["chunk_id"]).text and chunk["text_matches"]
    cited = next(c for c in record["chunks"] if c["cited"])
    assert "150 euros per night" in cited["text"]
