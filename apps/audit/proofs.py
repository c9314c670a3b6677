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

from . import chain, keys, merkle
from .checkpoints import FORMAT, _message, checkpoint_newest
from .models import AuditRecord


def proof_build(*, record: AuditRecord) -> dict:
    """The proof of `record` against the newest checkpoint that holds it. 409 while no checkpoint
    holds it yet (the next one comes within AUDIT_CHECKPOINT_EVERY seconds)."""
    anchor, _ = chain.anchors_check(record.tenant)
    tree_start = anchor.through_sequence if anchor else 0
    checkpoint = checkpoint_newest(record.tenant)
    if (
        checkpoint is None
        or checkpoint.tree_start != tree_start
        or not tree_start < record.sequence <= checkpoint.sequence
    ):
        raise Conflict(
            f"Record {record.pk} is not in a signed checkpoint yet; try again after the next "
            "checkpoint (manage.py audit_checkpoint writes one now).",
            code="audit_not_checkpointed",
        )
    digests = chain.stored_digests(record.tenant, after=tree_start, through=checkpoint.sequence)
    try:
        leaves = [bytes.fromhex(d) for d in digests]
    except ValueError:
        leaves = []
    if len(leaves) != checkpoint.sequence - tree_start or any(len(leaf) != 32 for leaf in leaves):
        raise Conflict(
            "The chain's stored digests do not make the signed tree (run audit_verify).", code="audit_chain_broken"
        )
    canonical = chain.record_canonical(record, list(record.chunks.order_by("rank")))
    proof = {
        "record_id": record.pk,
        "canonical": canonical.decode(),
        "content_sha256": hashlib.sha256(canonical).hexdigest(),
        "leaf_index": record.sequence - tree_start - 1,
        "tree_size": checkpoint.sequence - tree_start,
        "audit_path": merkle.inclusion_path(leaves, record.sequence - tree_start - 1),
        "checkpoint": checkpoint.document,
    }
    if not proof_check(proof, {key.key_id: key.public_key_b64() for key in keys.ring()})[0]:
        raise Conflict("The record is not in its signed tree as stored (run audit_verify).", code="audit_chain_broken")
    return proof


def proof_check(proof: dict, public_keys: dict[str, str]) -> tuple[bool, str]:
    """(valid, why) of a proof, with public keys given as {key_id: base64 raw Ed25519}. The proof
    covers the record's canonical bytes (what it says, its tenant and sequence), not the database
    id it was fetched by."""
    try:
        return _proof_check(proof, public_keys)
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
        return False, f"not a well-formed proof ({exc.__class__.__name__})"


def _proof_check(proof: dict, public_keys: dict[str, str]) -> tuple[bool, str]:
    if not isinstance(proof.get("canonical"), str) or not isinstance(proof.get("checkpoint"), dict):
        return False, "not a well-formed proof (canonical must be text, checkpoint an object)"
    checkpoint = dict(proof["checkpoint"])
    signature = checkpoint.pop("signature", "")
    if checkpoint.get("format") != FORMAT:
        return False, f"not a checkpoint of this format ({FORMAT})"
    key = public_keys.get(checkpoint.get("key_id", ""))
    if key is None:
        return False, f"no public key for key id {checkpoint.get('key_id')!r}"
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(key)).verify(
            base64.b64decode(signature), _message(checkpoint)
        )
    except (InvalidSignature, ValueError):
        return False, "the checkpoint's signature does not verify"
    digest = hashlib.sha256(proof["canonical"].encode()).digest()
    if proof.get("content_sha256") != digest.hex():
        return False, "the proof's content digest is not that of its bytes"
    if proof["tree_size"] != checkpoint["sequence"] - checkpoint["tree_start"]:
        return False, "the proof's tree size is not the checkpoint's"
    if not merkle.verify_inclusion(
        digest, proof["leaf_index"], proof["tree_size"], proof["audit_path"], checkpoint["root"]
    ):
        return False, "the record's bytes are not at that place in the signed tree"
    body = json.loads(proof["canonical"])
    if not isinstance(body, dict) or body.get("entry") != "record":
        return False, "the bytes are not an answer record (a review, or something else)"
    if (
        body.get("tenant_id") != checkpoint["tenant_id"]
        or body.get("sequence") != checkpoint["tree_start"] + proof["leaf_index"] + 1
    ):
        return False, "the record's own tenant or sequence is not where the proof puts it"
    return (
        True,
        f"record {body.get('sequence')} of tenant {checkpoint['tenant']} is in the checkpoint of "
        f"{checkpoint['created_at']}",
    )
