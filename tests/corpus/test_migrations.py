"""Section and Chunk moved from the ingestion app to corpus without moving a row: corpus/0001 and
ingestion/0003 change Django's state only, corpus/0002 renames the tables in place. Run here on
the test database of the profile (SQLite or PostgreSQL): from the schema before the move (corpus
unmigrated, the tables still ingestion_*) forward to the latest."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.corpus.models import Chunk, Section
from apps.documents import services as document_services
from apps.tenants.actors import Actor
from tests.documents.conftest import text_file
from tests.search.conftest import add_chunks

CONSTRAINTS = {"section_ordinal_unique_in_version", "chunk_ordinal_unique_in_version", "chunk_embedding_reuse"}


def _rows(section_model=Section, chunk_model=Chunk):
    """Every column of every row, by primary key."""
    return tuple(
        [
            {**row, "embedding": bytes(row["embedding"])} if "embedding" in row else row
            for row in model._base_manager.order_by("pk").values()
        ]
        for model in (section_model, chunk_model)
    )


def _migrate(targets):
    MigrationExecutor(connection).migrate(targets)


def _constraint_names(table: str) -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, table))


@pytest.mark.django_db(transaction=True)
def test_rows_written_before_the_move_are_the_corpus_rows_after_it(acme):
    collection = document_services.collection_create(tenant=acme.tenant, name="Policies")
    document = document_services.document_create(
        tenant=acme.tenant,
        collection=collection,
        title="Travel policy",
        actor=Actor(None),
        file=text_file(),
        ingest=False,
    )
    version = document.versions.get()
    Section.objects.create(
        version=version, ordinal=0, heading="Travel policy", text="Flights. Hotels.", start_offset=0, end_offset=16
    )
    add_chunks(version, ["Flights under six hours are booked in economy class.", "Hotels are booked at the city rate."])
    Chunk.objects.across_tenants().filter(version=version).update(
        section=Section.objects.across_tenants().get(version=version)
    )
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        _migrate([("corpus", None)])  # the schema before the move
        old = MigrationExecutor(connection).loader.project_state(("ingestion", "0002_chunk_embedding_input")).apps
        tables = set(connection.introspection.table_names())
        assert {"ingestion_section", "ingestion_chunk"} <= tables and not {"corpus_section", "corpus_chunk"} & tables
        # A row written by the old code, through the old models.
        old_section = old.get_model("ingestion", "Section").objects.create(
            version_id=version.pk, ordinal=1, heading="Hotels", text="Hotels.", start_offset=17, end_offset=24
        )
        old.get_model("ingestion", "Chunk").objects.create(
            id=f"v{version.pk}-c2",
            version_id=version.pk,
            section=old_section,
            ordinal=2,
            text="Hotels.",
            text_sha256="0" * 64,
            start_offset=17,
            end_offset=24,
            embedding=b"\0" * 16,
            embedding_model="old",
            embedding_input_sha256="1" * 64,
        )
        before = _rows(old.get_model("ingestion", "Section"), old.get_model("ingestion", "Chunk"))
    finally:
        _migrate(latest)
    ContentType.objects.clear_cache()
    tables = set(connection.introspection.table_names())
    assert {"corpus_section", "corpus_chunk"} <= tables and not {"ingestion_section", "ingestion_chunk"} & tables
    sections, chunks = _rows()
    # Columns added by later migrations hold their defaults on the old rows (corpus/0003: a section
    # whose sentences were not embedded); the rest is exactly what was written.
    assert [row.pop("sentences_model") for row in sections] == ["", ""]
    assert (sections, chunks) == before and len(sections) == 2 and len(chunks) == 3
    assert (
        Chunk.objects.across_tenants().get(pk=f"v{version.pk}-c2").section.heading == "Hotels"
    )  # the foreign key followed the rename
    assert _constraint_names("corpus_section") | _constraint_names("corpus_chunk") >= CONSTRAINTS
    assert ContentType.objects.get_for_model(Chunk).app_label == "corpus"
