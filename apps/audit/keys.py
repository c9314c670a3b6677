"""The audit trail's keys: secrets the database never holds.

`AUDIT_KEYS` (environment) is a comma-separated ring of `key_id:secret` pairs, the current key
first; keep retired keys in the ring so what they keyed still verifies. Each secret (at least 32
characters) is stretched with HKDF into two keys with separate purposes:

- a MAC key: every chain entry's hash is HMAC-SHA256 over its canonical bytes, so someone who can
  write to the database but does not hold the secret cannot re-hash an edited chain;
- an Ed25519 signing key: checkpoints of the chain head and retention anchors are signed, and
  anyone holding only the public key (`manage.py audit_keys`) can check them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MIN_SECRET_LENGTH = 32


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    mac_key: bytes
    signing_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    def public_key_b64(self) -> str:
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"knowledge-platform audit " + purpose).derive(
        secret
    )


def parse_ring(value: str) -> tuple[AuditKey, ...]:
    """`id:secret,id:secret` → keys, current first. Refuses what would make a weak or ambiguous ring."""
    keys, seen = [], set()
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id or not key_id.isascii() or not key_id.replace("-", "").replace("_", "").isalnum():
            raise ImproperlyConfigured(
                "AUDIT_KEYS: each entry is key_id:secret, the id made of letters, digits, - and _."
            )
        if len(key_id) > 32 or key_id in seen:
            raise ImproperlyConfigured(f"AUDIT_KEYS: key id {key_id!r} is longer than 32 characters or repeated.")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ImproperlyConfigured(
                f"AUDIT_KEYS: the secret of {key_id!r} must be at least {MIN_SECRET_LENGTH} characters."
            )
        seen.add(key_id)
        material = secret.encode()
        keys.append(
            AuditKey(
                key_id, _derive(material, b"mac"), Ed25519PrivateKey.from_private_bytes(_derive(material, b"signing"))
            )
        )
    if not keys:
        raise ImproperlyConfigured("AUDIT_KEYS is empty: the audit trail needs at least one key (key_id:secret).")
    return tuple(keys)


@lru_cache(maxsize=4)
def _ring(value: str) -> tuple[AuditKey, ...]:
    return parse_ring(value)


def ring() -> tuple[AuditKey, ...]:
    return _ring(settings.AUDIT["KEYS"])


def current() -> AuditKey:
    return ring()[0]


def get(key_id: str) -> AuditKey | None:
    return next((key for key in ring() if key.key_id == key_id), None)


def mac(key: AuditKey, message: bytes) -> str:
    return hmac.new(key.mac_key, message, hashlib.sha256).hexdigest()


def sign(key: AuditKey, message: bytes) -> str:
    return base64.b64encode(key.signing_key.sign(message)).decode()


def signature_valid(key_id: str, message: bytes, signature: str) -> bool:
    key = get(key_id)
    if key is None or not signature:
        return False
    try:
        key.public_key.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
