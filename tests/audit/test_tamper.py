"""Each way an insider could rewrite the audit trail, tried as they would try it: with SQL straight
to the database (on PostgreSQL with the append-only triggers switched off first, as the tables'
owner could), holding everything the database holds but not the audit key (AUDIT_KEYS) and not
the checkpoint sink. `audit_verify` must name the first bad sequence each time.

The attacker's tools below recompute hashes exactly the way the platform did before the chain was
keyed (plain SHA-256), or with a key of their own: both must fail."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from apps.audit import chain, keys
from apps.audit.checkpoints import checkpoint_write, checkpoints_read
from apps.audit.models import AuditRecord, ChainHead, RetentionPurge, Review
from apps.audit.services import retention_purge, review_add

AUDIT_TABLES = ("audit_auditrecord", "audit_retrievedchunk", "audit_review", "audit_retentionpurge", "audit_chainhead")


def _sql(sql: str, params: list | tuple = ()) -> None:
    """What an attacker with the database's owner credentials runs; the test's transaction rolls
    the trigger switch-off back with everything else."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        cursor.execute(sql, list(params))


def _head(tenant) -> ChainHead:
    return ChainHead.objects.get(tenant=tenant)


def _rewind_head(tenant, sequence: int, last_hash: str) -> None:
    _sql(
        "UPDATE audit_chainhead SET sequence = %s, last_hash = %s WHERE tenant_id = %s",
        [sequence, last_hash, tenant.pk],
    )


def _cut_after(tenant, sequence: int) -> None:
    """Truncation: the newest records (with their chunks and reviews) go, the head is set back."""
    kept = AuditRecord.objects.filter(tenant=tenant, sequence=sequence).get()
    _sql(
        "DELETE FROM audit_retrievedchunk WHERE record_id IN "
        "(SELECT id FROM audit_auditrecord WHERE tenant_id = %s AND sequence > %s)",
        [tenant.pk, sequence],
    )
    _sql("DELETE FROM audit_review WHERE tenant_id = %s AND sequence > %s", [tenant.pk, sequence])
    _sql("DELETE FROM audit_auditrecord WHERE tenant_id = %s AND sequence > %s", [tenant.pk, sequence])
    _rewind_head(tenant, sequence, kept.record_hash)


def _plain_rehash_from(tenant, sequence: int, *, key: bytes | None = None, key_id: str | None = None) -> None:
    """Re-hash: recompute every record's hash from `sequence` on (plain SHA-256, or HMAC with the
    attacker's own key), relink, and move the head: a chain that is consistent in itself."""
    previous = (
        AuditRecord.objects.get(tenant=tenant, sequence=sequence - 1).record_hash if sequence > 1 else chain.GENESIS
    )
    for record in AuditRecord.objects.filter(tenant=tenant, sequence__gte=sequence).order_by("sequence"):
        record.previous_hash = previous
        if key_id is not None:
            record.key_id = key_id
        message = chain.record_canonical(record, sorted(record.chunks.all(), key=lambda c: c.rank))
        digest = hmac.new(key, message, hashlib.sha256).hexdigest() if key else hashlib.sha256(message).hexdigest()
        _sql(
            "UPDATE audit_auditrecord SET previous_hash = %s, key_id = %s, record_hash = %s, answer = %s WHERE id = %s",
            [previous, record.key_id, digest, record.answer, record.pk],
        )
        previous = digest
    last = AuditRecord.objects.filter(tenant=tenant).order_by("-sequence").first()
    _rewind_head(tenant, last.sequence, previous)


def _verify_fails(tenant) -> chain.Break:
    report = chain.verify_tenant(tenant)
    assert not report.intact, "audit_verify reported a tampered chain intact"
    with pytest.raises(CommandError):
        call_command("audit_verify", "--tenant", tenant.slug)
    return report.first_break


@pytest.mark.django_db
def test_an_untouched_chain_with_reviews_and_checkpoints_verifies(library, records, auditor):
    tenant = library.world.tenant
    review_add(
        record=AuditRecord.objects.across_tenants().get(pk=records[1]),
        status="flagged",
        comment="check",
        reviewer_id=None,
        reviewer_name="carol",
    )
    assert checkpoint_write(tenant=tenant).sequence == 5
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")
    report = chain.verify_tenant(tenant)
    assert report.intact and (report.records, report.reviews, report.checkpoints) == (5, 1, 1)
    assert report.notes == [
        "1 entries since the newest checkpoint ({})".format(
            checkpoints_read(tenant)[0].created_at.isoformat(timespec="seconds")
        )
    ]


# --------------------------------------------------------------------------- 1. truncation
@pytest.mark.django_db
def test_truncation_with_the_head_rewound_is_caught_by_the_checkpoint(library, records):
    tenant = library.world.tenant
    checkpoint_write(tenant=tenant)
    _cut_after(tenant, 2)
    problem = _verify_fails(tenant)
    assert problem.sequence == 3 and "cut off" in problem.problem


@pytest.mark.django_db
def test_a_rewound_chain_with_new_records_in_place_of_the_old_differs_from_the_checkpoint(library, records):
    tenant = library.world.tenant
    checkpoint_write(tenant=tenant)
    _cut_after(tenant, 2)
    for _ in range(2):  # the application appends again, at the same sequences, properly keyed
        library.client(library.bob).post("/api/v1/search", {"query": "bonuses"}, format="json")
    assert chain.walk(tenant).first_break is None  # consistent in itself ...
    problem = _verify_fails(tenant)  # ... but not what the checkpoint signed
    assert problem.sequence == 4 and "rewritten" in problem.problem


@pytest.mark.django_db
def test_the_checkpointer_refuses_to_sign_a_rewound_head(library, records):
    tenant = library.world.tenant
    checkpoint_write(tenant=tenant)
    _cut_after(tenant, 2)
    report = checkpoint_write(tenant=tenant, force=True)
    assert report.sequence is None and report.refused
    assert [c.sequence for c in checkpoints_read(tenant)] == [4]
    with pytest.raises(CommandError):
        call_command("audit_checkpoint", "--tenant", tenant.slug, "--force")


@pytest.mark.django_db
def test_a_head_moved_back_under_a_chain_that_goes_on_is_reported(library, records):
    """Rewinding only the head would make the next append collide with an existing sequence."""
    tenant = library.world.tenant
    _rewind_head(tenant, 2, AuditRecord.objects.get(tenant=tenant, sequence=2).record_hash)
    problem = _verify_fails(tenant)
    assert problem.sequence == 3 and "moved back" in problem.problem


# --------------------------------------------------------------------------- 2. forged / premature anchor
@pytest.mark.django_db
def test_a_forged_retention_anchor_is_reported(library, records):
    tenant = library.world.tenant
    third = AuditRecord.objects.get(tenant=tenant, sequence=3)
    _sql(
        "DELETE FROM audit_retrievedchunk WHERE record_id IN (SELECT id FROM audit_auditrecord WHERE tenant_id "
        "= %s AND sequence <= 3)",
        [tenant.pk],
    )
    _sql("DELETE FROM audit_auditrecord WHERE tenant_id = %s AND sequence <= 3", [tenant.pk])
    now = timezone.now()
    RetentionPurge(
        tenant=tenant,
        created_at=now,
        older_than=now - timedelta(days=30),
        retention_days=30,
        records=3,
        through_sequence=3,
        last_hash=third.record_hash,
        newest_purged_at=now - timedelta(days=31),
        key_id=keys.current().key_id,
        signature="",
    ).save()  # an INSERT: append-only allows it
    problem = _verify_fails(tenant)
    assert problem.entry == "anchor" and problem.sequence == 3 and "forged" in problem.problem


@pytest.mark.django_db
def test_an_anchor_signed_by_another_key_is_reported(library, records):
    """Entries deleted, then an anchor that says everything a real one says, signed with a key of
    the attacker's own under the ring's key id."""
    tenant = library.world.tenant
    third = AuditRecord.objects.get(tenant=tenant, sequence=3)
    _sql(
        "DELETE FROM audit_retrievedchunk WHERE record_id IN (SELECT id FROM audit_auditrecord WHERE tenant_id "
        "= %s AND sequence <= 3)",
        [tenant.pk],
    )
    _sql("DELETE FROM audit_auditrecord WHERE tenant_id = %s AND sequence <= 3", [tenant.pk])
    now = timezone.now() + timedelta(days=31)
    anchor = RetentionPurge(
        tenant=tenant,
        created_at=now,
        older_than=now - timedelta(days=30),
        retention_days=30,
        records=3,
        through_sequence=3,
        last_hash=third.record_hash,
        newest_purged_at=third.created_at,
        key_id=keys.current().key_id,
    )
    anchor.signature = keys.sign(keys.parse_ring("test:" + "x" * 40)[0], chain.anchor_canonical(anchor))
    anchor.save()
    assert "forged" in _verify_fails(tenant).problem


@pytest.mark.django_db
def test_a_premature_anchor_is_reported_even_when_signed(library, records):
    """Records minutes old, an anchor claiming a 30-day policy: signed with the real key (a bug, or
    a stolen key), it still contradicts the ages it states."""
    tenant = library.world.tenant
    fourth = AuditRecord.objects.get(tenant=tenant, sequence=4)
    _sql(
        "DELETE FROM audit_retrievedchunk WHERE record_id IN (SELECT id FROM audit_auditrecord WHERE tenant_id = %s)",
        [tenant.pk],
    )
    _sql("DELETE FROM audit_auditrecord WHERE tenant_id = %s", [tenant.pk])
    now = timezone.now()
    anchor = RetentionPurge(
        tenant=tenant,
        created_at=now,
        older_than=now - timedelta(days=30),
        retention_days=30,
        records=4,
        through_sequence=4,
        last_hash=fourth.record_hash,
        newest_purged_at=fourth.created_at,
        key_id=keys.current().key_id,
    )
    anchor.signature = keys.sign(keys.current(), chain.anchor_canonical(anchor))
    anchor.save()
    problem = _verify_fails(tenant)
    assert problem.entry == "anchor" and "premature" in problem.problem


@pytest.mark.django_db
def test_a_purge_under_a_shorter_policy_than_the_one_in_force_is_noted(library, records, settings):
    tenant = library.world.tenant
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    retention_purge(tenant=tenant, now=timezone.now() + timedelta(days=31))
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 365}
    report = chain.verify_tenant(tenant)
    assert report.intact  # the policy was lengthened since: the old purge was within its own policy
    assert "ran under 30 days, shorter than the 365 days in force now" in " ".join(report.notes)


@pytest.mark.django_db
def test_an_anchor_whose_fields_were_edited_is_reported(library, records, settings):
    tenant = library.world.tenant
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    retention_purge(tenant=tenant, now=timezone.now() + timedelta(days=31))
    assert chain.verify_tenant(tenant).intact
    _sql("UPDATE audit_retentionpurge SET retention_days = 1 WHERE tenant_id = %s", [tenant.pk])
    assert "forged" in _verify_fails(tenant).problem


@pytest.mark.django_db
def test_a_legitimate_purge_verifies_and_still_matches_older_checkpoints(library, records, settings):
    tenant = library.world.tenant
    checkpoint_write(tenant=tenant)
    review_add(
        record=AuditRecord.objects.across_tenants().get(pk=records[0]),
        status="reviewed",
        comment="",
        reviewer_id=None,
        reviewer_name="carol",
    )
    checkpoint_write(tenant=tenant)
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    report = retention_purge(tenant=tenant, now=timezone.now() + timedelta(days=31))
    assert (report.records, report.through_sequence) == (4, 5)
    assert not Review.objects.filter(tenant=tenant).exists()
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")
    checkpoint_write(tenant=tenant)
    verified = chain.verify_tenant(tenant)
    assert verified.intact and verified.records == 1 and verified.checkpoints == 3


# --------------------------------------------------------------------------- 3. re-hash
@pytest.mark.django_db
@pytest.mark.parametrize("attacker", ["plain sha-256", "own key, ring's key id", "own key, own key id"])
def test_an_edited_record_rehashed_without_the_key_is_found(library, records, attacker):
    tenant = library.world.tenant
    target = AuditRecord.objects.get(tenant=tenant, sequence=2)
    target.answer = "Everyone may fly first class. [1]"
    _sql("UPDATE audit_auditrecord SET answer = %s WHERE id = %s", [target.answer, target.pk])
    own_key = b"the attacker's own secret, not the ring's"
    if attacker == "plain sha-256":
        _plain_rehash_from(tenant, 2)
    elif attacker == "own key, ring's key id":
        _plain_rehash_from(tenant, 2, key=own_key)
    else:
        _plain_rehash_from(tenant, 2, key=own_key, key_id="mine")
    problem = _verify_fails(tenant)
    assert (problem.record_id, problem.sequence) == (target.pk, 2)
    assert "altered" in problem.problem or "not in AUDIT_KEYS" in problem.problem


@pytest.mark.django_db
def test_rotated_keys_verify_old_records_and_key_new_ones(library, records, settings):
    tenant = library.world.tenant
    old = settings.AUDIT["KEYS"]
    settings.AUDIT = {**settings.AUDIT, "KEYS": "k2:" + "n" * 40 + "," + old}
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")
    assert AuditRecord.objects.get(tenant=tenant, sequence=5).key_id == "k2"
    assert chain.verify_tenant(tenant).intact
    settings.AUDIT = {**settings.AUDIT, "KEYS": "k2:" + "n" * 40}  # the old key dropped from the ring
    problem = chain.verify_tenant(tenant).first_break
    assert problem.sequence == 1 and "not in AUDIT_KEYS" in problem.problem


# --------------------------------------------------------------------------- 4. reviews
@pytest.mark.django_db
def test_a_flagged_review_replaced_by_a_cleared_one_is_found(library, records):
    tenant = library.world.tenant
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    flagged = review_add(
        record=record, status="flagged", comment="wrong answer", reviewer_id=None, reviewer_name="carol"
    )
    _sql("DELETE FROM audit_review WHERE id = %s", [flagged.pk])
    forged = Review(
        tenant=tenant,
        sequence=flagged.sequence,
        record=record,
        record_sequence=record.sequence,
        record_hash=record.record_hash,
        status="reviewed",
        comment="fine",
        reviewer_name="carol",
        created_at=flagged.created_at,
        previous_hash=flagged.previous_hash,
        key_id=flagged.key_id,
    )
    forged.entry_hash = hashlib.sha256(chain.review_canonical(forged)).hexdigest()
    forged.save()
    problem = _verify_fails(tenant)
    assert (problem.entry, problem.sequence, problem.record_id) == ("review", flagged.sequence, forged.pk)


@pytest.mark.django_db
def test_a_deleted_review_is_found(library, records):
    tenant = library.world.tenant
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    flagged = review_add(record=record, status="flagged", comment="", reviewer_id=None, reviewer_name="carol")
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")  # an entry after it
    _sql("DELETE FROM audit_review WHERE id = %s", [flagged.pk])
    problem = _verify_fails(tenant)
    assert problem.sequence == flagged.sequence and "missing" in problem.problem


@pytest.mark.django_db
def test_the_newest_review_deleted_with_the_head_rewound_is_caught_by_the_checkpoint(library, records):
    tenant = library.world.tenant
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    flagged = review_add(record=record, status="flagged", comment="", reviewer_id=None, reviewer_name="carol")
    checkpoint_write(tenant=tenant)
    _sql("DELETE FROM audit_review WHERE id = %s", [flagged.pk])
    _rewind_head(tenant, 4, AuditRecord.objects.get(tenant=tenant, sequence=4).record_hash)
    assert _verify_fails(tenant).sequence == flagged.sequence


@pytest.mark.django_db
@pytest.mark.parametrize("where", ["outside any chain", "below the start", "of another tenant"])
def test_a_review_slipped_in_outside_the_chain_is_found(library, records, globex, where):
    tenant = library.world.tenant
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    placed = {"outside any chain": (None, 0), "below the start": (tenant, 0), "of another tenant": (globex.tenant, 1)}[
        where
    ]
    Review(
        tenant=placed[0],
        sequence=placed[1],
        record=record,
        record_sequence=record.sequence,
        record_hash=record.record_hash,
        status="reviewed",
        comment="",
        reviewer_name="carol",
        created_at=timezone.now(),
    ).save()
    problem = _verify_fails(tenant)
    assert problem.entry == "review" and "outside" in problem.problem


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.django_db
def test_checkpoints_are_signed_written_once_and_skipped_when_nothing_moved(library, records):
    tenant = library.world.tenant
    first = checkpoint_write(tenant=tenant)
    assert first.sequence == 4 and checkpoint_write(tenant=tenant).sequence is None
    forced = checkpoint_write(tenant=tenant, force=True)
    assert forced.name != first.name and len(checkpoints_read(tenant)) == 2
    assert all(c.valid and c.key_id == "test" for c in checkpoints_read(tenant))


@pytest.mark.django_db
def test_a_checkpoint_not_signed_by_the_ring_is_reported(library, records):
    """Someone who can write to the sink but does not hold the key signs a head of their choosing."""
    import json

    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    from apps.audit import checkpoints

    tenant = library.world.tenant
    impostor = keys.parse_ring("test:" + "q" * 40)[0]  # the ring's key id, another secret
    payload = checkpoints._payload(
        tenant.pk,
        tenant.slug,
        2,
        AuditRecord.objects.get(tenant=tenant, sequence=2).record_hash,
        timezone.now(),
        "test",
    )
    signed = {**payload, "signature": keys.sign(impostor, checkpoints._message(payload))}
    storages["audit_checkpoints"].save(
        f"{tenant.pk}/000000000002-forged.json", ContentFile(json.dumps(signed).encode())
    )
    problem = _verify_fails(tenant)
    assert problem.entry == "checkpoint" and "not signed" in problem.problem


@pytest.mark.django_db
def test_the_beat_task_and_the_command_checkpoint_every_tenant(library, records, capsys):
    from django.conf import settings

    from apps.audit.tasks import checkpoint

    assert settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]["task"] == "audit.checkpoint"
    assert checkpoint()[library.world.tenant.slug] == 4
    call_command("audit_checkpoint", "--force")
    assert "acme: checkpoint at 4" in capsys.readouterr().out
    call_command("audit_verify", "--tenant", "acme")
    assert "acme: 4 records, 0 reviews, chain intact, 2 checkpoints agree" in capsys.readouterr().out


@pytest.mark.django_db
def test_audit_keys_prints_public_keys_only(capsys, settings):
    call_command("audit_keys")
    out = capsys.readouterr().out
    assert out.startswith("test\ted25519:") and "current" in out
    assert "test-only-audit-key" not in out


def test_a_weak_or_malformed_key_ring_is_refused():
    from django.core.exceptions import ImproperlyConfigured

    for ring in ["", "k1:short", "k1" + "x" * 40, "k1:" + "x" * 40 + ",k1:" + "y" * 40, "bad id:" + "x" * 40]:
        with pytest.raises(ImproperlyConfigured):
            keys.parse_ring(ring)
    assert [k.key_id for k in keys.parse_ring("a:" + "x" * 32 + ", b:" + "y" * 32)] == ["a", "b"]


@pytest.mark.django_db
def test_numbers_the_database_rewrites_still_verify(library):
    """jsonb turns -0.0 into 0.0 and 1e+20 into an integer, and refuses NaN and infinities. A record
    holding them must verify after its round trip through the database, on both profiles."""
    from apps.audit.services import ChunkEntry, RecordEntry, record_append
    from apps.tenants.resolution import resolve_tenant_context

    context = resolve_tenant_context(user=library.alice.user, api_key=None, tenant_slug=library.world.tenant.slug)
    odd = {"negative_zero": -0.0, "huge": 1e20, "tiny": 1e-7, "nan": float("nan"), "inf": float("inf"), "plain": 0.1}
    chunk = ChunkEntry(
        rank=1,
        chunk_id="c",
        document_id=1,
        version_id=1,
        text_sha256="0" * 64,
        scores=odd,
        passed_recheck=True,
        recheck_reason="",
        shown=True,
    )
    record_append(
        context=context,
        entry=RecordEntry(
            kind="search", outcome="answered", query="q", filters={}, parameters=odd, timings=odd, chunks=[chunk]
        ),
    )
    assert chain.verify_tenant(library.world.tenant).intact
    stored = AuditRecord.objects.get(tenant=library.world.tenant).parameters
    assert stored == {"negative_zero": 0.0, "huge": "1e+20", "tiny": 1e-7, "nan": "nan", "inf": "inf", "plain": 0.1}
