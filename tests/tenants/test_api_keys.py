import io

import pytest
from django.core.management import call_command

from apps.tenants.models import ApiKey, Scope
from tests.conftest import key_client, user_client


@pytest.mark.django_db
def test_the_raw_key_is_shown_once_and_never_stored(acme):
    response = user_client(acme.owner, "acme").post(
        "/api/v1/api-keys", {"name": "support bot", "scopes": ["search", "ask"]}, format="json"
    )
    assert response.status_code == 201, response.content
    raw = response.json()["key"]
    secret = raw.split("_", 2)[2]

    dump = io.StringIO()
    call_command("dumpdata", "--all", stdout=dump)  # every row of every table (--all: the base managers, unscoped)
    assert secret not in dump.getvalue()
    assert raw not in dump.getvalue()
    stored = ApiKey.objects.across_tenants().get(prefix=response.json()["prefix"])
    assert stored.key_hash != raw and len(stored.key_hash) == 64

    listed = user_client(acme.owner, "acme").get("/api/v1/api-keys").json()["results"]
    assert [k["prefix"] for k in listed] == [stored.prefix]
    assert "key" not in listed[0]
    assert key_client(raw).get("/api/v1/tenant").json()["scopes"] == ["ask", "search"]


@pytest.mark.django_db
def test_a_revoked_key_stops_working_at_once(acme):
    raw = acme.key(scopes=[Scope.SEARCH])
    prefix = raw[3:15]
    response = user_client(acme.owner, "acme").post(f"/api/v1/api-keys/{prefix}/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert key_client(raw).get("/api/v1/tenant").json()["code"] == "api_key_revoked"


@pytest.mark.django_db
def test_a_key_cannot_hand_out_scopes_it_does_not_hold(acme):
    manager = key_client(acme.key(scopes=[Scope.KEYS_MANAGE, Scope.SEARCH]))
    response = manager.post("/api/v1/api-keys", {"name": "x", "scopes": ["audit:read"]}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "scope_escalation"
    assert manager.post("/api/v1/api-keys", {"name": "x", "scopes": ["search"]}, format="json").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, field",
    [
        ({"name": "x", "scopes": ["fly"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"scopes": ["search"]}, "name"),
        ({"name": "x", "scopes": ["search"], "expires_at": "yesterday"}, "expires_at"),
    ],
)
def test_bad_key_requests_say_which_field_to_fix(acme, payload, field):
    response = user_client(acme.owner, "acme").post("/api/v1/api-keys", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["extra"]["fields"]


@pytest.mark.django_db
def test_an_expiry_in_the_past_is_refused(acme):
    response = user_client(acme.owner, "acme").post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["search"], "expires_at": "2000-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_expiry"


@pytest.mark.django_db
def test_another_tenants_key_cannot_be_revoked(acme, globex):
    raw = globex.key()
    response = user_client(acme.owner, "acme").post(f"/api/v1/api-keys/{raw[3:15]}/revoke")
    assert response.status_code == 404
    assert key_client(raw).get("/api/v1/tenant").status_code == 200
