"""Bulk ingestion (apps.ingestion.bulk, `manage.py ingest_bulk`): a folder or a BEIR corpus into a
collection, and what a second run of the same import does."""

import json

import pytest
from django.core.management import CommandError, call_command

from apps.core.exceptions import ApplicationError
from apps.corpus.models import Chunk
from apps.documents import services as document_services
from apps.documents.models import Document, IngestionStatus
from apps.ingestion import bulk

TRAVEL = "# Travel\n\nEmployees book flights through the travel portal at least two weeks ahead.\n"
EXPENSES = "Expense claims are filed within thirty days of the trip, with every receipt attached.\n"


@pytest.fixture
def handbook(tmp_path):
    folder = tmp_path / "handbook"
    (folder / "policies").mkdir(parents=True)
    (folder / "policies" / "travel-policy.md").write_text(TRAVEL)
    (folder / "expenses.txt").write_text(EXPENSES)
    (folder / "empty.txt").write_text("")  # refused by the upload checks
    (folder / "notes.odt").write_bytes(b"not a supported kind")  # not picked up at all
    return folder


@pytest.fixture
def collection(acme):
    return document_services.collection_create(tenant=acme.tenant, name="Handbook")


def ingest(collection, source, django_capture_on_commit_callbacks, **options):
    with django_capture_on_commit_callbacks(execute=True):
        return bulk.ingest_items(collection=collection, items=bulk.source_items(source), progress=False, **options)


@pytest.mark.django_db
def test_a_folder_becomes_documents_keyed_by_their_path(collection, handbook, django_capture_on_commit_callbacks):
    report = ingest(collection, handbook, django_capture_on_commit_callbacks, publish=True)
    assert (report.documents, report.refused, report.failed, report.skipped) == (2, 1, 0, 0)
    assert report.chunks == Chunk.objects.across_tenants().filter(version__document__collection=collection).count() > 0
    assert report.problems == ["refused empty.txt: 'empty.txt' is empty."]
    documents = {d.external_id: d for d in Document.objects.across_tenants().filter(collection=collection)}
    assert set(documents) == {"policies/travel-policy.md", "expenses.txt"}
    assert documents["policies/travel-policy.md"].title == "travel policy"
    assert all(d.published_version is not None for d in documents.values())  # --publish: each one once ready


@pytest.mark.django_db
def test_running_again_skips_what_is_unchanged_and_versions_what_changed(
    collection, handbook, django_capture_on_commit_callbacks
):
    ingest(collection, handbook, django_capture_on_commit_callbacks)  # drafts
    again = ingest(collection, handbook, django_capture_on_commit_callbacks, publish=True)
    assert (again.documents, again.skipped, again.published, again.refused) == (0, 2, 2, 1)
    assert not Document.objects.across_tenants().filter(collection=collection, published_version__isnull=True).exists()
    assert "skipped 2 unchanged, of which 2 published now" in again.summary()

    (handbook / "expenses.txt").write_text(EXPENSES + "Claims above 500 euros need a manager's approval.\n")
    changed = ingest(collection, handbook, django_capture_on_commit_callbacks, publish=True)
    assert (changed.documents, changed.skipped) == (1, 1)
    expenses = Document.objects.across_tenants().get(collection=collection, external_id="expenses.txt")
    assert list(expenses.versions.order_by("number").values_list("number", "status")) == [
        (1, IngestionStatus.READY),
        (2, IngestionStatus.READY),
    ]
    assert expenses.published_version.number == 2


@pytest.mark.django_db
def test_a_version_left_half_done_is_ingested_again_not_uploaded_again(
    collection, handbook, django_capture_on_commit_callbacks
):
    ingest(collection, handbook, django_capture_on_commit_callbacks)
    travel = Document.objects.across_tenants().get(collection=collection, external_id="policies/travel-policy.md")
    travel.versions.update(status=IngestionStatus.PROCESSING)  # as an interrupted run leaves it
    Chunk.objects.across_tenants().filter(version__document=travel).delete()

    resumed = ingest(collection, handbook, django_capture_on_commit_callbacks)
    assert (resumed.documents, resumed.skipped) == (1, 1)
    version = travel.versions.get()  # still one version
    assert version.status == IngestionStatus.READY and version.chunks.exists()


@pytest.mark.django_db
def test_a_beir_corpus_is_read_line_by_line_and_a_bad_line_is_named(
    collection, tmp_path, django_capture_on_commit_callbacks
):
    corpus = tmp_path / "corpus.jsonl"
    rows = [
        {"_id": "d1", "title": "Boundary layers", "text": "Laminar flow over a flat plate."},
        {"_id": 2, "title": "", "text": "Shock waves at hypersonic speed."},
    ]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows) + "\n")
    report = ingest(collection, corpus, django_capture_on_commit_callbacks, limit=5)
    assert report.documents == 2
    titles = dict(Document.objects.across_tenants().filter(collection=collection).values_list("external_id", "title"))
    assert titles == {"d1": "Boundary layers", "2": "Document 2"}
    first = Document.objects.across_tenants().get(collection=collection, external_id="d1").versions.get()
    assert first.file.open("rb").read().decode() == "Boundary layers\n\nLaminar flow over a flat plate."

    corpus.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ApplicationError, match=r"corpus.jsonl line 2 is not JSON"):
        ingest(collection, corpus, django_capture_on_commit_callbacks)


@pytest.mark.django_db
def test_the_command_reports_its_figures_and_refuses_a_bad_source(acme, handbook, tmp_path, capsys):
    call_command("ingest_bulk", str(handbook), tenant=acme.tenant.slug, collection="Handbook")
    out = capsys.readouterr().out
    assert "2 documents" in out and "1 refused" in out and "documents/s" in out
    assert (
        Document.objects.across_tenants().filter(collection__name="Handbook", collection__tenant=acme.tenant).count()
        == 2
    )

    (tmp_path / "corpus.csv").write_text("_id,text\n")
    with pytest.raises(CommandError, match=r"neither a folder nor a .jsonl corpus"):
        call_command("ingest_bulk", str(tmp_path / "corpus.csv"), tenant=acme.tenant.slug, collection="Handbook")
    with pytest.raises(CommandError, match="No tenant 'nobody'"):
        call_command("ingest_bulk", str(handbook), tenant="nobody", collection="Handbook")
