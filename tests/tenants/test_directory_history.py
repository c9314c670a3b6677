"""Every change to a tenant's people and groups is a history event naming who made it, whichever
door it came through: the REST API (the key or member), the admin site (the staff user), the
operator's commands (nobody: the operator), SCIM (tests/provisioning). A call that changes nothing
records nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.tenants import services
from apps.tenants.models import ApiKey, DirectoryEvent, TenantGroup
from tests.conftest import key_client
from tests.tenants.test_operator_commands import run

pytestmark = pytest.mark.django_db


def events(tenant):
    return list(
        DirectoryEvent.objects.filter(tenant=tenant)
        .order_by("at", "id")
        .values_list("kind", "member", "group", "details", "actor_user__username", "actor_api_key__prefix")
    )


def test_the_api_records_each_change_with_the_key_that_made_it(acme):
    raw = acme.key()  # every scope: a key hands out no role beyond its own scopes
    prefix = raw.split("_")[1]
    app = key_client(raw)
    start = len(events(acme.tenant))
    assert app.post("/api/v1/users", {"username": "hana", "role": "reader"}, format="json").status_code == 201
    group = app.post("/api/v1/groups", {"name": "HR"}, format="json").json()["id"]
    assert app.post(f"/api/v1/groups/{group}/members", {"username": "hana"}, format="json").status_code == 200
    assert app.post(f"/api/v1/groups/{group}/members", {"username": "hana"}, format="json").status_code == 200
    assert app.patch("/api/v1/users/hana", {"role": "editor"}, format="json").status_code == 200
    assert app.patch("/api/v1/users/hana", {"role": "editor"}, format="json").status_code == 200  # no change
    assert app.patch(f"/api/v1/groups/{group}", {"name": "People"}, format="json").status_code == 200
    assert app.delete(f"/api/v1/groups/{group}/members/hana").status_code == 200
    assert app.post("/api/v1/users/hana/deactivate").status_code == 200
    assert app.delete(f"/api/v1/groups/{group}").status_code == 204
    service_user = ApiKey.objects.filter(tenant=acme.tenant, prefix=prefix).get().service_user.username
    assert events(acme.tenant)[start:] == [
        ("member_created", "hana", "", {"role": "reader"}, service_user, prefix),
        ("group_created", "", "HR", {}, service_user, prefix),
        ("group_member_added", "hana", "HR", {}, service_user, prefix),
        ("role_changed", "hana", "", {"role": ["reader", "editor"]}, service_user, prefix),
        ("group_updated", "", "People", {"name": ["HR", "People"]}, service_user, prefix),
        ("group_member_removed", "hana", "People", {}, service_user, prefix),
        ("member_deactivated", "hana", "", {}, service_user, prefix),
        ("group_deleted", "", "People", {}, service_user, prefix),
    ]


def test_the_admin_site_records_the_staff_user_and_a_rename_is_saved(acme):
    root = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client = Client()
    client.force_login(root)
    group = services.group_create(tenant=acme.tenant, name="HR")
    response = client.post(f"/admin/tenants/tenantgroup/{group.pk}/change/", {"name": "People", "external_id": ""})
    assert response.status_code == 302, response.content[:2000]
    assert TenantGroup.objects.filter(tenant=acme.tenant, pk=group.pk).get().name == "People"
    assert events(acme.tenant)[-1] == ("group_updated", "", "People", {"name": ["HR", "People"]}, "root", None)
    # The history is read-only there: nobody edits or deletes it, superusers included.
    event = DirectoryEvent.objects.filter(tenant=acme.tenant).first()
    assert client.get(f"/admin/tenants/directoryevent/{event.pk}/change/").status_code == 200
    assert client.post(f"/admin/tenants/directoryevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/tenants/directoryevent/add/").status_code == 403


def test_the_operators_commands_record_changes_made_by_nobody_in_particular(acme):
    assert run("member_create", "--tenant", "acme", "hana", "--group", "everyone")[0] == 0
    assert events(acme.tenant)[-1] == ("member_created", "hana", "", {"role": "reader"}, None, None)
