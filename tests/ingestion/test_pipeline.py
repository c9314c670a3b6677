"""From upload to searchable chunks, in-process (the real worker path is tests/test_worker.py)."""

import numpy as np
import pytest

from apps.corpus.models import Chunk, Section
from apps.corpus.vectors import EMBEDDING_DIMS
from apps.documents.models import Document, DocumentVersion, IngestionStatus
from apps.ingestion import services as ingestion_services
from apps.search.backends import get_search_backend
from apps.tenants.models import Scope
from tests.conftest import key_client
from tests.documents.conftest import text_file
from tests.ingestion import samples

POLICY = "\n\n".join(
    f"## Rule {i}\n\n"
    + " ".join(f"Clause {i}.{j}: employees book travel number {i * 10 + j} through the portal." for j in range(12))
    for i in range(20)
).encode()


@pytest.fixture
def app(acme, django_capture_on_commit_callbacks):
    client = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.SEARCH]))
    collection = client.post("/api/v1/collections", {"name": "Policies"}, format="json").json()

    def upload(content: bytes, name: str = "policy.md", document: int | None = None):
        with django_capture_on_commit_callbacks(execute=True):
            if document is None:
                return client.post(
                    "/api/v1/documents",
                    {"collection": collection["id"], "title": "Travel policy", "file": text_file(content, name)},
                    format="multipart",
                ).json()
            return client.post(
                f"/api/v1/documents/{document}/versions", {"file": text_file(content, name)}, format="multipart"
            ).json()

    def publish(document: int, number: int):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/api/v1/documents/{document}/versions/{number}/publish")

    client.upload, client.publish = upload, publish
    return client


@pytest.mark.django_db
def test_upload_to_ready_to_searchable(app, acme):
    document = app.upload(POLICY)
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    assert version.status == IngestionStatus.READY, version.status_reason
    assert (
        version.progress_done
        == version.progress_total
        == Chunk.objects.across_tenants().filter(version=version).count()
        > 5
    )
    parsed_text = Section.objects.across_tenants().filter(version=version).order_by("ordinal")
    assert [s.heading for s in parsed_text][:2] == ["", "Rule 0"] or next(s.heading for s in parsed_text) == "Rule 0"
    for chunk in Chunk.objects.across_tenants().filter(version=version):
        section = chunk.section
        assert section.start_offset <= chunk.start_offset < chunk.end_offset <= section.end_offset
        assert (
            chunk.text
            == section.text[chunk.start_offset - section.start_offset : chunk.end_offset - section.start_offset]
        )
        assert chunk.vector.shape == (EMBEDDING_DIMS,) and abs(float((chunk.vector**2).sum()) - 1) < 1e-3
    backend = get_search_backend()
    backend.refresh()
    assert backend.fingerprints() == {}  # ready, not published: not in the index at all (docs/search.md)

    from apps.corpus.embedding import get_embedder
    from apps.search.types import Mode, SearchQuery

    text = "travel number 73 through the portal"
    query = SearchQuery(
        tenant_id=acme.tenant.pk,
        principals=(f"tenant:{acme.tenant.pk}:all",),
        text=text,
        vector=get_embedder().encode([text])[0],
        mode=Mode.HYBRID,
        k=3,
    )
    assert backend.search(query).hits == []  # so not found before publishing
    assert app.publish(document["id"], 1).status_code == 200
    backend.refresh()
    assert len(backend.fingerprints()) == Chunk.objects.across_tenants().filter(version=version).count()
    hits = backend.search(query).hits
    assert hits and "Clause 7.3" in hits[0].text


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content, name, reason",
    [
        (samples.encrypted_pdf(), "secret.pdf", "encrypted"),
        (b"<html><body><script>x()</script></body></html>", "empty.html", "No text"),
    ],
)
def test_bad_content_fails_the_version_and_the_published_one_keeps_serving(app, content, name, reason):
    document = app.upload(POLICY)
    app.publish(document["id"], 1)
    app.upload(content, name, document=document["id"])
    bad = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=2)
    assert bad.status == IngestionStatus.FAILED and reason in bad.status_reason
    assert not Chunk.objects.across_tenants().filter(version=bad).exists()
    assert Document.objects.across_tenants().get(pk=document["id"]).published_version.number == 1
    assert app.get(f"/api/v1/documents/{document['id']}/history").json()["results"][0]["action"] == "ingestion_failed"


@pytest.mark.django_db
def test_re_ingesting_is_idempotent(app):
    document = app.upload(POLICY)
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    before = dict(Chunk.objects.across_tenants().filter(version=version).values_list("id", "text_sha256"))
    fingerprints = get_search_backend().fingerprints()
    report = ingestion_services.ingest_version(version_id=version.pk)
    assert dict(Chunk.objects.across_tenants().filter(version=version).values_list("id", "text_sha256")) == before
    assert get_search_backend().fingerprints() == fingerprints
    assert report.reused == report.chunks and report.embedded == 0


@pytest.mark.django_db
def test_re_ingesting_into_fewer_chunks_leaves_none_of_the_old_ones_in_the_index(
    app, django_capture_on_commit_callbacks
):
    """A re-ingest with larger chunks makes fewer of them: the ids that are no more leave the index
    too (found by an outside review: they stayed until the next reconcile)."""
    from apps.documents.models import Collection
    from apps.search import projection

    document = app.upload(POLICY)
    assert app.publish(document["id"], 1).status_code == 200
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    collection = Collection.objects.across_tenants().filter(pk=version.document.collection_id)
    collection.update(chunk_size=16, chunk_overlap=0)
    ingestion_services.ingest_version(version_id=version.pk)
    before = Chunk.objects.across_tenants().filter(version=version).count()
    collection.update(chunk_size=254)
    with django_capture_on_commit_callbacks(execute=True):  # the index follows after commit
        ingestion_services.ingest_version(version_id=version.pk)
    after = Chunk.objects.across_tenants().filter(version=version).count()
    assert after < before
    backend = get_search_backend()
    backend.refresh()
    assert set(backend.fingerprints()) == set(projection.searchable_chunks_of().values_list("id", flat=True))


@pytest.mark.django_db
def test_a_small_edit_embeds_only_the_chunks_that_changed(app):
    document = app.upload(POLICY)
    edited = POLICY.replace(
        b"Clause 7.3: employees book travel number 73", b"Clause 7.3: staff reserve trips numbered 73"
    )
    app.upload(edited, document=document["id"])
    v2 = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=2)
    report = ingestion_services.ingest_version(version_id=v2.pk)  # again, to read the figures
    assert v2.status == IngestionStatus.READY
    total = Chunk.objects.across_tenants().filter(version=v2).count()
    changed = (
        Chunk.objects.across_tenants()
        .filter(version=v2)
        .exclude(
            text_sha256__in=Chunk.objects.across_tenants()
            .filter(version__document_id=document["id"], version__number=1)
            .values("text_sha256")
        )
        .count()
    )
    assert changed <= 0.10 * total, (changed, total)
    assert report.chunks == total


@pytest.mark.django_db
def test_chunks_are_embedded_with_their_documents_title_and_a_new_title_is_embedded_anew(app):
    """A chunk from the middle of a document is embedded as "title + text", so it keeps what it is
    about; a retitled document's chunks are not served the vectors of the old title."""
    from apps.corpus.embedding import get_embedder
    from apps.documents import services as document_services
    from apps.tenants.actors import Actor

    document = app.upload(POLICY)
    chunk = Chunk.objects.across_tenants().filter(version__document_id=document["id"]).order_by("ordinal").last()
    stored = np.frombuffer(bytes(chunk.embedding), dtype=np.float32)
    embedder = get_embedder()
    assert np.allclose(stored, embedder.encode([f"Travel policy\n{chunk.text}"])[0], atol=1e-5)
    assert not np.allclose(stored, embedder.encode([chunk.text])[0], atol=1e-3)
    assert chunk.embedding_model.endswith(":title")

    doc = Document.objects.across_tenants().get(pk=document["id"])
    document_services.document_update(document=doc, actor=Actor(None), title="Expenses handbook")
    report = ingestion_services.ingest_version(version_id=doc.versions.get(number=1).pk)
    assert report.embedded == report.chunks and report.reused == 0


@pytest.mark.django_db
def test_admins_see_failed_versions_and_retry_them(app, django_capture_on_commit_callbacks):
    from django.contrib.auth import get_user_model
    from django.test import Client

    document = app.upload(POLICY)
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    DocumentVersion.objects.across_tenants().filter(pk=version.pk).update(
        status=IngestionStatus.PROCESSING
    )  # a task that kept failing
    ingestion_services.version_fail(
        version_id=version.pk, reason="Ingestion stopped after 8 retries on temporarily unavailable services"
    )
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password="pw-for-tests-only"))
    page = admin.get("/admin/documents/documentversion/?status__exact=failed").content.decode()
    assert "temporarily unavailable services" in page
    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/admin/documents/documentversion/", {"action": "retry_ingestion", "_selected_action": [version.pk]})
    version.refresh_from_db()
    assert version.status == IngestionStatus.READY


@pytest.mark.django_db
def test_publish_when_ready(app, django_capture_on_commit_callbacks, acme):
    with django_capture_on_commit_callbacks(execute=True):
        created = app.post(
            "/api/v1/documents",
            {
                "collection": app.get("/api/v1/collections").json()["results"][0]["id"],
                "title": "Remote work",
                "file": text_file(b"# Remote work\n\nThree days a week.\n"),
                "publish_when_ready": True,
            },
            format="multipart",
        ).json()
    document = app.get(f"/api/v1/documents/{created['id']}").json()
    assert document["state"] == "published" and document["published_version"]["number"] == 1
    reader_key = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE]))
    assert reader_key.get(f"/api/v1/documents/{created['id']}").status_code == 200


@pytest.mark.django_db
def test_reembed_finds_chunks_of_another_model_and_embeds_them_again(app, capsys):
    from django.core.management import call_command

    from apps.corpus.embedding import get_embedder

    document = app.upload(POLICY)
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    ids = set(Chunk.objects.across_tenants().filter(version=version).values_list("id", flat=True))
    Chunk.objects.across_tenants().filter(version=version).update(embedding_model="an-older-model:0123")

    call_command("reembed", "--dry-run")
    assert "1 versions hold" in capsys.readouterr().out
    assert (
        not Chunk.objects.across_tenants().filter(version=version, embedding_model=get_embedder().identity).exists()
    )  # dry run: nothing

    call_command("reembed")
    chunks = Chunk.objects.across_tenants().filter(version=version)
    assert set(chunks.values_list("id", flat=True)) == ids  # the same chunks, now of the current model
    assert set(chunks.values_list("embedding_model", flat=True)) == {get_embedder().identity}
    version.refresh_from_db()
    assert version.status == IngestionStatus.READY
    call_command("reembed")
    assert "0 versions hold" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.django_db
def test_reembed_embeds_the_sentences_of_versions_ingested_without_them(app, capsys):
    from django.core.management import call_command

    from apps.corpus.embedding import get_embedder
    from apps.corpus.models import Sentence
    from apps.corpus.sentences import segmented_by

    document = app.upload(POLICY)
    version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
    sections = Section.objects.across_tenants().filter(version=version)
    count = Sentence.objects.across_tenants().filter(section__version=version).count()
    assert count > 100
    # As a version ingested before sentence vectors were stored looks:
    Sentence.objects.across_tenants().filter(section__version=version).delete()
    sections.update(sentences_model="")

    call_command("reembed")
    assert "0 versions hold 0 chunks" in (out := capsys.readouterr().out) and "1 more have sections" in out, out
    assert set(sections.values_list("sentences_model", flat=True)) == {segmented_by(get_embedder().identity)}
    assert Sentence.objects.across_tenants().filter(section__version=version).count() == count
    call_command("reembed")
    assert "0 more have sections" in capsys.readouterr().out
