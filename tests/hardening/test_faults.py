"""Fault injection on the full profile: the real services are stopped, frozen or killed while the
platform works, and what a user would notice is checked. (Elasticsearch frozen mid-ingest is in
tests/test_worker.py; injected index drift repaired by reconcile in tests/search/test_index_sync.py.)

- Elasticsearch frozen during a query: 503 with a clear message, and the call is still audited.
- Redis stopped: queries are still answered (rate limiting fails open); an upload is accepted
  and processed once Redis is back (the periodic sweep re-sends what could not be queued).
- A worker killed mid-ingest: nothing of the new version is visible, the published one keeps
  serving; the re-run completes, and running it again converges to the same chunks and index."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection

from tests.workers import PrivateRedis, Worker, task_queue, wait_for, worker_index  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.full_profile]

ES_PID_FILE = Path(os.environ.get("KP_STATE_DIR", "/var/lib/knowledge-platform")) / "es-logs" / "es.pid"
POLICY_V1 = (
    b"# Travel policy\n\nEmployees book economy class for flights under six hours.\n\n"
    b"Hotel costs are reimbursed up to 150 euros per night.\n"
)
# Long enough that embedding it takes several seconds on two cores: time to kill the worker.
POLICY_V2 = POLICY_V1 + b"\n".join(
    b"## Rule %d\n\n" % i
    + b" ".join(
        b"Clause %d.%d: employees file expense number %d within thirty days." % (i, j, i * 100 + j) for j in range(25)
    )
    + b"\n"
    for i in range(60)
)


def _tenant_app(slug: str):
    from apps.tenants import services as tenant_services
    from apps.tenants.models import Scope
    from tests.conftest import key_client

    tenant = tenant_services.tenant_create(slug=slug, name=slug.title())
    _, raw = tenant_services.api_key_create(
        tenant=tenant, name="app", scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.SEARCH, Scope.ASK]
    )
    app = key_client(raw)
    collection = app.post("/api/v1/collections", {"name": "Policies"}, format="json").json()
    return tenant, app, collection


def _published(document_id: int, number: int) -> bool:
    from apps.documents.models import Document

    document = Document.objects.across_tenants().select_related("published_version").get(pk=document_id)
    return document.published_version is not None and document.published_version.number == number


def _index_settled() -> bool:
    """The index holds exactly what the database says (the worker's syncs have all landed)."""
    from apps.search import services as search_services
    from apps.search.backends import get_search_backend

    get_search_backend().refresh()
    report = search_services.reconcile(repair=False)
    return report.missing == report.stale == report.orphaned == 0


def _upload_policy(app, collection: dict) -> dict:
    from tests.documents.conftest import text_file

    return app.post(
        "/api/v1/documents",
        {
            "collection": collection["id"],
            "title": "Travel policy",
            "publish_when_ready": True,
            "file": text_file(POLICY_V1),
        },
        format="multipart",
    ).json()


def _published_policy(worker: Worker):
    """A tenant app whose travel policy the worker has ingested and published."""
    _, app, collection = _tenant_app("acme")
    document = _upload_policy(app, collection)
    assert wait_for(lambda: _published(document["id"], 1), timeout=120), f"not ingested; worker log: {worker.log.name}"
    return app, collection, document


# --------------------------------------------------------------------------- Elasticsearch
@pytest.mark.django_db
def test_elasticsearch_frozen_during_a_query_is_a_503_and_audited(settings, django_capture_on_commit_callbacks):
    from apps.audit.models import AuditRecord, Outcome
    from apps.search.backends import reset_search_backends

    if not ES_PID_FILE.is_file():
        pytest.fail(f"no Elasticsearch pid file at {ES_PID_FILE} (bin/services start writes it)")
    settings.SEARCH = {**settings.SEARCH, "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "REQUEST_TIMEOUT": 2}}
    reset_search_backends()
    _, app, collection = _tenant_app("acme")
    with django_capture_on_commit_callbacks(execute=True):  # ingested in-process here
        _upload_policy(app, collection)
    from apps.search.backends import get_search_backend

    get_search_backend().refresh()
    query = {"query": "hotel costs per night", "mode": "hybrid"}
    assert app.post("/api/v1/search", query, format="json").json()["results"]

    pid = int(ES_PID_FILE.read_text().strip())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = app.post("/api/v1/search", query, format="json")
        waited = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert response.status_code == 503 and response.json()["code"] == "search_unavailable", response.content
    assert waited < 15, f"the caller waited {waited:.0f} s for a frozen engine"
    record = AuditRecord.objects.across_tenants().order_by("-pk").first()
    assert record.outcome == Outcome.FAILED and record.query == query["query"] and "search_unavailable" in record.error

    assert wait_for(lambda: app.post("/api/v1/search", query, format="json").status_code == 200, timeout=60), (
        "search did not recover after the engine came back"
    )


# --------------------------------------------------------------------------- Redis
@pytest.fixture
def private_redis(tmp_path):
    server = PrivateRedis(port=16379 + os.getpid() % 1000, directory=tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_redis_stopped_queries_still_answered_uploads_processed_once_it_returns(private_redis, worker_index, settings):
    from apps.documents.models import DocumentVersion, IngestionStatus
    from apps.ingestion import tasks as ingestion_tasks
    from tests.documents.conftest import text_file

    # The cache and the rate limits' windows in the private Redis too, as on a deployment (the test
    # settings keep both in memory).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.url.replace("/0", "/1"),
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }
    settings.API_THROTTLE_STORAGE = private_redis.url.replace("/0", "/1")
    settings.INGESTION = {**settings.INGESTION, "REQUEUE_PENDING_AFTER": 0}
    worker = Worker(f"kp-test-{uuid.uuid4().hex[:8]}", broker_url=private_redis.url)
    with task_queue(worker.queue, broker_url=private_redis.url):
        try:
            worker.wait_ready()
            app, collection, _ = _published_policy(worker)
            worker_index.refresh()

            private_redis.stop()
            assert not private_redis.ping()
            searched = app.post("/api/v1/search", {"query": "hotel costs per night"}, format="json")
            asked = app.post("/api/v1/ask", {"query": "How much is reimbursed for a hotel night?"}, format="json")
            assert searched.status_code == 200 and searched.json()["results"], searched.content
            assert asked.status_code == 200 and "150 euros" in asked.json()["answer"], asked.content
            started = time.monotonic()
            upload = app.post(
                "/api/v1/documents",
                {
                    "collection": collection["id"],
                    "title": "Security policy",
                    "publish_when_ready": True,
                    "file": text_file(b"# Security\n\nPasswords must be at least fourteen characters long.\n"),
                },
                format="multipart",
            )
            assert upload.status_code == 201, upload.content
            assert time.monotonic() - started < 10, "the upload hung on the stopped broker"
            version = DocumentVersion.objects.across_tenants().get(document_id=upload.json()["id"])
            assert version.status == IngestionStatus.PENDING  # accepted, recorded, waiting for the broker

            private_redis.start()
            if worker.process.poll() is not None:
                # Celery's worker may exit on a lost Redis connection ("Unrecoverable error" in
                # kombu's reconnect, celery/kombu#582 and kin); its supervisor restarts it
                # (docker/compose.yaml: restart: unless-stopped), as this does.
                worker.stop()
                worker = Worker(worker.queue, broker_url=private_redis.url)
            worker.wait_ready(timeout=90)
            assert ingestion_tasks.requeue_stalled() == [version.pk]  # what beat's next tick does
            assert wait_for(lambda: _published(upload.json()["id"], 1), timeout=120), (
                f"not processed; worker log: {worker.log.name}"
            )
            # Publishing queues one more task (the index sync of the published flag): wait for it too.
            assert wait_for(_index_settled, timeout=60), f"the index never caught up; worker log: {worker.log.name}"
            hits = app.post("/api/v1/search", {"query": "How long must a password be?"}, format="json").json()[
                "results"
            ]
            assert hits and hits[0]["document_id"] == upload.json()["id"]
        finally:
            worker.stop()


# --------------------------------------------------------------------------- a worker killed
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_ingest_leaves_nothing_half_visible_and_the_rerun_is_idempotent(
    private_redis, worker_index, settings
):
    from apps.corpus.models import Chunk
    from apps.documents.models import DocumentVersion, IngestionStatus
    from apps.ingestion import services as ingestion_services
    from apps.ingestion import tasks as ingestion_tasks
    from tests.documents.conftest import text_file

    assert connection.vendor == "postgresql"
    settings.INGESTION = {**settings.INGESTION, "REQUEUE_PROCESSING_AFTER": 0}
    worker = Worker(f"kp-test-{uuid.uuid4().hex[:8]}", broker_url=private_redis.url)
    replacement = None
    with task_queue(worker.queue, broker_url=private_redis.url):
        try:
            worker.wait_ready()
            app, _, document = _published_policy(worker)
            app.post(f"/api/v1/documents/{document['id']}/versions", {"file": text_file(POLICY_V2)}, format="multipart")
            v2 = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=2)
            DocumentVersion.objects.across_tenants().filter(pk=v2.pk).update(publish_when_ready=True)

            def embedding() -> bool:
                v = DocumentVersion.objects.across_tenants().get(pk=v2.pk)
                return v.status == IngestionStatus.PROCESSING and v.progress_total > 0

            assert wait_for(embedding, timeout=120, interval=0.05), f"v2 never started; worker log: {worker.log.name}"
            worker.kill()

            v2.refresh_from_db()
            assert (
                v2.status == IngestionStatus.PROCESSING
                and not Chunk.objects.across_tenants().filter(version=v2).exists()
            )
            worker_index.refresh()
            hits = app.post(
                "/api/v1/search", {"query": "expense number within thirty days", "k": 50}, format="json"
            ).json()["results"]
            v1 = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=1)
            assert hits and {h["version_id"] for h in hits} == {v1.pk}
            assert _published(document["id"], 1)  # the published version keeps serving

            replacement = Worker(f"{worker.queue}", broker_url=private_redis.url)
            replacement.wait_ready()
            assert v2.pk in ingestion_tasks.requeue_stalled()  # what beat's tick does once the task is overdue
            assert wait_for(lambda: _published(document["id"], 2), timeout=180), (
                f"re-run did not finish; log: {replacement.log.name}"
            )
            chunks = dict(Chunk.objects.across_tenants().filter(version=v2).values_list("id", "text_sha256"))

            assert wait_for(_index_settled, timeout=60)  # the worker's follow-up sync (v2 published) has landed
            fingerprints = worker_index.fingerprints()
            ingestion_services.ingest_version(version_id=v2.pk)  # once more: converges to the same state
            worker_index.refresh()
            assert dict(Chunk.objects.across_tenants().filter(version=v2).values_list("id", "text_sha256")) == chunks
            assert worker_index.fingerprints() == fingerprints
            hits = app.post(
                "/api/v1/search", {"query": "expense number within thirty days", "k": 50}, format="json"
            ).json()["results"]
            assert hits and {h["version_id"] for h in hits} == {v2.pk}
        finally:
            if worker.process.poll() is None:
                worker.stop()
            if replacement is not None:
                replacement.stop()
