"""Tenant apps provision their own people: users and tenant-scoped groups."""

import pytest

from apps.tenants import services
from apps.tenants.models import Membership, Scope
from tests.conftest import key_client, user_client

ALL_BUT_ACTING = [s for s in Scope.values if s != Scope.ACT_AS_USER]


@pytest.fixture
def acme_app(acme):
    return key_client(acme.key(scopes=ALL_BUT_ACTING))


@pytest.fixture
def globex_app(globex):
    return key_client(globex.key(scopes=ALL_BUT_ACTING))


@pytest.mark.django_db
class TestUsers:
    def test_create_list_and_read(self, acme_app):
        response = acme_app.post(
            "/api/v1/users", {"username": "dana@acme.example", "role": "editor", "email": "dana@acme.example"}
        )
        assert response.status_code == 201, response.content
        assert response.json()["username"] == "dana@acme.example"
        listed = acme_app.get("/api/v1/users?limit=2").json()
        assert listed["count"] == 3 and len(listed["results"]) == 2 and listed["next"]
        assert acme_app.get("/api/v1/users/dana@acme.example").json()["role"] == "editor"

    def test_the_same_username_in_two_tenants_are_two_people(self, acme_app, globex_app):
        assert acme_app.post("/api/v1/users", {"username": "dana"}).status_code == 201
        assert globex_app.post("/api/v1/users", {"username": "dana"}).status_code == 201
        users = {m.user_id for m in Membership.objects.across_tenants().filter(username="dana")}
        assert len(users) == 2

    def test_a_duplicate_is_a_conflict(self, acme_app):
        acme_app.post("/api/v1/users", {"username": "dana"})
        response = acme_app.post("/api/v1/users", {"username": "dana"})
        assert response.status_code == 409
        assert response.json()["code"] == "username_taken"

    @pytest.mark.parametrize(
        "payload", [{"username": "bad name!"}, {"username": ""}, {"username": "x", "role": "king"}]
    )
    def test_invalid_input(self, acme_app, payload):
        response = acme_app.post("/api/v1/users", payload, format="json")
        assert response.status_code == 400
        assert response.json()["message"]

    def test_deactivate_and_reactivate_in_one_tenant_only(self, acme, globex, acme_app):
        services.membership_add(tenant=globex.tenant, user=acme.reader.user, username="reader-from-acme")
        response = acme_app.post("/api/v1/users/reader/deactivate")
        assert response.status_code == 200 and response.json()["is_active"] is False
        assert user_client(acme.reader, "acme").get("/api/v1/tenant").status_code == 403
        assert user_client(acme.reader, "globex").get("/api/v1/tenant").status_code == 200
        assert acme_app.post("/api/v1/users/reader/activate").json()["is_active"] is True
        assert user_client(acme.reader, "acme").get("/api/v1/tenant").status_code == 200

    def test_nobody_hands_out_a_role_beyond_their_own_scopes(self, acme):
        provisioner = key_client(
            acme.key(scopes=[Scope.USERS_MANAGE, Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE])
        )
        assert provisioner.post("/api/v1/users", {"username": "r", "role": "reader"}).status_code == 201
        for response in (
            provisioner.post("/api/v1/users", {"username": "o", "role": "owner"}),
            provisioner.patch("/api/v1/users/r", {"role": "admin"}, format="json"),
            provisioner.post("/api/v1/users/owner/deactivate"),  # nor take away what it could not give
            provisioner.patch("/api/v1/users/owner", {"role": "reader"}, format="json"),
        ):
            assert response.status_code == 403 and response.json()["code"] == "role_escalation"
        assert provisioner.get("/api/v1/users/owner").json()["role"] == "owner"

    def test_another_tenants_users_are_invisible(self, acme_app, globex):
        services.member_create(tenant=globex.tenant, username="gus")
        assert acme_app.get("/api/v1/users/gus").status_code == 404
        assert acme_app.post("/api/v1/users/gus/deactivate").status_code == 404
        assert "gus" not in str(acme_app.get("/api/v1/users").json())


@pytest.mark.django_db
class TestGroups:
    def test_create_rename_members(self, acme_app):
        group = acme_app.post("/api/v1/groups", {"name": "hr"}).json()
        assert acme_app.post(f"/api/v1/groups/{group['id']}/members", {"username": "reader"}).json()["members"] == [
            "reader"
        ]
        assert acme_app.patch(f"/api/v1/groups/{group['id']}", {"name": "people"}).json()["name"] == "people"
        assert acme_app.delete(f"/api/v1/groups/{group['id']}/members/reader").json()["members"] == []
        assert acme_app.delete(f"/api/v1/groups/{group['id']}").status_code == 204
        assert acme_app.get(f"/api/v1/groups/{group['id']}").status_code == 404

    def test_names_repeat_across_tenants_but_not_within_one(self, acme_app, globex_app):
        assert acme_app.post("/api/v1/groups", {"name": "hr"}).status_code == 201
        assert globex_app.post("/api/v1/groups", {"name": "hr"}).status_code == 201
        assert acme_app.post("/api/v1/groups", {"name": "hr"}).status_code == 409
        other = acme_app.post("/api/v1/groups", {"name": "ops"}).json()["id"]
        assert acme_app.patch(f"/api/v1/groups/{other}", {"name": "hr"}).status_code == 409

    def test_another_tenants_groups_are_invisible(self, acme_app, globex_app):
        globex_group = globex_app.post("/api/v1/groups", {"name": "secret"}).json()["id"]
        assert [g["name"] for g in acme_app.get("/api/v1/groups").json()["results"]] == ["everyone"]
        for response in (
            acme_app.get(f"/api/v1/groups/{globex_group}"),
            acme_app.patch(f"/api/v1/groups/{globex_group}", {"name": "mine"}),
            acme_app.delete(f"/api/v1/groups/{globex_group}"),
            acme_app.post(f"/api/v1/groups/{globex_group}/members", {"username": "reader"}),
        ):
            assert response.status_code == 404
            assert "secret" not in response.content.decode()
        assert globex_app.get(f"/api/v1/groups/{globex_group}").json()["name"] == "secret"

    def test_a_member_of_another_tenant_cannot_be_added(self, acme_app, globex):
        group = acme_app.post("/api/v1/groups", {"name": "hr"}).json()["id"]
        services.member_create(tenant=globex.tenant, username="gus")
        response = acme_app.post(f"/api/v1/groups/{group}/members", {"username": "gus"})
        assert response.status_code == 404
        assert response.json()["code"] == "user_not_found"

    def test_a_blank_name_is_refused(self, acme_app):
        response = acme_app.post("/api/v1/groups", {"name": "   "})
        assert response.status_code == 400


@pytest.mark.django_db
class TestEveryoneGroup:
    def everyone(self, client) -> dict:
        return next(g for g in client.get("/api/v1/groups").json()["results"] if g["is_everyone"])

    def test_every_member_is_in_it_new_ones_too(self, acme_app):
        assert sorted(self.everyone(acme_app)["members"]) == ["owner", "reader"]
        acme_app.post("/api/v1/users", {"username": "newcomer"})
        assert "newcomer" in self.everyone(acme_app)["members"]

    def test_it_cannot_be_renamed_deleted_or_edited(self, acme_app):
        group = self.everyone(acme_app)["id"]
        for response in (
            acme_app.patch(f"/api/v1/groups/{group}", {"name": "all"}),
            acme_app.delete(f"/api/v1/groups/{group}"),
            acme_app.delete(f"/api/v1/groups/{group}/members/reader"),
            acme_app.post(f"/api/v1/groups/{group}/members", {"username": "reader"}),
        ):
            assert response.status_code == 409
            assert response.json()["code"] == "everyone_group"
        assert acme_app.post("/api/v1/groups", {"name": "everyone"}).status_code == 409
