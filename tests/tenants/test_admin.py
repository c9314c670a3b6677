"""Staff see only the tenants they administer in the admin site; a superuser sees all."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.tenants import services
from apps.tenants.models import ApiKey, Role


@pytest.fixture
def staff_of_acme(acme):
    user = get_user_model().objects.create_user(
        "staffer", password="pw-for-tests-only", is_staff=True, is_superuser=False
    )
    from django.contrib.auth.models import Permission

    user.user_permissions.set(Permission.objects.filter(content_type__app_label="tenants"))
    services.membership_add(tenant=acme.tenant, user=user, username="staffer", role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_see_only_their_tenants(staff_of_acme, acme, globex):
    page = staff_of_acme.get("/admin/tenants/tenant/").content.decode()
    assert "acme" in page and "globex" not in page
    assert (
        staff_of_acme.get(f"/admin/tenants/tenant/{globex.tenant.pk}/change/").status_code == 302
    )  # not found → index
    services.member_create(tenant=globex.tenant, username="gus.globex")
    members = staff_of_acme.get("/admin/tenants/membership/").content.decode()
    assert "staffer" in members and "gus.globex" not in members
    add_key_form = staff_of_acme.get("/admin/tenants/apikey/add/").content.decode()
    assert ">acme<" in add_key_form and ">globex<" not in add_key_form


@pytest.mark.django_db
def test_an_api_key_created_in_the_admin_is_shown_once(staff_of_acme, acme):
    response = staff_of_acme.post(
        "/admin/tenants/apikey/add/",
        {"tenant": acme.tenant.pk, "name": "from admin", "scopes": ["search"], "expires_at": ""},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("shown this once" in m for m in messages), messages
    raw = next(m for m in messages if "shown this once" in m).split()[-1]
    assert ApiKey.objects.across_tenants().get(name="from admin").prefix == raw[3:15]


@pytest.mark.django_db
def test_superuser_sees_every_tenant(acme, globex):
    admin = get_user_model().objects.create_superuser("root", password="pw-for-tests-only")
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/tenants/tenant/").content.decode()
    assert "acme" in page and "globex" in page


@pytest.mark.django_db
def test_a_membership_added_in_the_admin_joins_everyone(staff_of_acme, acme):
    from apps.tenants.models import Membership, TenantGroup

    newcomer = get_user_model().objects.create_user("newcomer")
    form = {"tenant": acme.tenant.pk, "user": newcomer.pk, "username": "newcomer", "role": "reader", "is_active": "on"}
    # staff pick among their tenants' people; bringing in an outsider is a superuser's job
    assert staff_of_acme.post("/admin/tenants/membership/add/", form).status_code == 200
    assert not Membership.objects.across_tenants().filter(username="newcomer").exists()
    superuser = Client()
    superuser.force_login(get_user_model().objects.create_superuser("root", password="pw-for-tests-only"))
    response = superuser.post("/admin/tenants/membership/add/", form)
    assert response.status_code == 302, response.content
    assert Membership.objects.filter(tenant=acme.tenant, username="newcomer").exists()
    everyone = TenantGroup.objects.get(tenant=acme.tenant, is_everyone=True)
    assert newcomer.groups.filter(pk=everyone.auth_group_id).exists()
    page = staff_of_acme.get(f"/admin/tenants/tenantgroup/{everyone.pk}/delete/")
    assert page.status_code == 403
