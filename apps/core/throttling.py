"""Rate limits per caller (an API key, or a member of this tenant) and per tenant, on every
tenant-scoped endpoint. Rates come from settings.API_THROTTLE_RATES (DRF's syntax, "600/min"); the
windows live in settings.API_THROTTLE_STORAGE (Redis on the full profile, so every process counts
together).

Each limit is a moving window kept by the `limits` library: on Redis one Lua script per limit
checks the window and records the request atomically, so concurrent requests from several
processes are all counted. (DRF's SimpleRateThrottle read the whole timestamp list, up to the
tenant's 3,000 entries, and wrote it back: two round trips per limit, and requests that raced lost
each other's entries; 8 threads sending 80 requests at a limit of 25 all got through.) The caller's
limit is taken first, and a request it refuses is not counted against the tenant: one key over its
limit cannot use up the budget its tenant's other keys share. (A request the tenant's limit
refuses has been counted against its caller, as before.)"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from limits import RateLimitItem, RateLimitItemPerSecond, storage, strategies
from limits.errors import StorageError
from rest_framework.throttling import BaseThrottle

if TYPE_CHECKING:
    from django.core.checks import CheckMessage

log = logging.getLogger(__name__)

# A hung store must not hold every request: past this the request is served without a limit.
STORE_TIMEOUT = 0.25  # seconds, to connect and per reply (Redis answers in well under a millisecond)
# After a failure the store is left alone this long: no request waits on it, one warning is logged.
STORE_RETRY_AFTER = 5.0  # seconds
_store_down_until = 0.0


@functools.cache
def _limiter(uri: str) -> strategies.MovingWindowRateLimiter:
    """One limiter (and connection pool) per store and process. Store errors arrive wrapped in
    StorageError, so an outage looks the same on every backend."""
    options = {}
    if uri.startswith(("redis://", "rediss://")):  # the URI's own query string still wins
        options = {"socket_timeout": STORE_TIMEOUT, "socket_connect_timeout": STORE_TIMEOUT}
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(uri, wrap_exceptions=True, **options))


PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@functools.cache
def rate(text: str) -> RateLimitItem:
    """DRF's rate syntax ("600/min", "10/s", "5000/day"), as the settings have always said it; a
    period DRF would have read by its first letter ("5/millennium") is refused, not guessed."""
    amount, _, period = str(text).partition("/")
    if not amount.isdigit() or int(amount) < 1 or period not in PERIODS:
        raise ImproperlyConfigured(
            f"API_THROTTLE_RATES holds {text!r}: a rate is '<requests>/<s|min|h|day>', like '600/min'."
        )
    return RateLimitItemPerSecond(int(amount), PERIODS[period])


def check_rates(app_configs: object = None, **kwargs: object) -> list[CheckMessage]:
    """System check: a mistyped rate is found at deploy time, not as a 500 on every request."""
    from django.core import checks

    errors: list[CheckMessage] = []
    for scope in ("caller", "tenant"):
        try:
            rate(settings.API_THROTTLE_RATES[scope])
        except (ImproperlyConfigured, KeyError) as error:
            errors.append(checks.Error(f"API_THROTTLE_RATES[{scope!r}]: {error}", id="core.E001"))
    return errors


class TenantScopedThrottle(BaseThrottle):
    """The caller's limit, then the tenant's; DRF answers 429 with Retry-After when either is spent."""

    def __init__(self) -> None:
        self._wait: int | None = None

    def allow_request(self, request, view) -> bool:
        global _store_down_until
        context = getattr(request, "tenant_context", None)
        if context is None:  # public endpoints (health, schema) resolve no tenant
            return True
        # A member's window is theirs in this tenant: a person in two tenants has one in each.
        caller = f"key-{context.api_key.pk}" if context.api_key else f"member-{context.tenant.pk}-{context.user.pk}"
        limits = (("caller", caller), ("tenant", f"tenant-{context.tenant.pk}"))
        if time.monotonic() < _store_down_until:
            return True
        limiter = _limiter(settings.API_THROTTLE_STORAGE)
        # When the windows' store is down, answering without a limit beats refusing every query of
        # every tenant (the limit protects capacity; access control does not depend on it).
        try:
            for scope, ident in limits:
                limit = rate(settings.API_THROTTLE_RATES[scope])
                if not limiter.hit(limit, scope, ident):
                    reset_at = limiter.get_window_stats(limit, scope, ident).reset_time
                    self._wait = min(limit.get_expiry(), max(1, math.ceil(reset_at - time.time())))
                    return False
        except StorageError as exc:
            _store_down_until = time.monotonic() + STORE_RETRY_AFTER
            log.warning(
                "rate limits not applied for %.0f s, their store is unavailable: %s",
                STORE_RETRY_AFTER,
                exc.storage_error,
            )
        return True

    def wait(self) -> int | None:
        return self._wait
