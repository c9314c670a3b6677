"""What SCIM provisioning may and may not do: access follows the directory from the next query, a
directory key reaches its own tenant only and only with its scope, it never raises a role or
touches the tenant's administrators, and what it sends wrong is a SCIM error that changes nothing."""

import pytest
from rest_framework.test import APIClient

from apps.tenants import services
from apps.tenants.models import DirectoryEvent, Membership, Role, Scope, TenantGroup
from tests.answers.conftest import library  # noqa: F401  (a fixture: alice in 'staff', which reads the handbook)
from tests.answers.test_access import QUERY, documents_seen
from tests.conftest import key_client

from .conftest import ScimClient

pytestmark = pytest.mark.django_db
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def test_a_directorys_changes_reach_the_next_query(library, acme):
    directory = ScimClient(acme.key(scopes=[Scope.SCIM]))
    app = key_client(acme.key(scopes=[Scope.SEARCH, Scope.ASK, Scope.ACT_AS_USER]))
    handbook = {library.travel.pk, library.security.pk}
    staff = TenantGroup.objects.get(tenant=acme.tenant, name="staff")
    alice, bob = str(library.alice.pk), str(library.bob.pk)
    assert documents_seen(app, {**QUERY, "as_user": "bob"}) == {library.salaries.pk}

    # Okta adds bob to the group: the handbook is his from the very next query (principals are
    # resolved when a query runs, nothing to re-index).
    assert directory.patch(f"Groups/{staff.pk}", {"op": "add", "path": "members", "value": [{"value": bob}]})[0] == 204
    assert documents_seen(app, {**QUERY, "as_user": "bob"}) == handbook | {library.salaries.pk}

    # ...and removes alice: she reads nothing of it any more.
    assert directory.patch(f"Groups/{staff.pk}", {"op": "remove", "path": f'members[value eq "{alice}"]'})[0] == 204
    assert documents_seen(app, {**QUERY, "as_user": "alice"}) == set()

    # Deactivated in the directory: the app can no longer act for bob at all (no active member of
    # that name, the same answer as for a name the tenant never had).
    assert directory.patch(f"Users/{bob}", {"op": "replace", "value": {"active": False}})[0] == 200
    refused = app.post("/api/v1/search", {**QUERY, "as_user": "bob"}, format="json")
    assert refused.status_code == 404 and refused.json()["code"] == "user_not_found"
    assert directory.patch(f"Users/{bob}", {"op": "replace", "path": "active", "value": True})[0] == 200
    assert documents_seen(app, {**QUERY, "as_user": "bob"}) == handbook | {library.salaries.pk}


def acme_member(acme, user_id) -> Membership:
    return Membership.objects.filter(tenant=acme.tenant).get(pk=int(user_id))


def _error(response) -> tuple[int, str | None]:
    status, body = response
    assert body["schemas"] == [ERROR] and body["status"] == str(status) and body["detail"], body
    return status, body.get("scimType")


def test_only_a_key_with_the_scim_scope_may_provision(acme):
    assert _error(ScimClient(acme.key(scopes=[Scope.USERS_MANAGE, Scope.GROUPS_MANAGE])).get("Users"))[0] == 403
    unauthenticated = APIClient().get("/scim/v2/Users")
    assert unauthenticated.status_code == 401 and unauthenticated["WWW-Authenticate"].startswith("Bearer")
    assert unauthenticated.json()["schemas"] == [ERROR]
    assert APIClient().get("/scim/v2/Users", HTTP_AUTHORIZATION="Bearer kp_000000000000_nope").status_code == 401
    # The platform's own API scheme and a signed-in member are not SCIM's credentials.
    raw = acme.key(scopes=[Scope.SCIM])
    assert APIClient().get("/scim/v2/Users", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code == 401
    owner = APIClient()
    owner.force_login(acme.owner.user)
    assert owner.get("/scim/v2/Users", HTTP_X_TENANT="acme").status_code == 401
    api_key = services.api_key_authenticate(raw_key=raw)
    services.api_key_revoke(api_key=api_key)
    assert _error(ScimClient(raw).get("Users"))[0] == 401


def test_a_directory_reaches_its_own_tenant_only(acme, globex, directory):
    theirs = ScimClient(globex.key(scopes=[Scope.SCIM]))
    ours = directory.post("Users", {"userName": "ann", "schemas": []})[1]["id"]
    group = directory.post("Groups", {"displayName": "Legal", "members": [{"value": ours}]})[1]["id"]
    before = acme_member(acme, ours).user.groups.count()

    for method, path, body in [
        ("get", f"Users/{ours}", None),
        ("put", f"Users/{ours}", {"userName": "mallory"}),
        ("delete", f"Users/{ours}", None),
        ("get", f"Groups/{group}", None),
        ("put", f"Groups/{group}", {"displayName": "Legal", "members": []}),
        ("delete", f"Groups/{group}", None),
    ]:
        assert _error(theirs.request(method, path, body))[0] == 404, (method, path)
    status, _ = theirs.patch(f"Users/{ours}", {"op": "replace", "value": {"active": False}})
    assert status == 404
    assert theirs.get("Users", filter=f'id eq "{ours}" or userName eq "ann"')[1]["totalResults"] == 0
    assert [u["userName"] for u in theirs.get("Users")[1]["Resources"]] == ["owner", "reader"]

    # Nor can globex's directory put acme's person into one of its own groups.
    their_group = theirs.post("Groups", {"displayName": "Legal"})[1]["id"]
    status, kind = _error(
        theirs.patch(f"Groups/{their_group}", {"op": "add", "path": "members", "value": [{"value": ours}]})
    )
    assert (status, kind) == (400, "invalidValue")
    assert acme_member(acme, ours).is_active and acme_member(acme, ours).username == "ann"
    assert acme_member(acme, ours).user.groups.count() == before


def test_the_everyone_group_is_the_platforms_not_the_directorys(acme, directory):
    everyone = TenantGroup.objects.get(tenant=acme.tenant, is_everyone=True)
    assert directory.get("Groups")[1]["totalResults"] == 0
    assert directory.get("Groups", filter='displayName eq "everyone"')[1]["totalResults"] == 0
    assert _error(directory.get(f"Groups/{everyone.pk}"))[0] == 404
    assert _error(directory.delete(f"Groups/{everyone.pk}"))[0] == 404
    assert _error(directory.post("Groups", {"displayName": "Everyone"})) == (409, "uniqueness")
    group = directory.post("Groups", {"displayName": "Legal"})[1]["id"]
    assert (
        _error(directory.patch(f"Groups/{group}", {"op": "replace", "path": "displayName", "value": "everyone"}))[0]
        == 409
    )
    assert TenantGroup.objects.filter(tenant=acme.tenant, is_everyone=True).get().name == "everyone"


def test_a_directory_never_raises_a_role_nor_touches_the_administrators(acme, directory):
    admin = services.member_create(tenant=acme.tenant, username="ada", role=Role.ADMIN)
    compliance = services.member_create(tenant=acme.tenant, username="carl", role=Role.COMPLIANCE)
    created = directory.post("Users", {"userName": "eve", "roles": [{"value": "owner"}], "active": True})[1]
    assert acme_member(acme, created["id"]).role == Role.READER
    for member in (acme.owner, admin, compliance):
        assert (
            _error(directory.patch(f"Users/{member.pk}", {"op": "replace", "path": "active", "value": False}))[0] == 403
        )
        assert _error(directory.put(f"Users/{member.pk}", {"userName": "renamed"}))[0] == 403
        assert _error(directory.delete(f"Users/{member.pk}"))[0] == 403
        member.refresh_from_db()
        assert member.is_active and member.username in ("owner", "ada", "carl")
    # A reader's account is the directory's to change; its role stays the tenant's.
    status, _replaced = directory.put(f"Users/{acme.reader.pk}", {"userName": "reader", "roles": [{"value": "admin"}]})
    assert status == 200 and acme_member(acme, acme.reader.pk).role == Role.READER


@pytest.mark.parametrize(
    "text",
    [
        'userName co "a"',  # an operator other than eq
        'title eq "x"',  # an attribute that is not filterable
        'name.givenName eq "x"',
        "userName eq",  # not a filter at all
        'userName eq "a" oops',
        'emails[type eq "work"]',
    ],
)
def test_a_filter_it_cannot_answer_exactly_is_a_400_not_a_wider_list(directory, text):
    assert _error(directory.get("Users", filter=text)) == (400, "invalidFilter")


def test_what_a_directory_sends_wrong_is_a_scim_error_that_changes_nothing(acme, directory):
    users_before, groups_before = (
        Membership.objects.filter(tenant=acme.tenant).count(),
        TenantGroup.objects.filter(tenant=acme.tenant).count(),
    )
    events_before = DirectoryEvent.objects.filter(tenant=acme.tenant).count()
    reader = str(acme.reader.pk)
    bad = [
        directory.post("Users", {"name": {"givenName": "no userName"}}),
        directory.post("Users", {"userName": "bad name!"}),
        directory.post("Users", {"userName": "READER"}),  # taken, whatever the case
        directory.post("Users", {"userName": "x", "emails": [{"value": "not an email"}]}),
        directory.post("Users", {"userName": "x", "active": "maybe"}),
        directory.post("Groups", {"displayName": "Legal", "members": [{"value": "999999"}]}),  # no such user
        directory.post("Groups", {"displayName": " "}),
        directory.patch(f"Users/{reader}", {"op": "replace", "path": "userName", "value": "ok"}, {"op": "move"}),
        directory.patch(f"Users/{reader}", {"op": "remove", "path": "userName"}),
        directory.patch(f"Users/{reader}", {"op": "replace", "path": "id", "value": "1"}),
        directory.patch(f"Users/{reader}", {"op": "replace", "path": "name.givenName", "value": 7}),
        directory.request("patch", f"Users/{reader}", {"Operations": [{"op": "replace", "value": {"active": False}}]}),
        directory.request("patch", f"Users/{reader}", {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]}),
        directory.get("Users", count="ten"),
        directory.get("Users/abc"),
        directory.get("Users/99999999999999999999999"),
    ]
    assert [_error(response)[0] for response in bad] == [
        400,
        400,
        409,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
        400,
        404,
        404,
    ]
    malformed = APIClient()
    malformed.credentials(HTTP_AUTHORIZATION=directory.client._credentials["HTTP_AUTHORIZATION"])
    response = malformed.post("/scim/v2/Users", "{not json", content_type="application/scim+json")
    assert response.status_code == 400 and response.json()["scimType"] == "invalidSyntax"
    assert Membership.objects.filter(tenant=acme.tenant).count() == users_before
    assert TenantGroup.objects.filter(tenant=acme.tenant).count() == groups_before
    assert DirectoryEvent.objects.filter(tenant=acme.tenant).count() == events_before
    acme.reader.refresh_from_db()
    assert acme.reader.username == "reader" and acme.reader.is_active


def test_lists_page_by_start_index_and_count(acme, directory):
    for name in ("u1", "u2", "u3"):
        services.member_create(tenant=acme.tenant, username=name)
    _status, page = directory.get("Users", startIndex=2, count=2)
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (5, 2, 2)
    assert [u["userName"] for u in page["Resources"]] == ["reader", "u1"]
    assert directory.get("Users", count=0)[1]["Resources"] == []
    assert directory.get("Users", startIndex=0)[1]["startIndex"] == 1  # RFC 7644 §3.4.2.4: below 1 means 1


def test_the_discovery_documents_describe_what_is_served(directory):
    status, config = directory.get("ServiceProviderConfig")
    assert status == 200 and config["patch"]["supported"] is True and config["bulk"]["supported"] is False
    assert config["filter"] == {"supported": True, "maxResults": 200}
    status, types = directory.get("ResourceTypes")
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"}


def test_a_patch_applies_whole_or_not_at_all(acme, directory):
    user = directory.post("Users", {"userName": "ann"})[1]["id"]
    group = directory.post("Groups", {"displayName": "Legal"})[1]["id"]
    status, kind = _error(
        directory.patch(
            f"Groups/{group}",
            {"op": "replace", "path": "displayName", "value": "Counsel"},
            {"op": "add", "path": "members", "value": [{"value": user}]},
            {"op": "add", "path": "members", "value": [{"value": "424242"}]},  # no such user
        )
    )
    assert (status, kind) == (400, "invalidValue")
    shown = directory.get(f"Groups/{group}")[1]
    assert shown["displayName"] == "Legal" and shown["members"] == []
    status, _ = directory.patch(
        f"Users/{user}",
        {"op": "replace", "path": "name.givenName", "value": "Ann"},
        {"op": "replace", "path": "active", "value": "perhaps"},
    )
    assert status == 400 and directory.get(f"Users/{user}")[1]["name"]["givenName"] == ""
