from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from .models import ApiKey


@dataclass(frozen=True)
class Actor:
    """Who performs a write, for the history and audit: a user, and the API key if one was used."""

    user: AbstractBaseUser | None
    api_key: ApiKey | None = None
