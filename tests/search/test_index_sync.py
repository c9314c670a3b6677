"""The index follows the database: publish, archive, grants, purge reach it by id; reconcile finds
and repairs drift; rebuild comes from the database without re-embedding."""

import pytest

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.access.principals import context_principals
from apps.corpus.models import Chunk, Section
from apps.documents import services as document_services
from apps.documents.models import Document
from apps.search import services as search_services
from apps.search.backends import get_search_backend
from apps.search.types import ChunkRef, Mode, SearchQuery
from apps.tenants.actors import Actor
from apps.tenants.resolution import resolve_tenant_context
from tests.search.conftest import add_chunks, vector_for


def found(membership, text="economy class flights", tenant=None) -> list[str]:
    backend = get_search_backend()
    backend.refresh()
    context = resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=(tenant or membership.tenant).slug)
    query = SearchQuery(
        tenant_id=context.tenant.pk,
        principals=tuple(context_principals(context)),
        text=text,
        vector=vector_for(text),
        mode=Mode.HYBRID,
        k=10,
    )
    return [hit.chunk_id for hit in backend.search(query).hits]


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run the after-commit sync tasks (eager here) the way a committed request would."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


@pytest.mark.django_db
def test_publish_makes_chunks_searchable_for_readers(acme, on_commit, published_document):
    assert found(acme.reader) == []  # published inside the fixture without running its on-commit sync
    on_commit(search_services.sync_document, document_id=published_document.pk)
    assert found(acme.reader)[0].endswith("-c0")


@pytest.mark.django_db
def test_lifecycle_changes_reach_the_index(acme, on_commit, published_document):
    search_services.sync_document(document_id=published_document.pk)
    assert found(acme.reader)
    on_commit(document_services.document_archive, document=published_document, actor=Actor(None))
    assert found(acme.reader) == []
    on_commit(
        document_services.document_unarchive,
        document=Document.objects.across_tenants().get(pk=published_document.pk),
        actor=Actor(None),
    )
    assert found(acme.reader)


@pytest.mark.django_db
def test_grant_changes_reach_the_index(acme, on_commit, published_document):
    search_services.sync_document(document_id=published_document.pk)
    assert found(acme.reader)
    on_commit(
        document_services.grants_replace,
        obj=published_document,
        grants=[Grant(acme.owner.user, Level.VIEW)],
        actor=Actor(None),
    )
    assert found(acme.reader) == []
    on_commit(
        document_services.document_grants_inherit,
        document=Document.objects.across_tenants().get(pk=published_document.pk),
        actor=Actor(None),
    )
    assert found(acme.reader)
    on_commit(document_services.grants_replace, obj=published_document.collection, grants=[], actor=Actor(None))
    assert found(acme.reader) == []
    assert found(acme.owner)  # the owner reads the whole tenant


@pytest.mark.django_db
def test_a_new_version_replaces_the_old_one_in_results(acme, on_commit, published_document):
    from apps.documents.models import IngestionStatus
    from tests.documents.conftest import text_file

    search_services.sync_document(document_id=published_document.pk)
    v1_hits = found(acme.reader)
    v2 = document_services.version_upload(document=published_document, file=text_file(b"# v2\n"), actor=Actor(None))
    add_chunks(v2, ["Flights under eight hours are booked in economy class."])
    document_services.version_set_status(version=v2, status=IngestionStatus.READY)
    search_services.index_version(version_id=v2.pk)
    assert found(acme.reader) == v1_hits  # v2 ready but not published: v1 keeps serving
    # and v2 is not in the index at all: a draft never counts in the statistics scores come from
    assert set(get_search_backend().fingerprints()) == set(v1_hits)
    on_commit(document_services.version_publish, version=v2, actor=Actor(None))
    assert found(acme.reader) == [f"v{v2.pk}-c0"]
    assert set(get_search_backend().fingerprints()) == {f"v{v2.pk}-c0"}


@pytest.mark.django_db
def test_purge_removes_chunks_from_database_and_index(acme, on_commit, published_document):
    search_services.sync_document(document_id=published_document.pk)
    document = Document.objects.across_tenants().get(pk=published_document.pk)
    on_commit(document_services.document_delete, document=document, actor=Actor(None))
    on_commit(
        document_services.document_purge,
        document=Document.objects.across_tenants().get(pk=document.pk),
        actor=Actor(None),
    )
    assert found(acme.owner) == []
    assert get_search_backend().fingerprints() == {}
    # The corpus forgot the text and vectors in the purge's own transaction.
    assert not Chunk.objects.across_tenants().filter(version__document=document).exists()
    assert not Section.objects.across_tenants().filter(version__document=document).exists()


@pytest.mark.django_db
def test_a_purge_that_fails_after_the_corpus_forgot_keeps_the_corpus(acme, on_commit, published_document, monkeypatch):
    """The corpus forgets inside the purge's transaction: if the purge fails later, nothing is lost."""
    document = Document.objects.across_tenants().get(pk=published_document.pk)
    on_commit(document_services.document_delete, document=document, actor=Actor(None))
    chunks = Chunk.objects.across_tenants().filter(version__document=document).count()
    assert chunks > 0

    def broken(*args, **kwargs):
        raise RuntimeError("the history write failed")

    monkeypatch.setattr(document_services, "_event", broken)
    with pytest.raises(RuntimeError):
        on_commit(
            document_services.document_purge,
            document=Document.objects.across_tenants().get(pk=document.pk),
            actor=Actor(None),
        )
    assert Chunk.objects.across_tenants().filter(version__document=document).count() == chunks
    assert Document.objects.across_tenants().get(pk=document.pk).purged_at is None


@pytest.mark.django_db
def test_reconcile_finds_and_repairs_drift(acme, published_document):
    backend = get_search_backend()
    search_services.sync_document(document_id=published_document.pk)
    version = published_document.versions.get()
    # drift of all three kinds: one chunk deleted from the index, one made stale, one orphan
    backend.delete_chunks([ChunkRef(f"v{version.pk}-c0", acme.tenant.pk)])
    stale = next(search_services.projection.project(search_services.projection.chunks_of(id=f"v{version.pk}-c1")))
    backend.index_chunks([type(stale)(**{**stale.__dict__, "principals": ("user:0",)})])
    orphan = type(stale)(**{**stale.__dict__, "chunk_id": "v999999-c0"})
    backend.index_chunks([orphan])
    backend.refresh()

    report = search_services.reconcile(repair=False)
    assert (report.missing, report.stale, report.orphaned, report.in_database) == (1, 1, 1, 2)
    report = search_services.reconcile()
    assert (report.missing, report.stale, report.orphaned) == (1, 1, 1)
    assert search_services.reconcile(repair=False).missing == search_services.reconcile(repair=False).stale == 0
    assert set(backend.fingerprints()) == {f"v{version.pk}-c0", f"v{version.pk}-c1"}


@pytest.mark.django_db
def test_rebuild_from_the_database(acme, published_document):
    search_services.sync_document(document_id=published_document.pk)
    report = search_services.rebuild()
    assert report.chunks == 2
    assert found(acme.reader)


@pytest.mark.django_db
def test_a_change_committed_while_a_rebuild_streams_is_in_the_index_after_it(
    acme, published_document, on_commit, monkeypatch
):
    """The rebuild reads the database as it streams; an archive committed meanwhile reaches the old
    index, which the swap then drops. The reconcile that follows every rebuild makes it good."""
    search_services.sync_document(document_id=published_document.pk)
    streamed = search_services.projection.all_chunks
    archived = []

    def all_chunks():
        yield from streamed()
        if not archived:  # once: the reconcile after the rebuild streams again
            archived.append(True)
            on_commit(
                document_services.document_archive,
                document=Document.objects.across_tenants().get(pk=published_document.pk),
                actor=Actor(None),
            )

    monkeypatch.setattr(search_services.projection, "all_chunks", all_chunks)
    report = search_services.rebuild()
    assert report.chunks == 2 and archived
    assert found(acme.owner) == [] and get_search_backend().fingerprints() == {}


@pytest.mark.full_profile
@pytest.mark.django_db(transaction=True)
def test_a_sync_that_read_an_older_state_never_writes_after_a_newer_one(acme, monkeypatch):
    """Two workers: the publish's sync reads "published" and writes late; meanwhile the document is
    archived and the archive's sync runs. The document row lock held across the read and the write
    makes the archive wait, so the last write to the index is the archived state (found by an
    outside review: the published chunks came back until the next reconcile)."""
    import threading
    import time

    from django.db import connection

    from apps.access.levels import Level
    from apps.documents.models import IngestionStatus
    from apps.tenants.models import TenantGroup
    from tests.documents.conftest import text_file

    # Committed for real (a transactional test): built without the upload's own ingestion.
    collection = document_services.collection_create(tenant=acme.tenant, name="Policies")
    everyone = TenantGroup.objects.get(tenant=acme.tenant, is_everyone=True)
    document_services.grants_replace(obj=collection, grants=[Grant(everyone.auth_group, Level.VIEW)], actor=Actor(None))
    published_document = document_services.document_create(
        tenant=acme.tenant,
        collection=collection,
        title="Travel policy",
        actor=Actor(None),
        file=text_file(),
        ingest=False,
    )
    version = published_document.versions.get()
    add_chunks(version, ["Flights under six hours are booked in economy class.", "Hotels are booked at the city rate."])
    document_services.version_set_status(version=version, status=IngestionStatus.READY)
    document_services.version_publish(version=version, actor=Actor(None))
    search_services.sync_document(document_id=published_document.pk)
    get_search_backend().refresh()
    assert len(get_search_backend().fingerprints()) == 2
    backend = get_search_backend()
    real = backend.index_chunks
    has_read = threading.Event()

    def late(chunks):
        if threading.current_thread() is not threading.main_thread():
            has_read.set()
            time.sleep(1.0)
        real(chunks)

    monkeypatch.setattr(backend, "index_chunks", late)

    def first_sync():
        try:
            search_services.sync_document(document_id=published_document.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=first_sync)
    worker.start()
    assert has_read.wait(10)
    document_services.document_archive(
        document=Document.objects.across_tenants().get(pk=published_document.pk), actor=Actor(None)
    )
    search_services.sync_document(document_id=published_document.pk)  # the archive's own sync
    worker.join(10)
    backend.refresh()
    assert backend.fingerprints() == {}
