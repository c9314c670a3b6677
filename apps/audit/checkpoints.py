"""Signed checkpoints of every tenant's chain head, written outside the database.

A checkpoint says "at this time, tenant T's chain had N entries and the N-th hashed to H", signed
with the current audit key (Ed25519). It goes to the `audit_checkpoints` storage (a directory, or
an S3-compatible bucket: AUDIT_CHECKPOINT_STORAGE), under a name that is never reused, and nothing
here ever overwrites or deletes one. `audit_verify` then checks the database against every
checkpoint: whoever can rewrite the database cannot take back what a checkpoint already saw
(Certificate Transparency's signed tree heads play the same part for its logs).

Before signing, the checkpointer verifies the entries since the previous checkpoint: it never
signs a head that went backwards or a chain that no longer links to what it signed before.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone

from apps.tenants.models import Tenant

from . import keys, merkle
from .chain import GENESIS, anchors_check, hash_at, stored_digests, walk
from .models import ChainHead

logger = logging.getLogger(__name__)

FORMAT = "knowledge-platform/audit-checkpoint/1"
STORAGE = "audit_checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    name: str
    tenant_id: int
    sequence: int
    hash: str
    created_at: datetime
    key_id: str
    valid: bool  # the signature checks out under the ring's key of that id
    tree_start: int = 0  # the Merkle tree holds the entries after this sequence (the retention anchor's)
    root: str = ""  # its root, over the entries' content digests, through `sequence`
    document: dict | None = None  # the signed JSON as stored, for proofs


def _payload(
    tenant_id: int,
    tenant_slug: str,
    sequence: int,
    hash_: str,
    created_at: datetime,
    key_id: str,
    tree_start: int = 0,
    root: str = "",
) -> dict:
    return {
        "format": FORMAT,
        "tenant_id": tenant_id,
        "tenant": tenant_slug,
        "sequence": sequence,
        "hash": hash_,
        "created_at": created_at.isoformat(),
        "key_id": key_id,
        "tree_start": tree_start,
        "root": root,
    }


def _message(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _parse(name: str, raw: bytes) -> Checkpoint:
    try:
        document = json.loads(raw)
        signed = {k: v for k, v in document.items() if k != "signature"}
        created_at = datetime.fromisoformat(signed["created_at"])
        valid = signed.get("format") == FORMAT and keys.signature_valid(
            str(signed["key_id"]), _message(signed), str(document["signature"])
        )
        return Checkpoint(
            name,
            int(signed["tenant_id"]),
            int(signed["sequence"]),
            str(signed["hash"]),
            created_at,
            str(signed["key_id"]),
            valid,
            int(signed.get("tree_start", 0)),
            str(signed.get("root", "")),
            document,
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return Checkpoint(name, 0, 0, "", timezone.now(), "", False)


def _names(tenant) -> list[str]:
    """The checkpoint files of the tenant, oldest first (names begin with the zero-padded sequence)."""
    folder = str(tenant.pk)
    try:
        # Not storage.exists(folder): on S3 a folder is a key prefix, no object, and never "exists".
        _, files = storages[STORAGE].listdir(folder)
    except FileNotFoundError:  # a directory sink without the folder yet; a bucket just lists nothing
        return []
    return [f"{folder}/{name}" for name in sorted(f for f in files if f.endswith(".json"))]


def checkpoint_newest(tenant) -> Checkpoint | None:
    """The validly signed checkpoint of the highest sequence, reading from the newest name back
    (a proof or the next checkpoint needs only this one, not the whole history)."""
    for path in reversed(_names(tenant)):
        checkpoint = _read(tenant, path)
        if checkpoint.valid:
            return checkpoint
    return None


def _read(tenant, path: str) -> Checkpoint:
    with storages[STORAGE].open(path, "rb") as handle:
        checkpoint = _parse(path, handle.read())
    # A file of this tenant's folder that names another tenant is not this tenant's checkpoint.
    if checkpoint.tenant_id in (tenant.pk, 0):
        return checkpoint
    return Checkpoint(path, tenant.pk, checkpoint.sequence, checkpoint.hash, checkpoint.created_at, "", False)


def checkpoints_read(tenant) -> list[Checkpoint]:
    """Every checkpoint of the tenant in the sink, oldest name first."""
    return [_read(tenant, path) for path in _names(tenant)]


def orphaned_folders() -> list[str]:
    """Folders of the sink holding a validly signed checkpoint of a tenant the database no longer
    has: a tenant deleted with its whole trail is still seen."""
    storage = storages[STORAGE]
    try:
        folders, _ = storage.listdir("")
    except FileNotFoundError:
        return []
    known = {str(pk) for pk in Tenant.objects.values_list("pk", flat=True)}
    orphans = []
    for folder in sorted(f for f in folders if f not in known):
        stand_in = Tenant(pk=int(folder)) if folder.isascii() and folder.isdigit() else None
        if stand_in is None or any(c.valid for c in checkpoints_read(stand_in)):
            orphans.append(folder)
    return orphans


@dataclass(frozen=True)
class CheckpointReport:
    tenant: str
    sequence: int | None  # None: nothing written
    name: str = ""
    refused: str = ""  # why it would not sign


def checkpoint_write(*, tenant: Tenant, force: bool = False, now: datetime | None = None) -> CheckpointReport:
    """Signs the tenant's chain head and stores it in the sink. Skipped when the newest checkpoint
    already says the same (unless `force`); refused when the chain since that checkpoint does not
    verify (the report says why, and the error is logged for the operator)."""
    newest = checkpoint_newest(tenant)
    anchor, bad_anchor = anchors_check(tenant)
    if bad_anchor is not None:
        return _refuse(tenant, str(bad_anchor))
    # Verify from the newest point already vouched for: a signed checkpoint, or a signed anchor.
    # A checkpoint written before the newest anchor vouches for a tree that no longer exists.
    tree_start = anchor.through_sequence if anchor else 0
    if newest is not None and newest.sequence == tree_start and anchor is not None and newest.hash != anchor.last_hash:
        return _refuse(tenant, f"the retention anchor through {tree_start} contradicts the checkpoint at {tree_start}")
    if newest is None or newest.tree_start != tree_start or newest.sequence <= tree_start:
        start, start_hash = tree_start, anchor.last_hash if anchor else GENESIS
    else:
        start, start_hash = newest.sequence, newest.hash
        if start > 0 and hash_at(tenant, start) != newest.hash:
            return _refuse(
                tenant,
                f"the entry at {start} no longer has the hash the checkpoint of "
                f"{newest.created_at.isoformat(timespec='seconds')} signed",
            )
    head = ChainHead.objects.filter(tenant=tenant).first()
    walked = walk(tenant, after=start, previous=start_hash)
    if walked.first_break is not None:
        return _refuse(tenant, str(walked.first_break))
    if head is not None and head.sequence != walked.last_sequence:
        return _refuse(tenant, f"the chain head says {head.sequence} entries, the chain has {walked.last_sequence}")
    if newest is not None and walked.last_sequence < newest.sequence:
        return _refuse(tenant, f"the chain ends at {walked.last_sequence}, before the checkpoint at {newest.sequence}")
    if (
        newest is not None
        and not force
        and newest.tree_start == tree_start
        and (newest.sequence, newest.hash) == (walked.last_sequence, walked.last_hash)
    ):
        return CheckpointReport(tenant.slug, None)
    # The tree's leaves: the digests already vouched for by the previous checkpoint (their root
    # checked against it), then the ones the walk just recomputed from the content.
    vouched = stored_digests(tenant, after=tree_start, through=start)
    if newest is not None and newest.tree_start == tree_start and newest.sequence == start:
        prefix = merkle.Accumulator()
        for digest in vouched:
            prefix.append(bytes.fromhex(digest))
        if prefix.root() != newest.root:
            return _refuse(
                tenant, f"the content digests up to {start} no longer give the Merkle root signed at {start}"
            )
    leaves = merkle.Accumulator()
    for digest in [*vouched, *(d for _, d in sorted(walked.digests.items()))]:
        leaves.append(bytes.fromhex(digest))
    key, created_at = keys.current(), now or timezone.now()
    payload = _payload(
        tenant.pk,
        tenant.slug,
        walked.last_sequence,
        walked.last_hash,
        created_at,
        key.key_id,
        tree_start,
        leaves.root(),
    )
    body = json.dumps({**payload, "signature": keys.sign(key, _message(payload))}, indent=1, sort_keys=True) + "\n"
    wanted = f"{tenant.pk}/{walked.last_sequence:012d}-{created_at:%Y%m%dT%H%M%S%f}.json"
    # Storages never overwrite: a name already taken gets a fresh one (Django's get_available_name).
    name = storages[STORAGE].save(wanted, ContentFile(body.encode()))
    return CheckpointReport(tenant.slug, walked.last_sequence, name)


def _refuse(tenant, reason: str) -> CheckpointReport:
    logger.error("audit checkpoint of %s refused: %s", tenant.slug, reason)
    return CheckpointReport(tenant.slug, None, refused=reason)


def checkpoint_write_all(*, force: bool = False) -> list[CheckpointReport]:
    """Every tenant; one whose chain cannot be read does not stop the others' checkpoints."""
    reports = []
    for tenant in Tenant.objects.order_by("slug"):
        try:
            reports.append(checkpoint_write(tenant=tenant, force=force))
        except Exception as exc:  # logged and reported; the next tenant still gets its checkpoint
            logger.exception("audit checkpoint of %s failed", tenant.slug)
            reports.append(CheckpointReport(tenant.slug, None, refused=f"failed: {exc!r}"))
    return reports
