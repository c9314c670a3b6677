"""The API key format: ``kp_<prefix>_<secret>``.

The prefix (12 hex characters) is public and finds the row; the secret (43 URL-safe characters,
256 bits) is never stored. A plain SHA-256 digest is enough here: the secret is random and long,
so there is nothing to brute-force, and unlike a peppered hash it survives a SECRET_KEY rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^kp_(?P<prefix>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})$")
KEY_FORMAT_HINT = "expected kp_<12 hex characters>_<43 characters>, as shown when the key was created"


@dataclass(frozen=True)
class GeneratedKey:
    prefix: str
    raw: str
    digest: str


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate() -> GeneratedKey:
    prefix = secrets.token_hex(6)
    raw = f"kp_{prefix}_{secrets.token_urlsafe(32)}"
    return GeneratedKey(prefix=prefix, raw=raw, digest=digest(raw))


def parse_prefix(raw_key: str) -> str | None:
    """The prefix of a well-formed key, None for anything else."""
    match = KEY_PATTERN.match(raw_key)
    return match["prefix"] if match else None


def matches(raw_key: str, stored_digest: str) -> bool:
    # Constant time, so response timing tells nothing about how much of a digest matched.
    return hmac.compare_digest(digest(raw_key), stored_digest)
