from __future__ import annotations

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, BasicAuthentication
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.core.exceptions import NotAuthenticated

from .models import ApiKey
from .services import api_key_authenticate

KEYWORD = "Api-Key"

log = logging.getLogger(__name__)


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>` (or `X-Api-Key: <key>`). Authenticates as the key's own
    service user, with the ApiKey as `request.auth`; its tenant is resolved by the permission."""

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        raw_key = self._raw_key(request)
        if raw_key is None:
            return None  # not ours: session or basic authentication may apply
        try:
            api_key = api_key_authenticate(raw_key=raw_key)
        except NotAuthenticated as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        return api_key.service_user, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'

    @staticmethod
    def _raw_key(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == KEYWORD.lower():
            return value.strip()
        if "X-Api-Key" in request.headers:
            return request.headers["X-Api-Key"].strip()
        return None


class ThrottledBasicAuthentication(BasicAuthentication):
    """DRF's Basic authentication, with failed attempts counted per client IP and per username in
    the default cache (Redis on the full profile, so every process counts together). Past
    settings.BASIC_AUTH_FAILURES_PER_MINUTE failures in the current minute, either count answers 429
    with Retry-After, before the password is even checked, so guessing stops for that address and
    for that username wherever it comes from. Successes are not counted."""

    WINDOW = 60  # seconds

    def authenticate_credentials(self, userid, password, request=None):
        now = time.time()
        window = int(now // self.WINDOW)
        counters = [self._key("ip", BaseThrottle().get_ident(request), window), self._key("user", userid, window)]
        limit = settings.BASIC_AUTH_FAILURES_PER_MINUTE
        try:
            counts = cache.get_many(counters)
        except RedisError as exc:  # the limit protects against guessing; a cache outage must not lock everyone out
            log.warning("basic-auth failure limit not applied, its cache is unavailable: %s", exc)
            counts = {}
        if any(count >= limit for count in counts.values()):
            raise exceptions.Throttled(
                wait=math.ceil((window + 1) * self.WINDOW - now),
                detail="Too many failed logins from this address or for this user; try again later.",
            )
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            self._count_failure(counters)
            raise

    @classmethod
    def _key(cls, kind: str, ident, window: int) -> str:
        digest = hashlib.sha256(str(ident).encode()).hexdigest()[:32]  # any username is a safe cache key
        return f"basic-auth-failures:{kind}:{digest}:{window}"

    def _count_failure(self, counters: list[str]) -> None:
        try:
            for key in counters:
                if not cache.add(key, 1, timeout=self.WINDOW * 2):
                    try:
                        cache.incr(key)
                    except ValueError:  # expired between add and incr
                        cache.add(key, 1, timeout=self.WINDOW * 2)
        except RedisError as exc:
            log.warning("basic-auth failure not counted, its cache is unavailable: %s", exc)
