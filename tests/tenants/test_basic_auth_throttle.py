"""Issue 15, item 6: failed Basic-auth logins are throttled per client IP and per username."""

import base64

import pytest
from django.core.cache import cache

from apps.tenants import services
from apps.tenants.models import Role

URL = "/api/v1/tenant"
PASSWORD = "right-password-for-tests"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def member(acme, settings):
    cache.clear()
    settings.BASIC_AUTH_FAILURES_PER_MINUTE = 3
    membership = services.member_create(tenant=acme.tenant, username="dora", role=Role.READER)
    membership.user.set_password(PASSWORD)
    membership.user.save()
    yield membership.user.get_username()
    cache.clear()


def _get(client, username, password, ip="10.0.0.1"):
    return client.get(URL, HTTP_AUTHORIZATION=_basic(username, password), HTTP_X_TENANT="acme", REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_a_correct_password_works(client, member):
    assert _get(client, member, PASSWORD).status_code == 200


@pytest.mark.django_db
def test_failures_for_one_username_lock_it_out_from_any_address(client, member):
    codes = [_get(client, member, "wrong", ip=f"10.0.1.{i}").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    # Even the right password waits now, from yet another address: guessing cannot go on elsewhere.
    response = _get(client, member, PASSWORD, ip="10.0.2.1")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_failures_from_one_address_lock_it_out_for_every_username(client, member):
    codes = [_get(client, f"guess{i}", "wrong", ip="10.9.9.9").status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert _get(client, member, PASSWORD, ip="10.9.9.9").status_code == 429
    assert _get(client, member, PASSWORD, ip="10.9.9.10").status_code == 200  # another address, untouched username


@pytest.mark.django_db
def test_successes_are_not_counted(client, member):
    assert all(_get(client, member, PASSWORD).status_code == 200 for _ in range(6))
