from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .models import ApiKey

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class Actor:
    """Who performs a write, for the history and audit: a user, and the API key if one was used."""

    user: User | None
    api_key: ApiKey | None = None
