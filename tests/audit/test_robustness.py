"""Findings of the second outside review, kept as tests: a value nobody of ours wrote stops nothing
for other tenants, the evidence view keeps to the record's tenant, a faked purge does not pass a
replay, proofs hold only what they say, a quiet tenant gets its tree back after a purge, hostile
proof files get a clear answer."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.audit import chain, keys
from apps.audit.checkpoints import checkpoint_write, checkpoint_write_all, checkpoints_read
from apps.audit.models import AuditRecord
from apps.audit.proofs import proof_check
from apps.audit.services import RecordEntry, record_append, retention_purge, retention_purge_all, review_add
from apps.tenants import services as tenants
from apps.tenants.resolution import TenantContext
from tests.audit.test_tamper import _sql


def _public() -> dict[str, str]:
    return {key.key_id: key.public_key_b64() for key in keys.ring()}


@pytest.mark.django_db
def test_a_value_nested_thousands_deep_breaks_one_chain_and_stops_nothing_else(library, records, settings, capsys):
    early = tenants.tenant_create(slug="aaa", name="AAA")  # sorts before acme
    context = TenantContext(tenant=early, user=library.alice.user, api_key=None, membership=None, scopes=frozenset())
    victim = record_append(
        context=context, entry=RecordEntry(kind="search", outcome="no_results", query="x", filters={}, parameters={})
    )
    _sql("UPDATE audit_auditrecord SET filters = %s WHERE id = %s", ["[" * 995 + "]" * 995, victim.pk])
    reports = {r.tenant: r for r in checkpoint_write_all()}
    assert reports["aaa"].refused and reports["acme"].sequence == 4 and len(checkpoints_read(library.world.tenant)) == 1
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    purges = {r.tenant: r for r in retention_purge_all(now=timezone.now() + timedelta(days=31))}
    assert purges["aaa"].refused and purges["acme"].records == 4
    assert not chain.verify_tenant(early).intact
    with pytest.raises(CommandError):
        call_command("audit_verify")
    out = capsys.readouterr().out
    assert "aaa: BROKEN" in out and "acme: 0 records" in out


@pytest.mark.django_db
def test_the_evidence_of_a_record_never_shows_another_tenants_chunk(
    library, records, auditor, globex, django_capture_on_commit_callbacks
):
    """Were the engine ever to return a chunk of another tenant, the reviewer must not see its text."""
    from apps.audit.selectors import record_evidence

    record = AuditRecord.objects.across_tenants().get(pk=records[0])
    other = globex.tenant
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.corpus.models import Chunk
    from apps.documents import services as documents
    from apps.documents.services import Actor

    collection = documents.collection_create(tenant=other, name="Deals")
    with django_capture_on_commit_callbacks(execute=True):  # ingested after commit, as in production
        documents.document_create(
            tenant=other,
            collection=collection,
            actor=Actor(user=None),
            title="Deal",
            file=SimpleUploadedFile("deal.md", b"# Deal\n\nGlobex will acquire Initech in Q3.\n"),
        )
    foreign = Chunk.objects.filter(version__document__tenant=other).first()
    assert foreign is not None
    _sql(
        "UPDATE audit_retrievedchunk SET chunk_id = %s, version_id = %s WHERE record_id = %s AND rank = 1",
        [foreign.pk, foreign.version_id, record.pk],
    )
    evidence = record_evidence(record=AuditRecord.objects.across_tenants().get(pk=record.pk))
    assert all(item.text is None or "Initech" not in item.text for item in evidence)


@pytest.mark.django_db
def test_a_purge_faked_in_the_documents_tables_does_not_pass_a_replay(library, auditor):
    body = (
        library.client(library.alice).post("/api/v1/ask", {"query": "Can I fly business class?"}, format="json").json()
    )
    _sql(
        "UPDATE documents_documentversion SET sha256 = %s, purged_at = %s WHERE document_id = %s",
        ["0" * 64, timezone.now(), library.travel.pk],
    )  # the document itself still published
    replay = library.client(auditor).get(f"/api/v1/audit/records/{body['audit_id']}/replay").json()
    assert replay["hashes_match"] is False and replay["unverifiable"]


@pytest.mark.django_db
def test_proofs_hold_only_for_a_records_own_bytes(library, records, auditor):
    review = review_add(
        record=AuditRecord.objects.across_tenants().get(pk=records[0]),
        status="reviewed",
        comment="",
        reviewer_id=None,
        reviewer_name="carol",
    )
    checkpoint_write(tenant=library.world.tenant)
    proof = library.client(auditor).get(f"/api/v1/audit/records/{records[1]}/proof").json()
    assert proof_check(proof, _public())[0]
    assert not proof_check({**proof, "content_sha256": "ab" * 32}, _public())[0]
    unformatted = {**proof, "checkpoint": {k: v for k, v in proof["checkpoint"].items() if k != "format"}}
    assert not proof_check(unformatted, _public())[0]
    # A review's bytes at its own place in the tree are not an answer record.
    from apps.audit import merkle

    leaves = [bytes.fromhex(d) for d in chain.stored_digests(library.world.tenant, after=0, through=5)]
    forged = {
        **proof,
        "canonical": chain.review_canonical(review).decode(),
        "leaf_index": 4,
        "content_sha256": review.content_sha256,
        "audit_path": merkle.inclusion_path(leaves, 4),
    }
    assert proof_check(forged, _public()) == (False, "the bytes are not an answer record (a review, or something else)")


@pytest.mark.django_db
def test_after_a_purge_a_quiet_tenant_gets_a_checkpoint_of_its_new_tree(library, records, auditor, settings):
    tenant = library.world.tenant
    library.client(library.alice).post("/api/v1/search", {"query": "passwords"}, format="json")
    fifth = AuditRecord.objects.get(tenant=tenant, sequence=5)
    checkpoint_write(tenant=tenant)
    settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
    # A month after record 5 was written: records 1-4 are past retention, record 5 just not.
    report = retention_purge(tenant=tenant, now=fifth.created_at + timedelta(days=30))
    assert report.through_sequence == 4
    assert checkpoint_write(tenant=tenant).sequence == 5, "the tree start moved: the head counts as moved"
    proof = library.client(auditor).get(f"/api/v1/audit/records/{fifth.pk}/proof").json()
    assert proof_check(proof, _public())[0] and proof["checkpoint"]["tree_start"] == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    "hostile",
    [
        [1, 2, 3],
        {"canonical": 5, "checkpoint": {}},
        {"canonical": "[" * 3000 + "]" * 3000, "checkpoint": {"format": "knowledge-platform/audit-checkpoint/1"}},
        {
            "canonical": "{}",
            "checkpoint": {
                "format": "knowledge-platform/audit-checkpoint/1",
                "key_id": "test",
                "signature": "!!",
                "sequence": "x",
            },
        },
    ],
)
def test_a_hostile_proof_file_gets_a_clear_answer(hostile, tmp_path, capsys):
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(hostile))
    with pytest.raises(CommandError):
        call_command("audit_proof", "--check", str(path))
    with pytest.raises(CommandError, match="KEY_ID:BASE64"):
        call_command("audit_proof", "--check", str(path), "--public-key", "no-colon-here")
