"""Rate limits per caller (an API key, or a signed-in member) and per tenant, on every tenant-scoped
endpoint. Rates come from settings.API_THROTTLE_RATES (DRF's syntax, "600/min"); the counters live
in settings.API_THROTTLE_STORAGE (Redis on the full profile, so every process counts together).

Each limit is a moving window kept by the `limits` library: on Redis one Lua script per limit
checks the window and records the request atomically, so concurrent requests from several
processes are all counted. (DRF's SimpleRateThrottle read the whole timestamp list, up to the
tenant's 3,000 entries, and wrote it back: two round trips per limit, and requests that raced lost
each other's entries; docs/benchmarks/throughput-profile.md.) The caller's limit is taken first, and
a request it refuses is not counted against the tenant: one key over its limit cannot use up the
budget its tenant's other keys share."""

from __future__ import annotations

import functools
import logging
import math
import time

from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerSecond, storage, strategies
from limits.errors import StorageError
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

log = logging.getLogger(__name__)


@functools.cache
def _limiter(uri: str) -> strategies.MovingWindowRateLimiter:
    """One limiter (and connection pool) per store and process. Store errors arrive wrapped in
    StorageError, so an outage looks the same on every backend."""
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(uri, wrap_exceptions=True))


@functools.cache
def _rate(text: str) -> RateLimitItem:
    """DRF's rate syntax ("600/min", "10/s", "5000/day"), parsed by DRF as the settings always were."""
    amount, seconds = SimpleRateThrottle.parse_rate(None, text)  # type: ignore[arg-type]  # self is unused
    return RateLimitItemPerSecond(amount, seconds)


class TenantScopedThrottle(BaseThrottle):
    """The caller's limit, then the tenant's; DRF answers 429 with Retry-After when either is spent."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request, view) -> bool:  # type: ignore[no-untyped-def]
        context = getattr(request, "tenant_context", None)
        if context is None:  # public endpoints (health, schema) resolve no tenant
            return True
        caller = f"key-{context.api_key.pk}" if context.api_key else f"user-{context.user.pk}"
        limiter = _limiter(settings.API_THROTTLE_STORAGE)
        # When the counters' store is down, answering without a limit beats refusing every query of
        # every tenant (the limit protects capacity; access control does not depend on it).
        try:
            for scope, ident in (("caller", caller), ("tenant", f"tenant-{context.tenant.pk}")):
                limit = _rate(settings.API_THROTTLE_RATES[scope])
                if not limiter.hit(limit, scope, ident):
                    reset_at = limiter.get_window_stats(limit, scope, ident).reset_time
                    self._wait = max(1, math.ceil(reset_at - time.time()))
                    return False
        except StorageError as exc:
            log.warning("rate limit not applied, its store is unavailable: %s", exc.storage_error)
        return True

    def wait(self) -> int | None:
        return self._wait
