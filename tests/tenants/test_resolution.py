"""The tenant-resolution matrix: every bad case answers 401/403/404 with a JSON body saying what is
wrong, never a 500, never another tenant's data."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.tenants import services
from apps.tenants.models import ApiKey, Role
from tests.conftest import key_client, user_client

WHOAMI = "/api/v1/tenant"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


@pytest.mark.django_db
class TestApiKeys:
    def test_a_valid_key_resolves_to_its_own_tenant(self, acme, globex):
        response = key_client(acme.key()).get(WHOAMI)
        assert response.status_code == 200
        assert response.json()["tenant"]["slug"] == "acme"
        assert response.json()["acting_as"]["kind"] == "api_key"

    def test_the_x_api_key_header_works_too(self, acme, api):
        response = api.get(WHOAMI, HTTP_X_API_KEY=acme.key())
        assert response.status_code == 200

    def test_no_credentials(self, api):
        response = api.get(WHOAMI)
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Api-Key")

    @pytest.mark.parametrize("raw", ["nonsense", "kp_1234_short", "kp_zzzzzzzzzzzz_" + "a" * 43, ""])
    def test_malformed_key(self, api, raw, db):
        response = api.get(WHOAMI, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert_error(response, 401, "api_key_malformed")

    def test_unknown_key(self, acme):
        assert_error(key_client("kp_0123456789ab_" + "A" * 43).get(WHOAMI), 401, "api_key_invalid")

    def test_known_prefix_with_a_wrong_secret(self, acme):
        raw = acme.key()
        forged = raw[:-5] + ("AAAAA" if not raw.endswith("AAAAA") else "BBBBB")
        assert_error(key_client(forged).get(WHOAMI), 401, "api_key_invalid")

    def test_revoked_key(self, acme):
        raw = acme.key()
        services.api_key_revoke(api_key=ApiKey.objects.across_tenants().get(prefix=raw[3:15]))
        body = assert_error(key_client(raw).get(WHOAMI), 401, "api_key_revoked")
        assert "revoked on" in body["message"]

    def test_expired_key(self, acme):
        raw = acme.key(expires_at=timezone.now() + timedelta(seconds=30))
        ApiKey.objects.across_tenants().filter(prefix=raw[3:15]).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert_error(key_client(raw).get(WHOAMI), 401, "api_key_expired")

    def test_key_of_an_inactive_tenant(self, acme):
        raw = acme.key()
        acme.tenant.is_active = False
        acme.tenant.save()
        assert_error(key_client(raw).get(WHOAMI), 403, "tenant_inactive")

    def test_key_with_a_header_naming_another_tenant(self, acme, globex):
        client = key_client(acme.key())
        response = client.get(WHOAMI, HTTP_X_TENANT="globex")
        assert_error(response, 403, "tenant_mismatch")
        assert "globex" not in str(response.json()["extra"])

    def test_use_is_recorded(self, acme):
        raw = acme.key()
        assert ApiKey.objects.across_tenants().get(prefix=raw[3:15]).last_used_at is None
        key_client(raw).get(WHOAMI)
        assert ApiKey.objects.across_tenants().get(prefix=raw[3:15]).last_used_at is not None


@pytest.mark.django_db
class TestLoggedInUsers:
    def test_member_with_the_tenant_header(self, acme):
        response = user_client(acme.reader, "acme").get(WHOAMI)
        assert response.status_code == 200
        assert response.json()["acting_as"] == {"kind": "user", "username": "reader", "role": "reader"}

    def test_real_basic_authentication(self, acme, api):
        user = get_user_model().objects.create_user("alice", password="a-long-test-password")
        services.membership_add(tenant=acme.tenant, user=user, username="alice", role=Role.EDITOR)
        api.credentials(HTTP_AUTHORIZATION=_basic("alice", "a-long-test-password"), HTTP_X_TENANT="acme")
        assert api.get(WHOAMI).json()["acting_as"]["role"] == "editor"

    def test_wrong_password(self, acme, api):
        get_user_model().objects.create_user("alice", password="a-long-test-password")
        api.credentials(HTTP_AUTHORIZATION=_basic("alice", "wrong"), HTTP_X_TENANT="acme")
        assert api.get(WHOAMI).status_code == 401

    def test_missing_tenant_header(self, acme):
        body = assert_error(user_client(acme.reader).get(WHOAMI), 403, "tenant_header_missing")
        assert body["extra"]["your_tenants"] == ["acme"]

    def test_unknown_tenant(self, acme):
        assert_error(user_client(acme.reader, "nope").get(WHOAMI), 404, "tenant_not_found")

    def test_tenant_without_membership_looks_like_an_unknown_one(self, acme, globex):
        existing = assert_error(user_client(acme.reader, "globex").get(WHOAMI), 404, "tenant_not_found")
        unknown = assert_error(user_client(acme.reader, "nope").get(WHOAMI), 404, "tenant_not_found")
        assert existing["message"].replace("globex", "nope") == unknown["message"]
        assert existing["extra"] == unknown["extra"] == {}

    def test_inactive_tenant(self, acme):
        acme.tenant.is_active = False
        acme.tenant.save()
        assert_error(user_client(acme.reader, "acme").get(WHOAMI), 403, "tenant_inactive")

    def test_deactivated_membership(self, acme):
        services.member_set_active(membership=acme.reader, active=False)
        assert_error(user_client(acme.reader, "acme").get(WHOAMI), 403, "membership_inactive")

    def test_a_user_of_two_tenants_picks_one_per_request(self, acme, globex):
        services.membership_add(tenant=globex.tenant, user=acme.reader.user, username="visitor", role=Role.EDITOR)
        assert user_client(acme.reader, "acme").get(WHOAMI).json()["acting_as"]["role"] == "reader"
        assert user_client(acme.reader, "globex").get(WHOAMI).json()["acting_as"]["role"] == "editor"

    def test_a_role_without_the_scope_is_refused(self, acme):
        body = assert_error(user_client(acme.reader, "acme").get("/api/v1/users"), 403, "scope_missing")
        assert body["extra"]["required_scope"] == "users:manage"


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
