"""Rate limits per caller (key or member) and per tenant (apps/core/throttling.py). The other
suites keep the windows in memory; the concurrency test also runs on the real Redis, as several
gunicorn workers share it, under a key prefix of its own."""

import threading
import uuid
from types import SimpleNamespace

import pytest
from django.conf import settings as live_settings
from limits import storage, strategies

from apps.core import throttling
from apps.tenants.models import Scope
from tests.conftest import key_client


@pytest.fixture
def limits(settings, monkeypatch):
    """Small rates, on an empty in-memory store, with no outage remembered from another test."""
    monkeypatch.setattr(throttling, "_store_down_until", 0.0)
    throttling._limiter(settings.API_THROTTLE_STORAGE).storage.reset()
    settings.API_THROTTLE_RATES = {"caller": "3/min", "tenant": "5/min"}
    return settings


@pytest.fixture
def redis_windows(limits, monkeypatch):
    """The real Redis of the full profile (the database the platform keeps its windows in), under a
    prefix no other run shares; its keys are removed afterwards."""
    url = live_settings.CELERY_BROKER_URL.rsplit("/", 1)[0] + "/1"
    store = storage.RedisStorage(url, key_prefix=f"kp-test-{uuid.uuid4().hex}", wrap_exceptions=True)
    monkeypatch.setattr(throttling, "_limiter", lambda uri: strategies.MovingWindowRateLimiter(store))
    yield
    store.reset()


def search(client):
    return client.post("/api/v1/search", {"query": "travel"}, format="json").status_code


@pytest.mark.django_db
def test_a_key_is_limited_then_told_when_to_come_back(acme, limits):
    client = key_client(acme.key(scopes=[Scope.SEARCH]))
    assert [search(client) for _ in range(4)] == [200, 200, 200, 429]
    response = client.post("/api/v1/search", {"query": "travel"}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_tenant_limit_spans_its_keys_and_spares_other_tenants(acme, globex, limits):
    first, second = (key_client(acme.key(scopes=[Scope.SEARCH])) for _ in range(2))
    codes = [search(c) for c in (first, first, first, second, second, second)]
    assert codes == [200, 200, 200, 200, 200, 429]  # 5 per tenant, though each key is under its own 3
    other = key_client(globex.key(scopes=[Scope.SEARCH]))
    assert search(other) == 200


@pytest.mark.django_db
def test_a_key_over_its_own_limit_does_not_spend_its_tenants(acme, limits):
    """A runaway key is refused by its own limit; the requests refused there leave the tenant's
    budget to the tenant's other keys."""
    limits.API_THROTTLE_RATES = {"caller": "2/min", "tenant": "4/min"}
    runaway, other = (key_client(acme.key(scopes=[Scope.SEARCH])) for _ in range(2))
    assert [search(runaway) for _ in range(10)] == [200, 200] + [429] * 8
    assert [search(other) for _ in range(3)] == [200, 200, 429]  # the tenant's 4: 2 + 2


def racing_callers(threads: int, each: int) -> list[bool]:
    context = SimpleNamespace(api_key=SimpleNamespace(pk=987_654), user=None, tenant=SimpleNamespace(pk=987_654))
    request, allowed, start = SimpleNamespace(tenant_context=context), [], threading.Barrier(threads)

    def caller():
        start.wait()
        for _ in range(each):
            allowed.append(throttling.TenantScopedThrottle().allow_request(request, None))

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return allowed


def test_concurrent_requests_are_each_counted_in_memory(limits):
    limits.API_THROTTLE_RATES = {"caller": "25/min", "tenant": "1000/min"}
    allowed = racing_callers(8, 10)
    assert len(allowed) == 80 and sum(allowed) == 25


@pytest.mark.full_profile
def test_concurrent_requests_are_each_counted_in_redis(redis_windows, limits):
    """Requests racing on the shared Redis are all counted: exactly the limit gets through. (DRF's
    read-then-write throttle let all 80 of these through.)"""
    limits.API_THROTTLE_RATES = {"caller": "25/min", "tenant": "1000/min"}
    allowed = racing_callers(8, 10)
    assert len(allowed) == 80 and sum(allowed) == 25


@pytest.mark.parametrize(
    ("rate", "amount", "seconds"), [("600/min", 600, 60), ("10/s", 10, 1), ("5000/day", 5000, 86400)]
)
def test_rates_keep_drfs_syntax(rate, amount, seconds):
    item = throttling.rate(rate)
    assert (item.amount, item.get_expiry()) == (amount, seconds)


@pytest.mark.parametrize("bad", ["600", "600/fortnight", "many/min", "0/min", None])
def test_a_mistyped_rate_is_found_by_the_system_check(settings, bad):
    settings.API_THROTTLE_RATES = {"caller": bad, "tenant": "3000/min"}
    errors = throttling.check_rates()
    assert [e.id for e in errors] == ["core.E001"] and "'600/min'" in errors[0].msg


@pytest.mark.django_db
def test_health_is_never_throttled(limits, client):
    assert all(client.get("/health/live").status_code == 200 for _ in range(10))
