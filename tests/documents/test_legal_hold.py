"""Issue 15, item 5: legal hold and retention are the compliance team's. Only the owner and
compliance roles, and API keys holding `documents:retention` themselves, set or lift them (the REST
API, the admin site, commands and tasks alike: the rule is in the services); each change is a
history event; delete and purge are refused under hold whoever asks, purge before the retention
date."""

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.core.exceptions import Conflict, PermissionDenied
from apps.documents import services
from apps.documents import services as document_services
from apps.documents.models import Document, DocumentState
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import ApiKey, Role, Scope
from apps.tenants.resolution import role_may_use
from tests.conftest import key_client, user_client
from tests.documents.conftest import text_file

NOBODY = Actor(None)  # a command or task acting as nobody


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body


@pytest.fixture
def held(acme):
    """A document under legal hold with a retention date, and its own grants."""
    collection = services.collection_create(tenant=acme.tenant, name="Contracts")
    document = services.document_create(
        tenant=acme.tenant, collection=collection, title="Supplier contract", actor=NOBODY, file=text_file()
    )
    owner = Actor(user=acme.owner.user)
    return services.document_retention_set(
        document=document, actor=owner, legal_hold=True, retention_until=date(2999, 1, 1), reason="litigation"
    )


@pytest.fixture
def manager(acme, held):
    """The reviewer's reproduction: a reader-role member with a `manage` grant on one document."""
    document_services.grants_replace(obj=held, grants=[Grant(acme.reader.user, Level.MANAGE)], actor=NOBODY)
    return user_client(acme.reader, "acme")


def fresh(document: Document) -> Document:
    return Document.objects.across_tenants().get(pk=document.pk)


def compliance_member(acme):
    return tenant_services.member_create(tenant=acme.tenant, username="carol", role=Role.COMPLIANCE)


# --------------------------------------------------------------------------- the reviewer's reproduction
@pytest.mark.django_db
class TestAManageGrantIsNotEnough:
    def test_it_cannot_lift_the_hold_or_clear_the_retention(self, manager, held):
        url = f"/api/v1/documents/{held.pk}"
        assert manager.get(url).status_code == 200  # it does manage the document
        for change in ({"legal_hold": False}, {"retention_until": None}, {"legal_hold": False, "title": "x"}):
            body = error(manager.patch(url, change, format="json"), 403, "retention_not_allowed")
            assert "owner or compliance" in body["message"] and "documents:retention" in body["message"]
        error(manager.patch(f"{url}/retention", {"legal_hold": False}, format="json"), 403, "scope_missing")
        document = fresh(held)
        assert (document.legal_hold, document.retention_until, document.title) == (
            True,
            date(2999, 1, 1),
            "Supplier contract",
        )

    def test_it_cannot_set_a_hold_either(self, acme, manager, held):
        services.document_retention_set(
            document=held, actor=Actor(user=acme.owner.user), legal_hold=False, retention_until=None
        )
        error(
            manager.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": True}, format="json"),
            403,
            "retention_not_allowed",
        )
        error(
            manager.patch(f"/api/v1/documents/{held.pk}", {"retention_until": "2999-01-01"}, format="json"),
            403,
            "retention_not_allowed",
        )
        assert (fresh(held).legal_hold, fresh(held).retention_until) == (False, None)
        # the other metadata it may still change
        assert manager.patch(f"/api/v1/documents/{held.pk}", {"title": "Renamed"}, format="json").status_code == 200

    def test_nor_create_a_document_under_hold(self, acme, held):
        document_services.grants_replace(
            obj=held.collection, grants=[Grant(acme.reader.user, Level.MANAGE)], actor=NOBODY
        )
        reader = user_client(acme.reader, "acme")
        body = {"collection": held.collection_id, "title": "Held from the start", "legal_hold": True}
        error(reader.post("/api/v1/documents", body, format="json"), 403, "retention_not_allowed")
        assert not Document.objects.across_tenants().filter(title="Held from the start").exists()

    def test_delete_and_purge_under_hold_are_409(self, manager, held):
        body = error(manager.delete(f"/api/v1/documents/{held.pk}"), 409, "legal_hold")
        assert "lift the hold first" in body["message"].lower() and "compliance" in body["message"]
        error(manager.post(f"/api/v1/documents/{held.pk}/purge"), 409, "legal_hold")
        assert fresh(held).state != DocumentState.DELETED and fresh(held).purged_at is None


# --------------------------------------------------------------------------- who may
@pytest.mark.django_db
def test_the_roles_that_may_use_the_scope():
    for role in Role.values:
        assert role_may_use(role, Scope.DOCUMENTS_RETENTION) == (role in (Role.OWNER, Role.COMPLIANCE)), role


@pytest.mark.django_db
def test_an_owner_sets_and_lifts_but_cannot_delete_or_purge_under_hold(acme, held):
    owner = user_client(acme.owner, "acme")
    error(owner.delete(f"/api/v1/documents/{held.pk}"), 409, "legal_hold")
    assert owner.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": False}, format="json").status_code == 200
    assert (
        owner.delete(f"/api/v1/documents/{held.pk}").status_code == 200
    )  # a retention date does not stop a soft delete
    error(owner.post(f"/api/v1/documents/{held.pk}/purge"), 409, "retention_period")
    assert (
        owner.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": True}, format="json").status_code == 200
    )  # deleted: still holdable
    error(owner.post(f"/api/v1/documents/{held.pk}/purge"), 409, "legal_hold")
    assert fresh(held).purged_at is None


@pytest.mark.django_db
def test_an_admin_may_not(acme, held):
    ada = tenant_services.member_create(tenant=acme.tenant, username="ada", role=Role.ADMIN)
    admin = user_client(ada, "acme")
    error(
        admin.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": False}, format="json"), 403, "retention_not_allowed"
    )
    error(
        admin.patch(f"/api/v1/documents/{held.pk}/retention", {"legal_hold": False}, format="json"),
        403,
        "retention_not_allowed",
    )
    error(admin.get(f"/api/v1/documents/{held.pk}/retention"), 403, "retention_not_allowed")
    body = error(
        admin.post("/api/v1/api-keys", {"name": "lift", "scopes": ["documents:retention"]}, format="json"),
        403,
        "scope_not_usable",
    )
    assert "documents:retention" in body["message"] and "owner" in body["message"]
    # nor give the compliance role, to anyone (itself included): that would make the admin the
    # compliance team; the owner appoints it (tests/admin/test_staff_powers.py)
    error(
        admin.post("/api/v1/users", {"username": "cleo", "role": "compliance"}, format="json"), 403, "role_escalation"
    )
    error(admin.patch("/api/v1/users/ada", {"role": "compliance"}, format="json"), 403, "role_escalation")
    assert fresh(held).legal_hold


@pytest.mark.django_db
def test_an_owners_key_needs_the_scope_itself(acme, held):
    owner = user_client(acme.owner, "acme")
    created = owner.post(
        "/api/v1/api-keys", {"name": "app", "scopes": ["documents:read", "documents:write"]}, format="json"
    )
    assert created.status_code == 201, created.content
    app = key_client(created.json()["key"])
    error(app.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": False}, format="json"), 403, "retention_not_allowed")
    error(
        app.patch(f"/api/v1/documents/{held.pk}/retention", {"legal_hold": False}, format="json"), 403, "scope_missing"
    )
    error(app.delete(f"/api/v1/documents/{held.pk}"), 409, "legal_hold")  # documents:write manages everything but this

    created = owner.post("/api/v1/api-keys", {"name": "legal", "scopes": ["documents:retention"]}, format="json")
    assert created.status_code == 201, created.content
    legal = key_client(created.json()["key"])
    assert legal.get(f"/api/v1/documents/{held.pk}").status_code == 403  # it reads no documents, only their retention
    assert legal.get(f"/api/v1/documents/{held.pk}/retention").json()["legal_hold"] is True
    response = legal.patch(
        f"/api/v1/documents/{held.pk}/retention", {"legal_hold": False, "reason": "case closed"}, format="json"
    )
    assert response.status_code == 200 and response.json()["legal_hold"] is False
    event = fresh(held).events.first()
    assert (event.action, event.api_key.name, event.reason, event.details) == (
        "legal_hold_lifted",
        "legal",
        "case closed",
        {"field": "legal_hold", "from": True, "to": False},
    )

    both = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.DOCUMENTS_RETENTION]))
    assert both.patch(f"/api/v1/documents/{held.pk}", {"retention_until": None}, format="json").status_code == 200
    assert fresh(held).retention_until is None


@pytest.mark.django_db
def test_a_compliance_member_sets_holds_on_any_document_of_the_tenant(acme, globex, held):
    carol = user_client(compliance_member(acme), "acme")
    assert carol.get(f"/api/v1/documents/{held.pk}").status_code == 403  # no documents:read: no content
    url = f"/api/v1/documents/{held.pk}/retention"
    assert carol.get(url).json() == {
        "id": held.pk,
        "title": "Supplier contract",
        "state": "draft",
        "legal_hold": True,
        "retention_until": "2999-01-01",
        "purged_at": None,
    }
    response = carol.patch(
        url, {"legal_hold": False, "retention_until": "2030-06-30", "reason": "settled"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (fresh(held).legal_hold, fresh(held).retention_until) == (False, date(2030, 6, 30))
    # another tenant's document is not found, as everywhere
    theirs = services.collection_create(tenant=globex.tenant, name="Theirs")
    their_doc = services.document_create(tenant=globex.tenant, collection=theirs, title="Secret", actor=NOBODY)
    error(
        carol.patch(f"/api/v1/documents/{their_doc.pk}/retention", {"legal_hold": True}, format="json"),
        404,
        "document_not_found",
    )
    assert not fresh(their_doc).legal_hold


@pytest.mark.django_db
def test_a_key_acting_for_a_member_needs_both(acme, held):
    _, _raw = tenant_services.api_key_create(
        tenant=acme.tenant, name="k", scopes=[Scope.DOCUMENTS_RETENTION, Scope.ACT_AS_USER]
    )
    key = ApiKey.objects.across_tenants().get(name="k")
    carol = compliance_member(acme)
    assert services.retention_authority(tenant=acme.tenant, actor=Actor(user=key.service_user, api_key=key))
    assert services.retention_authority(tenant=acme.tenant, actor=Actor(user=carol.user, api_key=key))
    assert not services.retention_authority(tenant=acme.tenant, actor=Actor(user=acme.reader.user, api_key=key))
    tenant_services.api_key_revoke(api_key=key)
    assert not services.retention_authority(
        tenant=acme.tenant, actor=Actor(user=fresh_key(key).service_user, api_key=fresh_key(key))
    )


def fresh_key(key: ApiKey) -> ApiKey:
    return ApiKey.objects.across_tenants().get(pk=key.pk)


# --------------------------------------------------------------------------- history
@pytest.mark.django_db
def test_each_change_is_a_history_event_naming_who_old_and_new(acme, held):
    owner = user_client(acme.owner, "acme")
    owner.patch(
        f"/api/v1/documents/{held.pk}",
        {"retention_until": "2040-01-01", "title": "Supplier contract (2024)"},
        format="json",
    )
    owner.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": False}, format="json")
    owner.patch(f"/api/v1/documents/{held.pk}", {"legal_hold": False}, format="json")  # no change, no event
    history = owner.get(f"/api/v1/documents/{held.pk}/history").json()["results"]
    retention = [e for e in history if e["action"] in ("legal_hold_set", "legal_hold_lifted", "retention_changed")]
    assert [(e["action"], e["actor"], e["details"], e["reason"]) for e in retention] == [
        ("legal_hold_lifted", "owner", {"field": "legal_hold", "from": True, "to": False}, ""),
        ("retention_changed", "owner", {"field": "retention_until", "from": "2999-01-01", "to": "2040-01-01"}, ""),
        ("retention_changed", "owner", {"field": "retention_until", "from": None, "to": "2999-01-01"}, "litigation"),
        ("legal_hold_set", "owner", {"field": "legal_hold", "from": False, "to": True}, "litigation"),
    ]
    metadata = next(e for e in history if e["action"] == "metadata_changed")
    assert set(metadata["details"]["changes"]) == {"title"}  # hold and retention have events of their own


# --------------------------------------------------------------------------- below the API
@pytest.mark.django_db
class TestServicesWhoeverCalls:
    def test_commands_and_tasks_acting_as_nobody_cannot_change_hold_or_retention(self, acme, held):
        with pytest.raises(PermissionDenied):
            services.document_update(document=held, actor=NOBODY, legal_hold=False)
        with pytest.raises(PermissionDenied):
            services.document_retention_set(document=held, actor=NOBODY, retention_until=None)
        with pytest.raises(PermissionDenied):
            services.document_create(
                tenant=acme.tenant, collection=held.collection, title="x", actor=NOBODY, legal_hold=True
            )
        superuser = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
        with pytest.raises(PermissionDenied):  # a platform operator without an owner or compliance role neither
            services.document_update(document=held, actor=Actor(user=superuser), legal_hold=False)
        assert fresh(held).legal_hold and fresh(held).retention_until == date(2999, 1, 1)

    def test_purge_and_delete_are_refused_under_hold_whoever_asks(self, acme, held):
        for actor in (NOBODY, Actor(user=acme.owner.user), Actor(user=compliance_member(acme).user)):
            with pytest.raises(Conflict) as refused:
                services.document_delete(document=held, actor=actor)
            assert refused.value.code == "legal_hold"
            with pytest.raises(Conflict) as refused:
                services.document_purge(document=held, actor=actor)
            assert refused.value.code == "legal_hold"
        Document.objects.across_tenants().filter(pk=held.pk).update(
            state=DocumentState.DELETED
        )  # deleted before the hold came
        with pytest.raises(Conflict) as refused:
            services.document_purge(document=fresh(held), actor=Actor(user=acme.owner.user), today=date(3000, 1, 1))
        assert refused.value.code == "legal_hold"
        assert fresh(held).purged_at is None and fresh(held).versions.get().file

    def test_purge_waits_for_the_retention_date(self, acme, held):
        owner = Actor(user=acme.owner.user)
        services.document_retention_set(document=held, actor=owner, legal_hold=False)
        services.document_delete(document=held, actor=owner)
        with pytest.raises(Conflict) as refused:
            services.document_purge(document=fresh(held), actor=owner, today=date(2998, 12, 31))
        assert refused.value.code == "retention_period"
        assert services.document_purge(document=fresh(held), actor=NOBODY, today=date(2999, 1, 1)).purged_at is not None

    def test_row_deletes_are_refused_too(self, acme, held):
        """A tenant deleted with its documents, or a shell's delete(), destroys content as a purge would."""
        from django.db import transaction
        from django.db.models import ProtectedError

        with pytest.raises((Conflict, ProtectedError)), transaction.atomic():
            acme.tenant.delete()
        with pytest.raises(Conflict), transaction.atomic():
            Document.objects.across_tenants().filter(pk=held.pk).delete()
        with pytest.raises(Conflict), transaction.atomic():
            fresh(held).delete()
        assert Document.objects.across_tenants().filter(pk=held.pk).exists()

    def test_no_task_or_command_purges_around_the_service(self):
        """The only sweeps that purge are the audit's (audit_purge_expired); documents are purged by
        services.document_purge alone, so its refusal is every caller's."""
        import pathlib
        import re

        apps = pathlib.Path(__file__).resolve().parents[2] / "apps"
        callers = sorted(
            str(p.relative_to(apps))
            for p in apps.rglob("*.py")
            if re.search(r"\bdocument_purge\b", p.read_text()) and "migrations" not in p.parts
        )
        assert callers == ["documents/admin.py", "documents/api.py", "documents/services.py"], callers


# --------------------------------------------------------------------------- the admin site
def staff_client(acme, username: str, role: str) -> Client:
    user = get_user_model().objects.create_user(username, password="pw-for-tests-only", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["documents", "tenants"]))
    tenant_services.membership_add(tenant=acme.tenant, user=user, username=username, role=role)
    client = Client()
    client.force_login(user)
    return client


CHANGE_FORM = {
    "title": "Supplier contract",
    "tags": "",
    "author": "",
    "category": "",
    "source_url": "",
    "effective_date": "",
    "retention_until": "",
    "versions-TOTAL_FORMS": "0",
    "versions-INITIAL_FORMS": "0",
    "events-TOTAL_FORMS": "0",
    "events-INITIAL_FORMS": "0",
}  # legal_hold unchecked: lift it


@pytest.mark.django_db
class TestAdminSite:
    def test_an_admin_staff_user_sees_the_fields_read_only_and_cannot_post_them(self, acme, held):
        staff = staff_client(acme, "staffer", Role.ADMIN)
        page = staff.get(f"/admin/documents/document/{held.pk}/change/").content.decode()
        assert 'name="legal_hold"' not in page and 'name="retention_until"' not in page and "Retention" in page
        staff.post(f"/admin/documents/document/{held.pk}/change/", {**CHANGE_FORM, "author": "Eddie"})
        document = fresh(held)
        assert (document.legal_hold, document.retention_until, document.author) == (True, date(2999, 1, 1), "Eddie")
        assert not document.events.filter(action="legal_hold_lifted").exists()

        page = staff.get("/admin/documents/document/add/").content.decode()
        assert 'name="legal_hold"' not in page
        staff.post(
            "/admin/documents/document/add/",
            {
                "collection": held.collection_id,
                "title": "New",
                "tags": "",
                "legal_hold": "on",
                "retention_until": "2999-01-01",
            },
        )
        created = Document.objects.across_tenants().get(title="New")
        assert (created.legal_hold, created.retention_until) == (False, None)

    def test_an_owner_staff_user_lifts_the_hold_with_a_history_event(self, acme, held):
        staff = staff_client(acme, "boss", Role.OWNER)
        assert 'name="legal_hold"' in staff.get(f"/admin/documents/document/{held.pk}/change/").content.decode()
        staff.post(f"/admin/documents/document/{held.pk}/change/", CHANGE_FORM)
        document = fresh(held)
        assert (document.legal_hold, document.retention_until) == (False, None)
        events = {e.action: e for e in document.events.all()[:2]}
        assert set(events) == {"legal_hold_lifted", "retention_changed"}
        assert events["legal_hold_lifted"].actor.username == "boss"

    def test_delete_and_purge_actions_are_refused_under_hold_for_an_owner_too(self, acme, held):
        staff = staff_client(acme, "boss", Role.OWNER)
        for action in ("soft_delete", "purge"):
            response = staff.post(
                "/admin/documents/document/",
                {"action": action, "_selected_action": [held.pk], "confirmed": "yes"},
                follow=True,
            )
            assert "legal hold" in response.content.decode()
        assert fresh(held).state == DocumentState.DRAFT and fresh(held).purged_at is None


@pytest.mark.django_db
@pytest.mark.parametrize("role, allowed", [(Role.ADMIN, False), (Role.OWNER, True)])
def test_key_creation_on_the_admin_site_follows_the_role(acme, role, allowed):
    staff = staff_client(acme, "keeper", role)
    response = staff.post(
        "/admin/tenants/apikey/add/",
        {"tenant": acme.tenant.pk, "name": "from admin", "scopes": ["documents:retention"], "expires_at": ""},
        follow=True,
    )
    assert ApiKey.objects.across_tenants().filter(name="from admin").exists() == allowed
    if not allowed:
        assert any("documents:retention" in str(m) for m in response.context["messages"])


# --------------------------------------------------------------------------- the schema
@pytest.mark.django_db
def test_the_schema_documents_the_scope_and_the_endpoint(api):
    schema = api.get("/api/schema/?format=json").json()
    enums = [c.get("enum", []) for c in schema["components"]["schemas"].values()]
    assert any("documents:retention" in enum for enum in enums)
    operation = schema["paths"]["/api/v1/documents/{document_id}/retention"]["patch"]
    assert "documents:retention" in operation["summary"] and "owner and compliance" in operation["description"]
    metadata = schema["components"]["schemas"]["PatchedDocumentUpdateRequest"]["properties"]
    assert "documents:retention" in metadata["legal_hold"]["description"]


@pytest.mark.django_db
def test_a_misspelt_retention_field_is_a_400_and_changes_nothing(acme, held):
    owner = user_client(acme.owner, "acme")
    body = error(
        owner.patch(f"/api/v1/documents/{held.pk}/retention", {"legal_hld": False}, format="json"), 400, "invalid"
    )
    assert "legal_hld" in body["extra"]["fields"]
    assert fresh(held).legal_hold
