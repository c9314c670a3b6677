"""events (apps/core/events.py) replacing direct pushes to search and ingestion.

Rolled-back transactions must deliver nothing after commit and keep no immediate side effect; a
failing after-commit subscriber must not cost the others their event; ready() twice must not
double subscriptions; a purge of many versions forgets every chunk and section in its own
transaction and queues every index deletion after commit; the grant services announce what the
index needs and record the history the old access services did."""

from __future__ import annotations

import contextlib
import logging

import pytest
from django.apps import apps as django_apps
from django.db import transaction

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.core.events import Registry
from apps.corpus import events as corpus_events
from apps.corpus.models import Chunk, Section, Sentence
from apps.documents import events as document_events
from apps.documents import services as document_services
from apps.documents.models import Document, DocumentEvent, DocumentState, IngestionStatus
from apps.search import sync as search_sync
from apps.tenants.actors import Actor
from tests.documents.conftest import text_file
from tests.search.conftest import add_chunks

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """Every task the search and ingestion subscribers queue, instead of running it."""
    from apps.ingestion import sync as ingestion_sync

    sent = []
    monkeypatch.setattr(search_sync, "enqueue", lambda task, *args: sent.append((task.name, args)))
    monkeypatch.setattr(ingestion_sync, "enqueue", lambda task, *args: sent.append((task.name, args)))
    return sent


def _published(acme, versions=1, chunks=2):
    actor = Actor(None)
    collection = document_services.collection_create(tenant=acme.tenant, name="c")
    document = document_services.document_create(tenant=acme.tenant, collection=collection, title="d", actor=actor)
    made = []
    for n in range(versions):
        version = document_services.version_upload(
            document=document, file=text_file(f"# v{n}\n".encode()), actor=actor, ingest=False
        )
        add_chunks(version, [f"text {n} {i}" for i in range(chunks)])
        from apps.corpus.models import Section as S

        S.objects.create(version=version, ordinal=0, text="s", start_offset=0, end_offset=1)
        document_services.version_set_status(version=version, status=IngestionStatus.READY)
        made.append(version)
    document = document_services.version_publish(version=made[-1], actor=actor)
    return document, made


def test_rolled_back_announcements_deliver_nothing(acme, queued, django_capture_on_commit_callbacks):
    document, _ = _published(acme)
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        document_services.document_archive(document=document, actor=Actor(None))
        document_services.grants_replace(obj=document, grants=[], actor=Actor(None))
        document_services.grants_replace(obj=document.collection, grants=[], actor=Actor(None))
        document_services.version_upload(document=document, file=text_file(b"# x\n"), actor=Actor(None))
        raise RuntimeError("the request failed after the services ran")
    assert callbacks == []
    assert queued == []
    # and nested: an inner savepoint rolled back, the outer transaction committed
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        try:
            with transaction.atomic():
                document_services.document_archive(
                    document=Document.objects.across_tenants().get(pk=document.pk), actor=Actor(None)
                )
                raise RuntimeError
        except RuntimeError:
            pass
    assert queued == []
    assert Document.objects.across_tenants().get(pk=document.pk).state == DocumentState.PUBLISHED


def test_committed_announcements_reach_their_subscribers(acme, queued, django_capture_on_commit_callbacks):
    document, _ = _published(acme)
    with django_capture_on_commit_callbacks(execute=True):
        document_services.grants_replace(obj=document, grants=[], actor=Actor(None))
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_grants_inherit(document=document, actor=Actor(None))
    with django_capture_on_commit_callbacks(execute=True):
        document_services.grants_replace(obj=document.collection, grants=[], actor=Actor(None))
    with django_capture_on_commit_callbacks(execute=True):
        version = document_services.version_upload(document=document, file=text_file(b"# y\n"), actor=Actor(None))
    document_services.version_set_status(version=version, status=IngestionStatus.FAILED, reason="x")
    with django_capture_on_commit_callbacks(execute=True):
        assert document_services.version_requeue(version=version)
    assert queued == [
        ("search.sync_document", (document.pk,)),
        ("search.sync_document", (document.pk,)),
        ("search.sync_collection", (document.collection_id,)),
        ("ingestion.ingest_version", (version.pk,)),
        ("ingestion.ingest_version", (version.pk,)),
    ]


def test_grant_services_record_history_like_the_old_ones(acme, django_capture_on_commit_callbacks):
    document, _ = _published(acme)
    owner = Actor(acme.owner.user)
    document_services.grants_replace(obj=document, grants=[Grant(acme.reader.user, Level.VIEW)], actor=owner)
    document.refresh_from_db()
    assert document.has_own_grants is True
    event = (
        DocumentEvent.objects.across_tenants()
        .filter(document=document, action=DocumentEvent.Action.GRANTS_CHANGED)
        .latest("pk")
    )
    assert event.details == {"grants": [{"user": acme.reader.user.pk, "level": "view"}]}
    assert event.actor == acme.owner.user
    document_services.grants_replace(obj=document, grants=[], actor=owner)  # an empty own set
    document.refresh_from_db()
    assert document.has_own_grants is True
    document_services.document_grants_inherit(document=document, actor=owner)
    document.refresh_from_db()
    assert document.has_own_grants is False
    event = (
        DocumentEvent.objects.across_tenants()
        .filter(document=document, action=DocumentEvent.Action.GRANTS_CHANGED)
        .latest("pk")
    )
    assert event.details == {"grants": "inherited from collection"}


def test_a_failing_after_commit_subscriber_costs_the_others_nothing(caplog, django_capture_on_commit_callbacks):
    registry = Registry("test")
    got = []

    class Happened:
        pass

    def broken(event):
        raise RuntimeError("boom")

    registry.subscribe(Happened, broken)
    registry.subscribe(Happened, got.append)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        registry.announce(Happened())
    assert len(got) == 1
    assert "subscriber" in caplog.text and "failed" in caplog.text


def test_an_immediate_subscriber_that_raises_rolls_the_announcer_back(acme, monkeypatch):
    document, _ = _published(acme)
    document_services.document_delete(document=document, actor=Actor(None))
    before = Chunk.objects.across_tenants().filter(version__document=document).count()

    from apps.corpus import services as corpus_services

    real = corpus_services.versions_forget

    def forget_then_fail(**kwargs):
        real(**kwargs)
        raise RuntimeError("the corpus failed half-way")

    monkeypatch.setattr(corpus_services, "versions_forget", forget_then_fail)
    with pytest.raises(RuntimeError):
        document_services.document_purge(
            document=Document.objects.across_tenants().get(pk=document.pk), actor=Actor(None)
        )
    assert Chunk.objects.across_tenants().filter(version__document=document).count() == before
    assert Document.objects.across_tenants().get(pk=document.pk).purged_at is None


def test_ready_twice_does_not_double_subscriptions():
    counts = {
        t: len(document_events.registry.subscribers(t))
        for t in (
            document_events.DocumentChanged,
            document_events.CollectionGrantsChanged,
            document_events.DocumentPurged,
            document_events.VersionUploaded,
            document_events.VersionRequeued,
        )
    }
    corpus_counts = {
        t: len(corpus_events.registry.subscribers(t)) for t in (corpus_events.ChunksStored, corpus_events.ChunksRemoved)
    }
    assert all(counts.values()) and all(corpus_counts.values())
    for label in ("corpus", "ingestion", "search"):
        django_apps.get_app_config(label).ready()
        django_apps.get_app_config(label).ready()
    assert {t: len(document_events.registry.subscribers(t)) for t in counts} == counts
    assert {t: len(corpus_events.registry.subscribers(t)) for t in corpus_counts} == corpus_counts


def test_purge_of_many_versions_forgets_everything_and_queues_every_deletion(
    acme, queued, django_capture_on_commit_callbacks
):
    document, _ = _published(acme, versions=6, chunks=3)
    other, _ = _published_other(acme)
    ids = set(Chunk.objects.across_tenants().filter(version__document=document).values_list("id", flat=True))
    assert len(ids) == 18
    document_services.document_delete(document=document, actor=Actor(None))
    queued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        document_services.document_purge(
            document=Document.objects.across_tenants().get(pk=document.pk), actor=Actor(None)
        )
    assert not Chunk.objects.across_tenants().filter(version__document=document).exists()
    assert not Section.objects.across_tenants().filter(version__document=document).exists()
    deleted = {chunk_id for name, (refs,) in queued if name == "search.delete_chunks" for chunk_id, _ in refs}
    assert deleted == ids
    assert Chunk.objects.across_tenants().filter(version__document=other).count() == 2  # nobody else's


def _published_other(acme):
    actor = Actor(None)
    collection = document_services.collection_create(tenant=acme.tenant, name="other")
    document = document_services.document_create(tenant=acme.tenant, collection=collection, title="o", actor=actor)
    version = document_services.version_upload(document=document, file=text_file(b"# o\n"), actor=actor, ingest=False)
    add_chunks(version, ["other a", "other b"])
    return document, version


def test_a_purge_during_an_ingestion_leaves_no_chunk_behind(acme, monkeypatch):
    """A version being ingested (its file already read, the model embedding it) while its document
    is deleted and purged: once the purge has committed, ingestion's store step (which locks the
    documents as a purge does, then reads the versions again) must not write the purged version's
    chunks back: a committed purge leaves no text or vector behind."""
    from apps.ingestion import services as ingestion_services

    actor = Actor(None)
    collection = document_services.collection_create(tenant=acme.tenant, name="c")
    document = document_services.document_create(tenant=acme.tenant, collection=collection, title="d", actor=actor)
    version = document_services.version_upload(
        document=document, file=text_file(b"# Policy\n\nSecret text that must be purged.\n"), actor=actor, ingest=False
    )

    class FakeEmbedder:
        model_path = None
        identity = "fake"

        def passage_input(self, title, text):
            return text

    def embed_while_purged(texts, **kwargs):
        # meanwhile, in another request: delete and purge the document (once: the chunks' vectors
        # and the sentences' are asked for in turn)
        if Document.objects.across_tenants().get(pk=document.pk).purged_at is None:
            document_services.document_delete(
                document=Document.objects.across_tenants().get(pk=document.pk), actor=actor
            )
            document_services.document_purge(
                document=Document.objects.across_tenants().get(pk=document.pk), actor=actor
            )
        import numpy as np

        from apps.corpus.vectors import EMBEDDING_DIMS

        return np.ones((len(texts), EMBEDDING_DIMS), dtype=np.float32), np.zeros(len(texts), dtype=bool)

    monkeypatch.setattr(ingestion_services, "embed_with_reuse", embed_while_purged)
    monkeypatch.setattr(
        ingestion_services,
        "_plans",
        lambda parsed, version, embedder: [
            type("P", (), {"start": 0, "end": len(parsed.text), "section": 0, "ordinal": 0, "token_count": 5})()
        ],
    )
    with contextlib.suppress(Exception):  # a refusal is a fine outcome; chunks left behind are not
        ingestion_services.ingest_versions(version_ids=[version.pk], embedder=FakeEmbedder())
    assert Document.objects.across_tenants().get(pk=document.pk).purged_at is not None
    assert not Chunk.objects.across_tenants().filter(version__document=document).exists(), (
        "purged text and vectors came back"
    )
    assert not Section.objects.across_tenants().filter(version__document=document).exists()
    assert not Sentence.objects.across_tenants().filter(section__version__document=document).exists()
