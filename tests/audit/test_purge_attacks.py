"""Attacks an outside review of the keyed chain found (each reproduced against the first version
of it), kept as tests: the retention purge must never sign over an erasure or an edit, nothing
may sit outside the walked chain, a deleted tenant's trail is still seen, and a replay fails
closed.

The application role's own attack (its purge function, then a planted row) runs on PostgreSQL
with that role's real connection; the rest use SQL as the tables' owner would (test_tamper._sql)."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit import chain
from apps.audit.checkpoints import checkpoint_write
from apps.audit.models import AuditRecord, RetentionPurge, Review
from apps.audit.services import RecordEntry, record_append, retention_purge, review_add
from tests.audit.test_tamper import _sql


def _plant_review(tenant, sequence: int, created_at, entry_hash: str) -> None:
    """An INSERT, which the application's role may do: a backdated review with a hash of its choosing."""
    _sql(
        "INSERT INTO audit_review (tenant_id, sequence, record_id, record_sequence, record_hash, status, comment, "
        "reviewer_id, reviewer_name, created_at, previous_hash, key_id, entry_hash, content_sha256) VALUES "
        "(%s, %s, 0, 0, '', 'reviewed', '', NULL, 'x', %s, '', 'test', %s, '')",
        [tenant.pk, sequence, created_at, entry_hash],
    )


@pytest.mark.django_db
def test_the_purge_refuses_a_chain_cut_short_by_the_purge_function_and_a_planted_backdated_row(
    library, records, settings
):
    from apps.audit.purge import delete_prefix

    tenant = library.world.tenant
    checkpoint_write(tenant=tenant)
    delete_prefix(tenant_id=tenant.pk, through_sequence=3)  # fresh entries, erased
    link = AuditRecord.objects.get(tenant=tenant, sequence=4).previous_hash
    _plant_review(tenant, 3, timezone.now() - timedelta(days=400), link)
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 365}
    report = retention_purge(tenant=tenant)
    assert report.records == 0 and "does not verify" in report.refused
    assert not RetentionPurge.objects.filter(tenant=tenant).exists()
    assert not chain.verify_tenant(tenant).intact
    with pytest.raises(CommandError):
        call_command("audit_purge_expired")


@pytest.mark.django_db
def test_the_purge_refuses_backdated_records(library, records, settings):
    """The owner backdates fresh records so that the daily purge removes them (and an edit with them)."""
    tenant = library.world.tenant
    _sql("UPDATE audit_auditrecord SET answer = 'edited' WHERE tenant_id = %s AND sequence = 2", [tenant.pk])
    _sql(
        "UPDATE audit_auditrecord SET created_at = %s WHERE tenant_id = %s AND sequence <= 3",
        [timezone.now() - timedelta(days=400), tenant.pk],
    )
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 365}
    report = retention_purge(tenant=tenant)
    assert report.records == 0 and report.refused
    assert AuditRecord.objects.filter(tenant=tenant).count() == 4


@pytest.mark.django_db
def test_the_purge_refuses_a_planted_row_at_the_end(library, records, settings):
    tenant = library.world.tenant
    _plant_review(tenant, 5, timezone.now() - timedelta(days=400), "f" * 64)
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    report = retention_purge(tenant=tenant, now=timezone.now() + timedelta(days=31))
    assert report.records == 0 and report.refused and Review.objects.filter(tenant=tenant).count() == 1


@pytest.mark.django_db
def test_a_review_outliving_its_purged_record_still_verifies(library, records, settings):
    """Records 1-4 are past retention a month from now; a review of record 1 written then is not."""
    tenant = library.world.tenant
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    later = timezone.now() + timedelta(days=31)
    with mock.patch("apps.audit.services.timezone.now", return_value=later):
        review_add(
            record=AuditRecord.objects.across_tenants().get(pk=records[0]),
            status="flagged",
            comment="",
            reviewer_id=None,
            reviewer_name="carol",
        )
    report = retention_purge(tenant=tenant, now=later)
    assert (report.records, report.through_sequence) == (4, 4)
    assert Review.objects.filter(tenant=tenant).count() == 1 and not AuditRecord.objects.filter(tenant=tenant).exists()
    verified = chain.verify_tenant(tenant)
    assert verified.intact and verified.reviews == 1
    assert checkpoint_write(tenant=tenant).sequence == 5


@pytest.mark.django_db
def test_a_deleted_tenant_whose_checkpoints_remain_is_reported(library, capsys):
    """The owner deletes a whole tenant with its trail: the sink still names it."""
    from apps.tenants import services as tenants
    from apps.tenants.resolution import TenantContext

    initech = tenants.tenant_create(slug="initech", name="Initech")
    context = TenantContext(tenant=initech, user=library.alice.user, api_key=None, membership=None, scopes=frozenset())
    record_append(
        context=context,
        entry=RecordEntry(kind="search", outcome="no_results", query="shred the logs", filters={}, parameters={}),
    )
    checkpoint_write(tenant=initech)
    _sql("DELETE FROM audit_auditrecord WHERE tenant_id = %s", [initech.pk])
    _sql("DELETE FROM audit_chainhead WHERE tenant_id = %s", [initech.pk])
    _sql("DELETE FROM tenants_tenantgroup WHERE tenant_id = %s", [initech.pk])
    _sql("DELETE FROM tenants_tenant WHERE id = %s", [initech.pk])
    with pytest.raises(CommandError):
        call_command("audit_verify")
    assert f"tenant id {initech.pk}: BROKEN" in capsys.readouterr().out


@pytest.mark.django_db
def test_a_score_the_platform_cannot_have_written_is_reported_not_a_crash(library, records, globex, capsys):
    tenant = library.world.tenant
    _sql(
        "UPDATE audit_retrievedchunk SET scores = %s WHERE record_id = %s AND rank = 1",
        ['{"fused": 1e400}', records[1]],
    )
    problem = chain.verify_tenant(tenant).first_break
    assert (problem.record_id, problem.sequence) == (records[1], 2)
    with pytest.raises(CommandError):
        call_command("audit_verify")
    out = capsys.readouterr().out
    assert "acme: BROKEN" in out and "globex: 0 records" in out  # the other tenants are still verified


@pytest.mark.full_profile
@pytest.mark.django_db
def test_a_forged_record_at_a_duplicate_sequence_is_seen_whatever_the_page_size(library, records, monkeypatch):
    """With the unique constraint dropped (the owner can), a second row at a sequence must not slip
    between two pages of the walk; the count of stored entries backs the walk up."""
    tenant = library.world.tenant
    monkeypatch.setattr(chain._records_with_chunks, "__defaults__", (2,))  # pages of two records
    _sql("ALTER TABLE audit_auditrecord DROP CONSTRAINT audit_sequence_unique_in_tenant")
    genuine = AuditRecord.objects.get(tenant=tenant, sequence=2)
    _sql(
        "INSERT INTO audit_auditrecord (tenant_id, sequence, created_at, kind, outcome, user_id, username, api_key_id, "
        "api_key_prefix, acting_for_user, query, filters, parameters, answer, citations, generator, generator_model, "
        "timings, error, principals, context, embedding_model, search_backend, index_generation, previous_hash, "
        "key_id, "
        "record_hash, content_sha256) SELECT tenant_id, sequence, created_at, kind, outcome, user_id, username, "
        "api_key_id, "
        "api_key_prefix, acting_for_user, 'FORGED: wire 1M to account 42', filters, parameters, answer, "
        "citations, generator, "
        "generator_model, timings, error, principals, context, embedding_model, search_backend, index_generation, "
        "previous_hash, key_id, md5(random()::text) || md5(random()::text), content_sha256 FROM "
        "audit_auditrecord WHERE id = %s",
        [genuine.pk],
    )
    assert not chain.verify_tenant(tenant).intact


@pytest.mark.django_db
def test_a_replay_fails_closed_when_a_versions_file_no_longer_has_its_upload_hash(library, auditor):
    body = (
        library.client(library.alice).post("/api/v1/ask", {"query": "Can I fly business class?"}, format="json").json()
    )
    _sql("UPDATE documents_documentversion SET sha256 = %s WHERE document_id = %s", ["0" * 64, library.travel.pk])
    replay = library.client(auditor).get(f"/api/v1/audit/records/{body['audit_id']}/replay").json()
    assert replay["hashes_match"] is False
    assert any("no longer has the SHA-256 recorded at upload" in note for c in replay["chunks"] for note in c["now"])
    with pytest.raises(CommandError):
        call_command("audit_replay", str(body["audit_id"]), "--tenant", "acme")
