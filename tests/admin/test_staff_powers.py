"""What an admin-role staff member may not do on the admin site (an outside review reproduced each):
make themselves, or anyone, the compliance team; delete memberships or keys behind the services;
see a person's global username (it can name another tenant); keep administering a suspended tenant
or lift its suspension; reach a 500 through the autocomplete endpoint or a typed filter value; and,
below the admin, a held document's versions cannot be deleted either."""

from __future__ import annotations

from datetime import date

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client
from django.urls import reverse

from apps.core.exceptions import Conflict, PermissionDenied
from apps.documents import services as documents
from apps.tenants import services as tenants
from apps.tenants.actors import Actor
from apps.tenants.admin import SuperuserOnly
from apps.tenants.models import ApiKey, Membership, Role, Scope, Tenant
from tests.conftest import user_client
from tests.documents.conftest import text_file

pytestmark = pytest.mark.django_db
User = get_user_model()


def staff(world, role, name=None):
    name = name or f"{world.tenant.slug}-{role}-staffer"
    user = User.objects.create_user(name, password="pw-for-tests-only", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["tenants", "documents", "evaluation", "audit"])
    )
    membership = tenants.membership_add(tenant=world.tenant, user=user, username=name, role=role)
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client, user, membership


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def held_document(world, title="Held contract"):
    collection = documents.collection_create(tenant=world.tenant, name=f"C {title}")
    document = documents.document_create(
        tenant=world.tenant, collection=collection, title=title, actor=Actor(None), file=text_file()
    )
    return documents.document_retention_set(
        document=document, actor=Actor(user=world.owner.user), legal_hold=True, retention_until=date(2999, 1, 1)
    )


def test_an_admin_cannot_make_itself_or_anyone_the_compliance_team(acme):
    client, _, membership = staff(acme, Role.ADMIN)
    client.post(url(Membership, "change", membership.pk), {"role": Role.COMPLIANCE, "is_active": "on"})
    assert Membership.objects.across_tenants().get(pk=membership.pk).role == Role.ADMIN
    admin_member = tenants.member_create(tenant=acme.tenant, username="eve", role=Role.ADMIN)
    api = user_client(admin_member, acme.tenant.slug)
    response = api.patch("/api/v1/users/reader", {"role": "compliance"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "role_escalation", response.content
    assert Membership.objects.across_tenants().get(pk=acme.reader.pk).role == Role.READER
    created = api.post("/api/v1/users", {"username": "auditor", "role": "compliance"}, format="json")
    assert created.status_code == 403, created.content
    # the owner appoints the compliance team
    owner = user_client(acme.owner, acme.tenant.slug)
    assert owner.patch("/api/v1/users/reader", {"role": "compliance"}, format="json").status_code == 200


def test_an_admin_cannot_take_the_compliance_role_away_either(acme):
    auditor = tenants.member_create(tenant=acme.tenant, username="auditor", role=Role.COMPLIANCE)
    admin_member = tenants.member_create(tenant=acme.tenant, username="eve", role=Role.ADMIN)
    with pytest.raises(PermissionDenied):
        tenants.member_set_role(
            membership=auditor,
            role=Role.READER,
            granting_scopes=frozenset(Scope.values) - {Scope.ACT_AS_USER},
            granting_role=admin_member.role,
        )


def test_memberships_and_keys_are_not_deleted_from_the_admin(acme):
    client, _, _ = staff(acme, Role.ADMIN)
    _, _raw = tenants.api_key_create(tenant=acme.tenant, name="app", scopes=[Scope.SEARCH])
    key = ApiKey.objects.across_tenants().get(name="app")
    for model, pk in ((Membership, acme.owner.pk), (ApiKey, key.pk)):
        assert client.post(url(model, "delete", pk), {"post": "yes"}).status_code in (302, 403)
        assert (
            client.post(
                url(model, "changelist"), {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
            ).status_code
            < 500
        )
    assert (
        Membership.objects.across_tenants().filter(pk=acme.owner.pk).exists()
        and ApiKey.objects.across_tenants().filter(pk=key.pk).exists()
    )
    assert client.post(url(Tenant, "delete", acme.tenant.pk), {"post": "yes"}).status_code in (302, 403)
    assert Tenant.objects.filter(pk=acme.tenant.pk).exists()


def test_membership_pages_show_the_tenant_local_name_only(acme, globex):
    tenants.membership_add(tenant=acme.tenant, user=globex.owner.user, username="consultant", role=Role.READER)
    client, _, _ = staff(acme, Role.ADMIN)
    consultant = Membership.objects.get(tenant=acme.tenant, username="consultant")
    for page in (
        url(Membership, "changelist"),
        url(Tenant, "change", acme.tenant.pk),
        url(Membership, "change", consultant.pk),
    ):
        body = client.get(page).content.decode()
        assert "consultant" in body and globex.owner.user.username not in body, page
    assert "consultant" not in client.get(url(Membership, "changelist"), {"q": "globex"}).content.decode()


def test_a_suspended_tenant_is_closed_to_its_staff_and_only_the_operator_lifts_it(acme):
    client, _, _ = staff(acme, Role.ADMIN)
    assert client.get(url(Membership, "changelist")).status_code == 200
    Tenant.objects.filter(pk=acme.tenant.pk).update(is_active=False)
    opened = [
        m._meta.label
        for m, ma in admin.site._registry.items()
        if not isinstance(ma, SuperuserOnly) and client.get(url(m, "changelist")).status_code == 200
    ]
    assert opened == []
    client.post(
        url(Tenant, "change", acme.tenant.pk),
        {
            "slug": "acme",
            "name": "Acme",
            "is_active": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert not Tenant.objects.get(pk=acme.tenant.pk).is_active


def test_the_autocomplete_endpoint_never_answers_a_500(acme, globex):
    client, _, _ = staff(acme, Role.ADMIN)
    failures = []
    for model in admin.site._registry:
        for field in model._meta.get_fields():
            if field.is_relation:
                response = client.get(
                    "/admin/autocomplete/",
                    {
                        "app_label": model._meta.app_label,
                        "model_name": model._meta.model_name,
                        "field_name": field.name,
                        "term": "a",
                    },
                )
                if response.status_code >= 500:
                    failures.append(f"{model._meta.label}.{field.name}")
    assert failures == []
    assert (
        client.get(
            "/admin/autocomplete/", {"app_label": "tenants", "model_name": "tenant", "field_name": "memberships"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize("value", ["abc", "99999999999999999999", "-1", "1.5", "\x00", "²"])
def test_a_typed_tenant_or_collection_filter_value_is_no_500(acme, value):
    client, _, _ = staff(acme, Role.ADMIN)
    for model, model_admin in admin.site._registry.items():
        if isinstance(model_admin, SuperuserOnly):
            continue
        for parameter in ("tenant", "collection"):
            response = client.get(url(model, "changelist"), {parameter: value})
            assert response.status_code < 500, (model._meta.label, parameter, value)


def test_a_held_documents_versions_cannot_be_deleted_below_the_services(acme):
    held = held_document(acme)
    with pytest.raises(Conflict), transaction.atomic():
        held.versions.all().delete()
    assert held.versions.count() == 1
