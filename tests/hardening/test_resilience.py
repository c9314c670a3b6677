"""The pieces that keep the platform working through a broker or cache outage, on any profile
(the outage itself, with real services, is tests/hardening/test_faults.py)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.documents.models import DocumentVersion, IngestionStatus
from apps.ingestion import services as ingestion_services
from apps.tenants.models import Scope
from tests.conftest import key_client
from tests.documents.conftest import text_file


@pytest.mark.django_db
def test_the_sweep_finds_versions_whose_task_never_came_or_whose_worker_died(acme):
    client = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE]))
    collection = client.post("/api/v1/collections", {"name": "Policies"}, format="json").json()
    ids = [
        client.post(
            "/api/v1/documents",
            {"collection": collection["id"], "title": f"Policy {i}", "file": text_file(b"# P\n\nText %d.\n" % i)},
            format="multipart",
        ).json()["id"]
        for i in range(4)
    ]  # not committed here: no task ran, all pending
    pending_old, _pending_new, processing_old, ready = (
        DocumentVersion.objects.across_tenants().get(document_id=i) for i in ids
    )
    hour_ago = timezone.now() - timedelta(hours=1)
    DocumentVersion.objects.across_tenants().filter(pk=pending_old.pk).update(created_at=hour_ago)
    DocumentVersion.objects.across_tenants().filter(pk=processing_old.pk).update(
        created_at=hour_ago, status=IngestionStatus.PROCESSING, processing_started_at=hour_ago
    )
    DocumentVersion.objects.across_tenants().filter(pk=ready.pk).update(
        created_at=hour_ago, status=IngestionStatus.READY
    )

    stalled = ingestion_services.stalled_versions(
        pending_after=timedelta(minutes=2), processing_after=timedelta(minutes=30)
    )
    assert stalled == sorted(
        [pending_old.pk, processing_old.pk]
    )  # the fresh upload and the finished one are left alone


@pytest.mark.django_db
def test_requeued_versions_are_ingested(acme, settings):
    client = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE]))
    collection = client.post("/api/v1/collections", {"name": "Policies"}, format="json").json()
    document = client.post(
        "/api/v1/documents",
        {"collection": collection["id"], "title": "Policy", "file": text_file()},
        format="multipart",
    ).json()
    settings.INGESTION = {**settings.INGESTION, "REQUEUE_PENDING_AFTER": 0}
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    assert version.status == IngestionStatus.PENDING
    ingestion_services.requeue_stalled()  # tasks run in-process here: the sweep's task ingests at once
    version.refresh_from_db()
    assert version.status == IngestionStatus.READY


@pytest.fixture
def throttle_store(settings, monkeypatch):
    """Point the rate limits' windows somewhere (a fresh limiter, no outage remembered)."""
    from apps.core import throttling

    monkeypatch.setattr(throttling, "_store_down_until", 0.0)
    settings.API_THROTTLE_RATES = {"caller": "1/min", "tenant": "1/min"}

    def point_at(uri: str) -> None:
        settings.API_THROTTLE_STORAGE = uri

    return point_at


@pytest.mark.django_db
def test_rate_limits_fail_open_when_their_store_is_down(acme, throttle_store, caplog):
    """Windows live in Redis; with Redis unreachable the API answers without a limit rather than
    refusing every call (access control does not depend on them), and says so once, not per call."""
    throttle_store("redis://127.0.0.1:1/1")  # nothing listens on port 1
    client = key_client(acme.key())
    with caplog.at_level(logging.WARNING, logger="apps.core.throttling"):
        assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 200]
    assert caplog.text.count("rate limits not applied") == 1


@pytest.mark.django_db
def test_a_hung_rate_limit_store_does_not_hold_requests(acme, throttle_store):
    """A Redis that accepts connections and never answers (a stuck server, a half-open network):
    redis-py's default would hold each request 5 s; the limiter gives up within a fraction of a
    second, and later requests do not wait on it at all."""
    listener = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(listener.accept()), daemon=True).start()
    throttle_store(f"redis://127.0.0.1:{listener.getsockname()[1]}/1")
    client = key_client(acme.key())
    started = time.monotonic()
    try:
        assert [client.get("/api/v1/tenant").status_code for _ in range(3)] == [200, 200, 200]
        assert time.monotonic() - started < 3  # over 5 s with redis-py's default timeout
        assert held, "the limiter never reached the hung store"
    finally:
        listener.close()


def test_every_periodic_task_names_a_registered_task(settings):
    """Beat sends tasks by name: a typo would be a sweep that silently never runs."""
    from celery import current_app

    current_app.loader.import_default_modules()
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(current_app.tasks)
