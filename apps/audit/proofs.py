"""Inclusion proofs: one record, checked by an auditor who holds only the audit's public keys.

A proof carries the record's canonical bytes (what it says, exactly as hashed), its position in
the tenant's Merkle tree, the audit path, and the signed checkpoint whose root the path leads to.
`proof_check` is all an auditor runs: it needs neither the database, nor the chain's secret key,
nor the other records. (RFC 9162's inclusion proof, over the chain's content digests.)
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from apps.core.exceptions import Conflict

from . import chain, merkle
from .checkpoints import _message, checkpoints_read
from .models import AuditRecord


def proof_build(*, record: AuditRecord) -> dict:
    """The proof of `record` against the newest checkpoint that holds it. 409 while no checkpoint
    holds it yet (the next one comes within AUDIT_CHECKPOINT_EVERY seconds)."""
    anchor, _ = chain.anchors_check(record.tenant)
    tree_start = anchor.through_sequence if anchor else 0
    covering = [c for c in checkpoints_read(record.tenant)
                if c.valid and c.tree_start == tree_start and tree_start < record.sequence <= c.sequence]
    if not covering:
        raise Conflict(f"Record {record.pk} is not in a signed checkpoint yet; try again after the next "
                       "checkpoint (manage.py audit_checkpoint writes one now).", code="audit_not_checkpointed")
    checkpoint = max(covering, key=lambda c: c.sequence)
    digests = chain.stored_digests(record.tenant, after=tree_start, through=checkpoint.sequence)
    leaves = [bytes.fromhex(d) for d in digests]
    canonical = chain.record_canonical(record, list(record.chunks.order_by("rank")))
    return {
        "record_id": record.pk,
        "canonical": canonical.decode(),
        "content_sha256": hashlib.sha256(canonical).hexdigest(),
        "leaf_index": record.sequence - tree_start - 1,
        "tree_size": checkpoint.sequence - tree_start,
        "audit_path": merkle.inclusion_path(leaves, record.sequence - tree_start - 1),
        "checkpoint": checkpoint.document,
    }


def proof_check(proof: dict, public_keys: dict[str, str]) -> tuple[bool, str]:
    """(valid, why) of a proof, with public keys given as {key_id: base64 raw Ed25519}."""
    checkpoint = dict(proof["checkpoint"])
    signature = checkpoint.pop("signature", "")
    key = public_keys.get(checkpoint.get("key_id", ""))
    if key is None:
        return False, f"no public key for key id {checkpoint.get('key_id')!r}"
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(base64.b64decode(signature), _message(checkpoint))
    except (InvalidSignature, ValueError):
        return False, "the checkpoint's signature does not verify"
    digest = hashlib.sha256(proof["canonical"].encode()).digest()
    if proof["tree_size"] != checkpoint["sequence"] - checkpoint["tree_start"]:
        return False, "the proof's tree size is not the checkpoint's"
    if not merkle.verify_inclusion(digest, proof["leaf_index"], proof["tree_size"], proof["audit_path"], checkpoint["root"]):
        return False, "the record's bytes are not at that place in the signed tree"
    body = json.loads(proof["canonical"])
    if body.get("tenant_id") != checkpoint["tenant_id"] or body.get("sequence") != checkpoint["tree_start"] + proof["leaf_index"] + 1:
        return False, "the record's own tenant or sequence is not where the proof puts it"
    return True, f"record {body.get('sequence')} of tenant {checkpoint['tenant']} is in the checkpoint of {checkpoint['created_at']}"
