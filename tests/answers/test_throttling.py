"""Rate limits per caller (key or member) and per tenant."""

import pytest
from django.core.cache import cache

from apps.tenants.models import Scope
from tests.conftest import key_client


@pytest.fixture
def limits(settings):
    cache.clear()
    settings.API_THROTTLE_RATES = {"caller": "3/min", "tenant": "5/min"}
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_key_is_limited_then_told_when_to_come_back(acme, limits):
    client = key_client(acme.key(scopes=[Scope.SEARCH]))
    codes = [client.post("/api/v1/search", {"query": "travel"}, format="json").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.post("/api/v1/search", {"query": "travel"}, format="json")
    assert response.status_code == 429 and response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_tenant_limit_spans_its_keys_and_spares_other_tenants(acme, globex, limits):
    first, second = (key_client(acme.key(scopes=[Scope.SEARCH])) for _ in range(2))
    codes = [
        c.post("/api/v1/search", {"query": "travel"}, format="json").status_code
        for c in (first, first, first, second, second, second)
    ]
    assert codes == [200, 200, 200, 200, 200, 429]  # 5 per tenant, though each key is under its own 3
    other = key_client(globex.key(scopes=[Scope.SEARCH]))
    assert other.post("/api/v1/search", {"query": "travel"}, format="json").status_code == 200


@pytest.mark.django_db
def test_health_is_never_throttled(limits, client):
    assert all(client.get("/health/live").status_code == 200 for _ in range(10))
