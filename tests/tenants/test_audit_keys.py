"""Issue 15, item 2: a key never carries a scope its creator's role may not use itself. Owners and
admins may not read the audit trail, so they may not create a key that does (API and admin site);
only a platform operator (a superuser, on the admin site) creates audit:read keys."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.tenants import services
from apps.tenants.models import ApiKey, Role, Scope
from apps.tenants.resolution import ROLE_SCOPES
from tests.conftest import key_client, user_client


@pytest.mark.django_db
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_an_owner_or_admin_cannot_create_an_audit_key(acme, role):
    member = acme.owner if role == Role.OWNER else services.member_create(tenant=acme.tenant, username="ada", role=role)
    client = user_client(member, "acme")
    assert client.get("/api/v1/audit/records").status_code == 403  # what the docs say
    response = client.post("/api/v1/api-keys", {"name": "peek", "scopes": ["search", "audit:read"]}, format="json")
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "scope_not_usable"
    assert "audit:read" in body["message"] and "compliance" in body["message"] and "superuser" in body["message"]
    assert not ApiKey.objects.across_tenants().filter(name="peek").exists()
    # Everything else the role may use, it may still hand out.
    assert (
        client.post("/api/v1/api-keys", {"name": "bot", "scopes": ["search", "keys:manage"]}, format="json").status_code
        == 201
    )


@pytest.mark.django_db
def test_the_rule_is_the_audit_apis_rule():
    from apps.tenants.resolution import role_may_use

    for role in Role.values:
        assert role_may_use(role, Scope.AUDIT_READ) == (role == Role.COMPLIANCE)
    # No member role both creates keys and reads the audit: only operators create audit keys.
    assert not any(Scope.KEYS_MANAGE in ROLE_SCOPES[r] and role_may_use(r, Scope.AUDIT_READ) for r in Role.values)


@pytest.mark.django_db
def test_a_compliance_member_cannot_manage_keys_at_all(acme):
    carol = services.member_create(tenant=acme.tenant, username="carol", role=Role.COMPLIANCE)
    response = user_client(carol, "acme").post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["audit:read"]}, format="json"
    )
    assert response.status_code == 403 and response.json()["code"] == "scope_missing"


@pytest.mark.django_db
def test_a_key_created_by_an_owner_key_cannot_pass_audit_on(acme):
    """A key an owner made with keys:manage acts within what the owner could use: no audit:read."""
    owner = user_client(acme.owner, "acme")
    raw = owner.post("/api/v1/api-keys", {"name": "mgr", "scopes": ["keys:manage", "search"]}, format="json").json()[
        "key"
    ]
    response = key_client(raw).post("/api/v1/api-keys", {"name": "x", "scopes": ["audit:read"]}, format="json")
    assert response.status_code == 403


@pytest.fixture
def admin_staff(acme):
    user = get_user_model().objects.create_user("staffer", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="tenants"))
    services.membership_add(tenant=acme.tenant, user=user, username="staffer", role=Role.OWNER)
    client = Client()
    client.force_login(user)
    return client


def _admin_add(client, acme, scopes):
    return client.post(
        "/admin/tenants/apikey/add/",
        {"tenant": acme.tenant.pk, "name": "from admin", "scopes": scopes, "expires_at": ""},
        follow=True,
    )


@pytest.mark.django_db
def test_an_owner_on_the_admin_site_cannot_create_an_audit_key(admin_staff, acme):
    response = _admin_add(admin_staff, acme, ["audit:read"])
    messages = [str(m) for m in response.context["messages"]]
    assert any("audit:read" in m and "compliance" in m for m in messages), messages
    assert not ApiKey.objects.across_tenants().filter(name="from admin").exists()


@pytest.mark.django_db
def test_a_superuser_creates_an_audit_key_on_the_admin_site_and_it_reads_the_audit(acme):
    root = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client = Client()
    client.force_login(root)
    response = _admin_add(client, acme, ["audit:read"])
    raw = next(str(m) for m in response.context["messages"] if "shown this once" in str(m)).split()[-1]
    assert ApiKey.objects.across_tenants().get(name="from admin").scopes == ["audit:read"]
    assert key_client(raw).get("/api/v1/audit/records").status_code == 200
