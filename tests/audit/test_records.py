"""The audit record: complete, append-only (in the application and, on PostgreSQL, in the
database), hash-chained per tenant and verifiable."""

import hashlib
import itertools

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from apps.audit import chain
from apps.audit.models import AppendOnly, AuditRecord, RetrievedChunk, Review
from apps.corpus.models import Chunk
from apps.tenants.models import Tenant


@pytest.mark.django_db
def test_every_returned_chunk_is_in_the_record_with_its_scores_and_text_hash(library):
    body = (
        library.client(library.world.owner)
        .post("/api/v1/search", {"query": "policy hotel password", "k": 5}, format="json")
        .json()
    )
    record = AuditRecord.objects.across_tenants().get(pk=body["audit_id"])
    entries = {c.chunk_id: c for c in record.chunks.all()}
    assert [r["chunk_id"] for r in body["results"]] == [
        c.chunk_id for c in record.chunks.filter(shown=True).order_by("rank")
    ]
    for result in body["results"]:
        entry = entries[result["chunk_id"]]
        assert (entry.document_id, entry.version_id) == (result["document_id"], result["version_id"])
        assert entry.scores == result["scores"] and entry.passed_recheck
        assert (
            entry.text_sha256
            == hashlib.sha256(Chunk.objects.across_tenants().get(pk=entry.chunk_id).text.encode()).hexdigest()
        )
    assert record.username == "owner" and record.kind == "search" and record.parameters["k"] == 5
    assert set(record.timings) >= {"embed", "search", "fuse", "recheck"}


@pytest.mark.django_db
def test_records_chain_per_tenant(library, records):
    chained = list(AuditRecord.objects.filter(tenant=library.world.tenant).order_by("sequence"))
    assert [r.sequence for r in chained] == [1, 2, 3, 4]
    assert chained[0].previous_hash == chain.GENESIS
    assert all(b.previous_hash == a.record_hash for a, b in itertools.pairwise(chained))
    report = chain.verify_tenant(library.world.tenant)
    assert report.intact and report.records == 4


@pytest.mark.django_db
def test_the_application_refuses_to_change_or_delete_audit_rows(records):
    record = AuditRecord.objects.across_tenants().get(pk=records[0])
    record.answer = "edited"
    with pytest.raises(AppendOnly):
        record.save()
    with pytest.raises(AppendOnly):
        record.delete()
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(pk=record.pk).update(answer="edited")
    with pytest.raises(AppendOnly):
        AuditRecord.objects.filter(pk=record.pk).delete()
    with pytest.raises(AppendOnly):
        RetrievedChunk.objects.filter(record=record).update(shown=False)
    with pytest.raises(AppendOnly):
        Review.objects.all().delete()


def _tamper(sql: str, params: list) -> None:
    """What an attacker with database access would do. On PostgreSQL the trigger must first be
    switched off (which takes table ownership); the test's transaction rolls that back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred checks pending before ALTER
            cursor.execute("ALTER TABLE audit_auditrecord DISABLE TRIGGER USER")
            cursor.execute("ALTER TABLE audit_retrievedchunk DISABLE TRIGGER USER")
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_verify_names_the_first_altered_record(library, records):
    target = AuditRecord.objects.across_tenants().get(pk=records[1])
    _tamper("UPDATE audit_auditrecord SET answer = %s WHERE id = %s", ["Everyone may fly first class. [1]", target.pk])
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", "acme")
    report = chain.verify_tenant(library.world.tenant)
    assert report.first_break.record_id == target.pk and "altered" in report.first_break.problem


@pytest.mark.django_db
def test_verify_finds_an_altered_chunk_score(library, records):
    target = AuditRecord.objects.across_tenants().get(pk=records[0])
    _tamper("UPDATE audit_retrievedchunk SET shown = NOT shown WHERE record_id = %s AND rank = 1", [target.pk])
    assert chain.verify_tenant(library.world.tenant).first_break.record_id == target.pk


@pytest.mark.django_db
def test_verify_finds_a_deleted_record_in_the_middle_and_at_the_end(library, records):
    _tamper("DELETE FROM audit_retrievedchunk WHERE record_id = %s", [records[1]])
    _tamper("DELETE FROM audit_auditrecord WHERE id = %s", [records[1]])
    report = chain.verify_tenant(library.world.tenant)
    assert report.first_break.record_id == records[2] and "missing" in report.first_break.problem
    _tamper("DELETE FROM audit_retrievedchunk WHERE record_id >= %s", [records[1]])
    _tamper("DELETE FROM audit_auditrecord WHERE id >= %s", [records[1]])
    report = chain.verify_tenant(library.world.tenant)
    assert "the chain ends at 1 but 4 entries were written" in report.first_break.problem


@pytest.mark.django_db
def test_verify_reports_intact_chains(records, capsys):
    call_command("audit_verify")
    assert "acme: 4 records, 0 reviews, chain intact, 0 checkpoints agree" in capsys.readouterr().out


@pytest.mark.full_profile
@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditrecord SET answer = 'edited' WHERE id = %s",
        "DELETE FROM audit_auditrecord WHERE id = %s",
        "UPDATE audit_retrievedchunk SET cited = true WHERE record_id = %s",
        "DELETE FROM audit_retrievedchunk WHERE record_id = %s",
    ],
)
def test_postgresql_itself_refuses_updates_and_deletes(records, sql):
    from django.db import DatabaseError

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [records[0]])
    assert AuditRecord.objects.across_tenants().filter(pk=records[0]).exists()


@pytest.mark.django_db
def test_retention_purge_removes_old_records_and_the_rest_still_verifies(library, records, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.audit.services import retention_purge

    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    assert retention_purge(tenant=library.world.tenant).records == 0  # nothing is 30 days old
    later = timezone.now() + timedelta(days=31)
    report = retention_purge(tenant=library.world.tenant, now=later)
    assert report.records == 4 and report.through_sequence == 4
    assert not AuditRecord.objects.filter(tenant=library.world.tenant).exists()
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")
    report = chain.verify_tenant(library.world.tenant)
    assert report.intact and report.records == 1
    assert AuditRecord.objects.get(tenant=library.world.tenant).sequence == 5


@pytest.mark.django_db
def test_retention_unset_keeps_everything(library, records, settings, capsys):
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": None}
    call_command("audit_purge_expired")
    assert "kept forever" in capsys.readouterr().out
    assert AuditRecord.objects.across_tenants().count() == 4


@pytest.mark.django_db
def test_the_daily_purge_covers_every_tenant_and_does_nothing_without_retention(library, records, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.audit.services import retention_purge_all
    from apps.audit.tasks import purge_expired

    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": None}
    assert purge_expired() == {} and retention_purge_all(now=timezone.now() + timedelta(days=3650)) == []
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    assert purge_expired() == dict.fromkeys(Tenant.objects.values_list("slug", flat=True), 0)
    reports = {r.tenant: r.records for r in retention_purge_all(now=timezone.now() + timedelta(days=31))}
    assert reports[library.world.tenant.slug] == 4 and len(reports) == Tenant.objects.count()
