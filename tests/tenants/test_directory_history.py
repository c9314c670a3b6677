"""Every change to a tenant's people and groups is a history event naming who made it, whichever
door it came through: the REST API (the key or member), the admin site (the staff user), the
operator's commands (nobody: the operator), SCIM (tests/provisioning). A call that changes nothing
records nothing."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.tenants import services
from apps.tenants.models import DirectoryEvent, TenantGroup
from tests.audit.test_database_privileges import app, app_role  # noqa: F401  (fixtures: the app's role)
from tests.conftest import key_client, user_client
from tests.tenants.test_operator_commands import run

pytestmark = pytest.mark.django_db


def events(tenant):
    return list(
        DirectoryEvent.objects.filter(tenant=tenant)
        .order_by("at", "id")
        .values_list("kind", "member", "group", "details", "actor", "actor_api_key_prefix")
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
    assert events(acme.tenant)[start:] == [
        ("member_created", "hana", "", {"role": "reader"}, "", prefix),
        ("group_created", "", "HR", {}, "", prefix),
        ("group_member_added", "hana", "HR", {}, "", prefix),
        ("role_changed", "hana", "", {"role": ["reader", "editor"]}, "", prefix),
        ("group_updated", "", "People", {"name": ["HR", "People"]}, "", prefix),
        ("group_member_removed", "hana", "People", {}, "", prefix),
        ("member_deactivated", "hana", "", {}, "", prefix),
        ("group_deleted", "", "People", {}, "", prefix),
    ]


def test_a_member_is_named_by_their_tenant_local_username(acme):
    owner = user_client(acme.owner, "acme")
    assert owner.post("/api/v1/groups", {"name": "Legal"}, format="json").status_code == 201
    assert events(acme.tenant)[-1] == ("group_created", "", "Legal", {}, "owner", "")


def test_the_admin_site_records_the_staff_user_and_a_rename_is_saved(acme):
    root = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client = Client()
    client.force_login(root)
    group = services.group_create(tenant=acme.tenant, name="HR")
    response = client.post(f"/admin/tenants/tenantgroup/{group.pk}/change/", {"name": "People", "external_id": ""})
    assert response.status_code == 302, response.content[:2000]
    assert TenantGroup.objects.filter(tenant=acme.tenant, pk=group.pk).get().name == "People"
    assert events(acme.tenant)[-1] == ("group_updated", "", "People", {"name": ["HR", "People"]}, "root", "")
    # The history is read-only there: nobody edits or deletes it, superusers included.
    event = DirectoryEvent.objects.filter(tenant=acme.tenant).first()
    assert client.get(f"/admin/tenants/directoryevent/{event.pk}/change/").status_code == 200
    assert client.post(f"/admin/tenants/directoryevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/tenants/directoryevent/add/").status_code == 403


def test_the_operators_commands_record_changes_made_by_nobody_in_particular(acme):
    assert run("member_create", "--tenant", "acme", "hana", "--group", "everyone")[0] == 0
    assert events(acme.tenant)[-1] == ("member_created", "hana", "", {"role": "reader"}, "", "")


@pytest.mark.full_profile
@pytest.mark.django_db(transaction=True)
def test_the_applications_database_role_can_add_to_the_history_but_never_rewrite_it(app):
    """With the application's own credentials (what an insider holding them could do): the history
    of who changed access takes new rows, and refuses to change or lose one."""
    from psycopg import errors

    from tests.audit.test_database_privileges import attempt

    tenant = services.tenant_create(slug="acme", name="Acme")
    services.member_create(tenant=tenant, username="hana")
    event = DirectoryEvent.objects.filter(tenant=tenant, member="hana").get()
    assert attempt(
        app,
        "INSERT INTO tenants_directoryevent (tenant_id, at, kind, member, \"group\", details, actor, "
        "actor_api_key_prefix) VALUES (%s, now(), 'member_updated', 'hana', '', '{}', '', '')",
        [tenant.pk],
    ) is None  # fmt: skip
    for statement in (
        "UPDATE tenants_directoryevent SET actor = 'someone else' WHERE id = %s",
        "DELETE FROM tenants_directoryevent WHERE id = %s",
    ):
        assert isinstance(attempt(app, statement, [event.pk]), errors.InsufficientPrivilege), statement
    assert isinstance(attempt(app, "TRUNCATE tenants_directoryevent CASCADE"), errors.InsufficientPrivilege)
    event.refresh_from_db()
    assert event.actor == "" and DirectoryEvent.objects.filter(tenant=tenant).count() == 2


def test_the_api_shows_the_history_newest_first_filtered_and_to_its_tenant_only(acme, globex):
    app = key_client(acme.key())
    assert app.post("/api/v1/users", {"username": "hana"}, format="json").status_code == 201
    group = app.post("/api/v1/groups", {"name": "HR"}, format="json").json()["id"]
    assert app.post(f"/api/v1/groups/{group}/members", {"username": "hana"}, format="json").status_code == 200
    services.member_create(tenant=globex.tenant, username="hana")  # the same name in another tenant

    page = app.get("/api/v1/directory-events", {"member": "hana"}).json()
    assert [event["kind"] for event in page["results"]] == ["group_member_added", "member_created"]
    assert page["count"] == 2 and page["results"][0]["group"] == "HR" and page["results"][0]["actor_api_key_prefix"]
    assert [e["group"] for e in app.get("/api/v1/directory-events", {"kind": "group_created"}).json()["results"]] == [
        "HR"
    ]
    assert app.get("/api/v1/directory-events", {"limit": 1}).json()["results"][0]["kind"] == "group_member_added"
    theirs = key_client(globex.key()).get("/api/v1/directory-events", {"member": "hana"}).json()
    assert [event["kind"] for event in theirs["results"]] == ["member_created"]

    refused = app.get("/api/v1/directory-events", {"kind": "everything"})
    assert refused.status_code == 400 and "kind" in refused.json()["extra"]["fields"]
    assert app.get("/api/v1/directory-events", {"membr": "hana"}).status_code == 400  # misspelt: never all of it
    assert app.get("/api/v1/directory-events", {"limit": "9999"}).status_code == 400
    assert key_client(acme.key(scopes=["search"])).get("/api/v1/directory-events").status_code == 403
