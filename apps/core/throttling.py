"""Rate limits per caller (an API key, or a signed-in member) and per tenant, on every tenant-scoped
endpoint. Counters live in the default cache (Redis on the full profile, so every process counts
together). Rates come from settings.API_THROTTLE_RATES (DRF builds a throttle per request)."""

from __future__ import annotations

import logging

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.throttling import SimpleRateThrottle

log = logging.getLogger(__name__)


class _TenantScopedThrottle(SimpleRateThrottle):
    def get_rate(self):
        return settings.API_THROTTLE_RATES[self.scope]

    def allow_request(self, request, view):
        # Counters live in Redis: when it is down, answering without a limit beats refusing every
        # query of every tenant (the limit protects capacity; access control does not depend on it).
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            log.warning("rate limit not applied, its cache is unavailable: %s", exc)
            return True

    def get_cache_key(self, request, view):
        context = getattr(request, "tenant_context", None)
        if context is None:  # public endpoints (health, schema) resolve no tenant
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.ident_for(context)}


class CallerRateThrottle(_TenantScopedThrottle):
    scope = "caller"

    def ident_for(self, context) -> str:
        return f"key-{context.api_key.pk}" if context.api_key else f"user-{context.user.pk}"


class TenantRateThrottle(_TenantScopedThrottle):
    scope = "tenant"

    def ident_for(self, context) -> str:
        return f"tenant-{context.tenant.pk}"
