"""The Merkle tree is RFC 9162's: roots against the RFC's recursive definition, every inclusion
proof of every tree up to 70 leaves verifies, and a proof of anything else does not."""

import hashlib

from apps.audit import merkle


def rfc_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) written exactly as RFC 9162 §2.1.1 defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc_root(leaves[:k]) + rfc_root(leaves[k:])).digest()


LEAVES = [f"entry {i}".encode() for i in range(70)]


def test_roots_follow_rfc_9162():
    accumulator = merkle.Accumulator()
    assert accumulator.root() == rfc_root([]).hex()
    for n, data in enumerate(LEAVES, start=1):
        accumulator.append(data)
        assert accumulator.root() == rfc_root(LEAVES[:n]).hex(), n


def test_every_inclusion_proof_verifies_and_nothing_else_does():
    for n in range(1, len(LEAVES) + 1):
        root = rfc_root(LEAVES[:n]).hex()
        for index in range(n):
            path = merkle.inclusion_path(LEAVES[:n], index)
            assert merkle.verify_inclusion(LEAVES[index], index, n, path, root), (n, index)
            assert not merkle.verify_inclusion(b"forged", index, n, path, root)
            if n > 1:
                assert not merkle.verify_inclusion(LEAVES[index], (index + 1) % n, n, path, root)
        assert not merkle.verify_inclusion(LEAVES[0], n, n, [], root)


def test_rfc_9162_known_answer():
    """A fixed vector keeps the leaf and node prefixes honest: one leaf's root is SHA-256(0x00 || data)."""
    assert merkle.Accumulator().root() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    one = merkle.Accumulator()
    one.append(b"")
    assert one.root() == hashlib.sha256(b"\x00").hexdigest()


# --------------------------------------------------------------------------- proofs of records
import json  # noqa: E402

import pytest  # noqa: E402
from django.core.management import CommandError, call_command  # noqa: E402

from apps.audit import chain, keys  # noqa: E402
from apps.audit.checkpoints import checkpoint_write  # noqa: E402
from apps.audit.models import AuditRecord  # noqa: E402
from apps.audit.proofs import proof_check  # noqa: E402
from apps.audit.services import review_add  # noqa: E402


def _public_keys() -> dict[str, str]:
    return {key.key_id: key.public_key_b64() for key in keys.ring()}


@pytest.mark.django_db
def test_each_record_proves_itself_with_the_public_key_alone(library, records, auditor):
    review_add(
        record=AuditRecord.objects.across_tenants().get(pk=records[0]),
        status="reviewed",
        comment="",
        reviewer_id=None,
        reviewer_name="carol",
    )
    client = library.client(auditor)
    assert client.get(f"/api/v1/audit/records/{records[3]}/proof").status_code == 409  # no checkpoint yet
    checkpoint_write(tenant=library.world.tenant)
    for record_id in records:
        proof = client.get(f"/api/v1/audit/records/{record_id}/proof").json()
        valid, why = proof_check(proof, _public_keys())
        assert valid, why
        said = json.loads(proof["canonical"])
        assert said["query"] == AuditRecord.objects.across_tenants().get(pk=record_id).query and proof["tree_size"] == 5


@pytest.mark.django_db
def test_a_proof_of_altered_bytes_or_under_another_key_fails(library, records, auditor):
    checkpoint_write(tenant=library.world.tenant)
    proof = library.client(auditor).get(f"/api/v1/audit/records/{records[1]}/proof").json()
    altered = proof["canonical"].replace(json.loads(proof["canonical"])["query"], "nothing to see")
    assert not proof_check({**proof, "canonical": altered}, _public_keys())[0]  # its digest no longer matches
    forged = {**proof, "canonical": altered, "content_sha256": hashlib.sha256(altered.encode()).hexdigest()}
    assert proof_check(forged, _public_keys()) == (False, "the record's bytes are not at that place in the signed tree")
    moved = {**proof, "leaf_index": proof["leaf_index"] + 1}
    assert not proof_check(moved, _public_keys())[0]
    other = keys.parse_ring("x:" + "z" * 40)[0]
    assert not proof_check(proof, {proof["checkpoint"]["key_id"]: other.public_key_b64()})[0]


@pytest.mark.django_db
def test_the_proof_command_builds_and_checks_offline(library, records, tmp_path, capsys):
    checkpoint_write(tenant=library.world.tenant)
    call_command("audit_proof", str(records[2]), "--tenant", "acme")
    path = tmp_path / "proof.json"
    path.write_text(capsys.readouterr().out)
    key = keys.current()
    call_command("audit_proof", "--check", str(path), "--public-key", f"{key.key_id}:{key.public_key_b64()}")
    assert capsys.readouterr().out.startswith("VALID: record 3 of tenant acme")
    proof = json.loads(path.read_text())
    proof["audit_path"][0] = "00" * 32
    path.write_text(json.dumps(proof))
    with pytest.raises(CommandError):
        call_command("audit_proof", "--check", str(path))


@pytest.mark.django_db
def test_an_altered_merkle_leaf_is_found(library, records):
    from tests.audit.test_tamper import _sql

    tenant = library.world.tenant
    _sql("UPDATE audit_auditrecord SET content_sha256 = %s WHERE id = %s", ["ab" * 32, records[1]])
    problem = chain.verify_tenant(tenant).first_break
    assert (problem.record_id, problem.sequence) == (records[1], 2) and "Merkle leaf" in problem.problem


@pytest.mark.django_db
def test_a_checkpoint_whose_root_contradicts_the_chain_is_reported(library, records):
    """Signed with the real key (a signer bug, or a stolen key) but over another tree."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages
    from django.utils import timezone

    from apps.audit import checkpoints

    tenant = library.world.tenant
    record = AuditRecord.objects.get(tenant=tenant, sequence=4)
    payload = checkpoints._payload(tenant.pk, tenant.slug, 4, record.record_hash, timezone.now(), "test", 0, "cd" * 32)
    body = {**payload, "signature": keys.sign(keys.current(), checkpoints._message(payload))}
    storages["audit_checkpoints"].save(
        f"{tenant.pk}/000000000004-bad-root.json", ContentFile(json.dumps(body).encode())
    )
    problem = chain.verify_tenant(tenant).first_break
    assert problem.entry == "checkpoint" and "Merkle root" in problem.problem
