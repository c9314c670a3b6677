"""Rate limits per caller (key or member) and per tenant (apps/core/throttling.py). On the full
profile the windows live in the real Redis, as they do when the platform serves."""

import logging
import threading
from types import SimpleNamespace

import pytest

from apps.core import throttling
from apps.tenants.models import Scope
from tests.conftest import key_client


@pytest.fixture
def limits(settings):
    """Small rates, on windows emptied before and after (they outlive a test in Redis)."""
    store = throttling._limiter(settings.API_THROTTLE_STORAGE).storage
    settings.API_THROTTLE_RATES = {"caller": "3/min", "tenant": "5/min"}
    store.reset()
    yield settings
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


def test_concurrent_requests_are_each_counted(limits):
    """Requests racing from many threads (on the full profile, through Redis like several gunicorn
    workers) are all counted: exactly the limit gets through. A read-then-write counter lets more."""
    limits.API_THROTTLE_RATES = {"caller": "25/min", "tenant": "1000/min"}
    context = SimpleNamespace(api_key=SimpleNamespace(pk=987_654), user=None, tenant=SimpleNamespace(pk=987_654))
    request = SimpleNamespace(tenant_context=context)
    allowed, start = [], threading.Barrier(8)

    def caller():
        start.wait()
        for _ in range(10):
            allowed.append(throttling.TenantScopedThrottle().allow_request(request, None))

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 80 and sum(allowed) == 25


@pytest.mark.django_db
def test_when_the_store_is_down_requests_are_served_and_the_outage_logged(acme, limits, caplog):
    """The limit protects capacity; access control does not depend on it, so an outage of its store
    must not refuse every query of every tenant."""
    limits.API_THROTTLE_STORAGE = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    client = key_client(acme.key(scopes=[Scope.SEARCH]))
    with caplog.at_level(logging.WARNING, logger="apps.core.throttling"):
        assert [search(client) for _ in range(5)] == [200] * 5  # over the 3/min it would have enforced
    assert "rate limit not applied, its store is unavailable" in caplog.text


@pytest.mark.parametrize(("rate", "amount", "seconds"), [("600/min", 600, 60), ("10/s", 10, 1), ("5000/day", 5000, 86400)])
def test_rates_keep_drfs_syntax(rate, amount, seconds):
    item = throttling._rate(rate)
    assert (item.amount, item.get_expiry()) == (amount, seconds)


@pytest.mark.django_db
def test_health_is_never_throttled(limits, client):
    assert all(client.get("/health/live").status_code == 200 for _ in range(10))
