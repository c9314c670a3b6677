"""The document lifecycle in the admin site (Django's test client; the browser test is
test_admin_browser.py)."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from apps.access.principals import document_reader_principals
from apps.documents import services
from apps.documents.models import Document, DocumentState
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import Role
from tests.documents.conftest import POLICY_V1, POLICY_V2, make_ready, text_file


@pytest.fixture
def staff(acme):
    user = get_user_model().objects.create_user("staffer", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["documents", "tenants"]))
    tenant_services.membership_add(tenant=acme.tenant, user=user, username="staffer", role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def policy(acme):
    collection = services.collection_create(tenant=acme.tenant, name="Policies")
    return services.document_create(
        tenant=acme.tenant, collection=collection, title="Travel policy", actor=Actor(None), file=text_file()
    )


@pytest.mark.django_db
def test_upload_publish_and_roll_back(staff, policy):
    base = f"/admin/documents/document/{policy.pk}"
    response = staff.post(f"{base}/upload/", {"file": text_file(POLICY_V2), "change_note": "eight hours"}, follow=True)
    assert "Uploaded version 2" in response.content.decode()
    duplicate = staff.post(f"{base}/upload/", {"file": text_file(POLICY_V2)})
    assert "identical to version 2" in duplicate.content.decode()

    make_ready(policy.pk, 1)
    make_ready(policy.pk, 2)
    assert "Publish version 2" in staff.get(f"{base}/publish/2/").content.decode()  # a confirmation page first
    assert Document.objects.across_tenants().get(pk=policy.pk).published_version is None
    staff.post(f"{base}/publish/2/", {"reason": "approved"})
    assert Document.objects.across_tenants().get(pk=policy.pk).published_version.number == 2
    page = staff.get(f"{base}/change/").content.decode()
    assert "Roll back to this version" in page
    staff.post(f"{base}/publish/1/", {"reason": "v2 wrong"})
    document = Document.objects.across_tenants().get(pk=policy.pk)
    assert document.published_version.number == 1
    assert [e.action for e in document.events.all()[:2]] == ["rolled_back", "published"]


@pytest.mark.django_db
def test_actions_ask_for_confirmation_and_report_refusals(staff, policy):
    url = "/admin/documents/document/"
    confirm = staff.post(url, {"action": "archive", "_selected_action": [policy.pk]})
    assert "Archive 1 document(s)?" in confirm.content.decode()
    assert Document.objects.across_tenants().get(pk=policy.pk).state == DocumentState.DRAFT
    staff.post(url, {"action": "archive", "_selected_action": [policy.pk], "confirmed": "yes", "reason": "old"})
    assert Document.objects.across_tenants().get(pk=policy.pk).state == DocumentState.ARCHIVED

    Document.objects.across_tenants().filter(pk=policy.pk).update(legal_hold=True, state=DocumentState.DELETED)
    response = staff.post(url, {"action": "purge", "_selected_action": [policy.pk], "confirmed": "yes"}, follow=True)
    assert "legal hold" in response.content.decode()
    assert Document.objects.across_tenants().get(pk=policy.pk).purged_at is None


@pytest.mark.django_db
def test_grants_are_edited_within_the_tenant(staff, policy, acme, globex):
    url = f"/admin/documents/document/{policy.pk}/grants/"
    page = staff.get(url).content.decode()
    assert "user reader" in page and "globex" not in page
    form = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "0",
        "form-0-principal": f"user:{acme.reader.user_id}",
        "form-0-level": "view",
    }
    staff.post(url, form)
    policy.refresh_from_db()
    assert policy.has_own_grants
    assert f"user:{acme.reader.user_id}" in document_reader_principals(policy)
    gus = tenant_services.member_create(tenant=globex.tenant, username="gus")
    staff.post(url, {**form, "form-0-principal": f"user:{gus.user_id}"})
    assert f"user:{gus.user_id}" not in document_reader_principals(policy)  # not a choice: refused


@pytest.mark.django_db
def test_staff_see_only_their_tenants_documents(staff, policy, globex):
    theirs = services.collection_create(tenant=globex.tenant, name="Theirs")
    services.document_create(tenant=globex.tenant, collection=theirs, title="Globex secret plan", actor=Actor(None))
    page = staff.get("/admin/documents/document/").content.decode()
    assert "Travel policy" in page and "Globex secret plan" not in page
    assert "Globex secret plan" not in staff.get("/admin/documents/document/?q=secret").content.decode()


@pytest.mark.django_db
def test_add_a_document_with_its_first_version(staff, acme):
    collection = services.collection_create(tenant=acme.tenant, name="Products")
    response = staff.post(
        "/admin/documents/document/add/",
        {
            "collection": collection.pk,
            "title": "Widget manual",
            "tags": "manual, widgets",
            "file": text_file(POLICY_V1, "widget.md"),
        },
        follow=True,
    )
    assert response.status_code == 200
    document = Document.objects.across_tenants().get(title="Widget manual")
    assert document.tenant == acme.tenant and document.versions.get().media_type == "text/markdown"
    assert document.tags == ["manual", "widgets"]
    staff.post(
        f"/admin/documents/document/{document.pk}/change/",
        {
            "title": "Widget manual",
            "tags": "manual",
            "author": "Eddie",
            "category": "",
            "source_url": "",
            "effective_date": "",
            "retention_until": "",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
            "events-TOTAL_FORMS": "0",
            "events-INITIAL_FORMS": "0",
        },
    )
    document.refresh_from_db()
    assert (document.tags, document.author) == (["manual"], "Eddie")
    assert document.events.first().action == "metadata_changed"


@pytest.mark.django_db
def test_the_sidebar_filters_name_only_the_staff_users_tenants(staff, policy, globex):
    services.collection_create(tenant=globex.tenant, name="GlobexMergerPlans")
    for url in (
        "/admin/documents/document/",
        "/admin/documents/collection/",
        "/admin/tenants/membership/",
        "/admin/tenants/apikey/",
    ):
        page = staff.get(url).content.decode()
        assert "globex" not in page.lower() and "GlobexMergerPlans" not in page, url


@pytest.mark.django_db
def test_view_only_staff_cannot_run_the_lifecycle(acme, policy):
    viewer = get_user_model().objects.create_user("viewer", password="pw-for-tests-only", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_document", "view_collection"]))
    tenant_services.membership_add(tenant=acme.tenant, user=viewer, username="viewer", role=Role.ADMIN)
    client = Client()
    client.force_login(viewer)
    base = f"/admin/documents/document/{policy.pk}"
    assert client.post(f"{base}/upload/", {"file": text_file(POLICY_V2)}).status_code == 403
    make_ready(policy.pk, 1)
    assert client.post(f"{base}/publish/1/").status_code == 403
    client.post(
        "/admin/documents/document/", {"action": "soft_delete", "_selected_action": [policy.pk], "confirmed": "yes"}
    )
    assert Document.objects.across_tenants().get(pk=policy.pk).state == DocumentState.DRAFT
    assert client.get("/admin/auth/user/").status_code == 403  # users of every tenant: superusers only


@pytest.mark.django_db
def test_admins_cannot_promote_beyond_their_role(staff, acme):
    membership = acme.reader
    response = staff.post(
        f"/admin/tenants/membership/{membership.pk}/change/", {"role": "owner", "is_active": "on"}, follow=True
    )
    assert "Only an owner can give the role" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.READER
