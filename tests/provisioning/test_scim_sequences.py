"""The request sequences Okta and Microsoft Entra ID document for a SCIM 2.0 service provider,
replayed against /scim/v2 (bodies as their guides give them: Okta's "SCIM 2.0 protocol reference",
Microsoft's "Develop and plan provisioning for a SCIM endpoint"), and what each step must leave in
the tenant: members, groups, the history."""

import pytest

from apps.tenants.models import ApiKey, DirectoryEvent, Membership, TenantGroup

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

pytestmark = pytest.mark.django_db


def test_okta_provisions_updates_and_deactivates_a_user(acme, directory):
    status, found = directory.get("Users", filter='userName eq "test.user@okta.local"', startIndex=1, count=100)
    assert status == 200 and found["totalResults"] == 0 and found["Resources"] == []

    status, created = directory.post(
        "Users",
        {
            "schemas": [USER],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Test", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Test User",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": True,
        },
    )
    assert status == 201, created
    assert created["userName"] == "test.user@okta.local" and created["active"] is True
    assert created["externalId"] == "00ujl29u0le5T6Aj10h7" and created["meta"]["location"].endswith(created["id"])
    member = Membership.objects.get(tenant=acme.tenant, pk=int(created["id"]))
    assert member.role == "reader" and not member.user.has_usable_password()  # Okta's password is not kept
    assert (member.user.first_name, member.user.last_name, member.user.email) == (
        "Test",
        "User",
        "test.user@okta.local",
    )

    # The same filter finds it now, whatever the case of the name (userName is caseExact false).
    status, found = directory.get("Users", filter='userName eq "TEST.USER@okta.local"')
    assert [resource["id"] for resource in found["Resources"]] == [created["id"]]
    assert directory.get(f"Users/{created['id']}") == (200, created)

    status, replaced = directory.put(
        f"Users/{created['id']}",
        {
            "schemas": [USER],
            "id": created["id"],
            "userName": "test.user@okta.local",
            "name": {"givenName": "Another", "familyName": "User"},
            "emails": [{"primary": True, "value": "test.user@okta.local", "type": "work"}],
            "displayName": "Another User",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "active": True,
        },
    )
    assert status == 200 and replaced["name"]["givenName"] == "Another"

    status, deactivated = directory.patch(f"Users/{created['id']}", {"op": "replace", "value": {"active": False}})
    assert status == 200 and deactivated["active"] is False
    member.refresh_from_db()
    assert member.is_active is False

    history = list(
        DirectoryEvent.objects.filter(tenant=acme.tenant, member="test.user@okta.local")
        .order_by("at", "id")
        .values_list("kind", "details")
    )
    assert history == [
        ("member_created", {"role": "reader"}),
        ("member_updated", {"first_name": ["Test", "Another"]}),
        ("member_deactivated", {}),
    ]
    scim_key = ApiKey.objects.filter(tenant=acme.tenant, scopes=["scim"]).get()
    assert {
        (event.actor, event.actor_api_key_prefix)
        for event in DirectoryEvent.objects.filter(tenant=acme.tenant, member="test.user@okta.local")
    } == {("", scim_key.prefix)}


def test_okta_pushes_a_group_and_its_members(acme, directory):
    users = [
        directory.post("Users", {"schemas": [USER], "userName": name, "active": True})[1]["id"]
        for name in ("ann@okta.local", "ben@okta.local")
    ]
    status, group = directory.post("Groups", {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []})
    assert status == 201 and group["members"] == []

    status, _ = directory.patch(
        f"Groups/{group['id']}", {"op": "replace", "value": {"id": group["id"], "displayName": "Engineering"}}
    )
    assert status == 204
    status, _ = directory.patch(
        f"Groups/{group['id']}",
        {"op": "add", "path": "members", "value": [{"value": users[0], "display": "ann@okta.local"}]},
        {"op": "add", "path": "members", "value": [{"value": users[1], "display": "ben@okta.local"}]},
    )
    assert status == 204
    status, shown = directory.get(f"Groups/{group['id']}")
    assert shown["displayName"] == "Engineering" and [m["value"] for m in shown["members"]] == users

    status, _ = directory.patch(f"Groups/{group['id']}", {"op": "remove", "path": f'members[value eq "{users[0]}"]'})
    assert status == 204
    assert [m["value"] for m in directory.get(f"Groups/{group['id']}")[1]["members"]] == [users[1]]

    # Group push also replaces the whole group with PUT.
    status, put = directory.put(
        f"Groups/{group['id']}",
        {"schemas": [GROUP], "id": group["id"], "displayName": "Engineering", "members": [{"value": users[0]}]},
    )
    assert status == 200 and [m["value"] for m in put["members"]] == [users[0]]

    status, listed = directory.get("Groups", startIndex=1, count=100)
    assert [g["displayName"] for g in listed["Resources"]] == ["Engineering"]  # not the platform's 'everyone'

    assert directory.delete(f"Groups/{group['id']}") == (204, None)
    assert not TenantGroup.objects.filter(tenant=acme.tenant, name="Engineering").exists()
    kinds = list(
        DirectoryEvent.objects.filter(tenant=acme.tenant)
        .exclude(group="")
        .order_by("at", "id")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "group_created", "group_updated", "group_member_added", "group_member_added", "group_member_removed",
        "group_member_removed", "group_member_added", "group_deleted",
    ]  # fmt: skip


def test_entra_id_provisions_patches_disables_and_deletes_a_user(acme, directory):
    name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1"
    assert directory.get("Users", filter=f'userName eq "{name}"')[1]["totalResults"] == 0
    status, created = directory.post(
        "Users",
        {
            "schemas": [USER, ENTERPRISE],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": name,
            "active": True,
            "emails": [{"primary": True, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            ENTERPRISE: {"department": "Finance", "manager": {"value": "someone"}},
        },
    )
    assert status == 201, created
    status, found = directory.get("Users", filter='externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"')
    assert [resource["id"] for resource in found["Resources"]] == [created["id"]]
    # externalId is caseExact: another case is another id.
    assert directory.get("Users", filter='externalId eq "0A21F0F2-8D2A-4F8E-BF98-7363C4AED4EF"')[1]["totalResults"] == 0

    status, patched = directory.patch(
        f"Users/{created['id']}",
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "ignored"},
        {"op": "Replace", "path": "displayName", "value": "not kept"},
    )
    assert status == 200, patched
    assert patched["emails"][0]["value"] == "updatedEmail@microsoft.com"
    assert patched["name"]["familyName"] == "updatedFamilyName"

    status, disabled = directory.patch(f"Users/{created['id']}", {"op": "Replace", "path": "active", "value": "False"})
    assert status == 200 and disabled["active"] is False
    status, enabled = directory.patch(f"Users/{created['id']}", {"op": "Replace", "path": "active", "value": True})
    assert enabled["active"] is True

    assert directory.delete(f"Users/{created['id']}") == (204, None)
    member = Membership.objects.get(tenant=acme.tenant, pk=int(created["id"]))
    assert member.is_active is False  # deactivated, kept: the audit trail still names who asked what
    kinds = list(
        DirectoryEvent.objects.filter(tenant=acme.tenant, member=name)
        .order_by("at", "id")
        .values_list("kind", flat=True)
    )
    assert kinds == [
        "member_created",
        "member_updated",
        "member_deactivated",
        "member_reactivated",
        "member_deactivated",
    ]


def test_entra_id_provisions_a_group_and_patches_its_membership(acme, directory):
    user = directory.post("Users", {"schemas": [USER], "userName": "Test_User_1", "active": True})[1]["id"]
    status, group = directory.post(
        "Groups",
        {
            "schemas": [GROUP],
            "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
            "displayName": "displayName",
            "meta": {"resourceType": "Group"},
        },
    )
    assert status == 201 and group["externalId"] == "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"
    status, found = directory.get("Groups", excludedAttributes="members", filter='displayName eq "displayName"')
    assert [g["id"] for g in found["Resources"]] == [group["id"]] and "members" not in found["Resources"][0]

    assert (
        directory.patch(
            f"Groups/{group['id']}", {"op": "Add", "path": "members", "value": [{"$ref": None, "value": user}]}
        )[0]
        == 204
    )
    assert [m["value"] for m in directory.get(f"Groups/{group['id']}")[1]["members"]] == [user]
    assert directory.get(f"Users/{user}")[1]["groups"] == [{"value": group["id"], "display": "displayName"}]
    assert (
        directory.patch(
            f"Groups/{group['id']}", {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": user}]}
        )[0]
        == 204
    )
    assert directory.get(f"Groups/{group['id']}")[1]["members"] == []

    renamed = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    assert (
        directory.patch(f"Groups/{group['id']}", {"op": "Replace", "path": "displayName", "value": renamed})[0] == 204
    )
    assert directory.get(f"Groups/{group['id']}")[1]["displayName"] == renamed
    assert directory.delete(f"Groups/{group['id']}") == (204, None)
    assert directory.get(f"Groups/{group['id']}")[0] == 404
