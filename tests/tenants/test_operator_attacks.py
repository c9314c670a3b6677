"""Attacks on the operator's CLI and the admin's tenant form, from an adversarial review (a helper
session): inputs that used to give a traceback, a stored row the database would refuse, a silent
no-op, a forged key line or a second look-alike member; races between two provisioning scripts;
the suspension's reach. Each asserts what the commands promise (README, "Deployment")."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Role, Tenant, TenantGroup
from tests.tenants.test_operator_commands import run, run_json

pytestmark = pytest.mark.django_db


def _single_json_object(out: str) -> dict:
    parsed = json.loads(out)  # raises on empty or on several objects
    assert isinstance(parsed, dict)
    return parsed


# ----------------------------------------------------------------------------- 1. username "bob\n"
def test_a_username_with_a_trailing_newline_is_invalid(acme):
    # tenant_username_validator is r"^[\w.@+-]{1,150}$": `$` also matches before a final "\n".
    code, out, _err = run("member_create", "--tenant", "acme", "bob\n", "--json")
    assert code == 1, (code, out, Membership.objects.filter(tenant=acme.tenant).values_list("username", flat=True))


def test_tenant_create_owner_with_a_trailing_newline_is_invalid(db):
    code, out, _err = run("tenant_create", "initech", "--name", "Initech", "--owner", "olivia\n", "--json")
    assert code == 1, out


# ----------------------------------------------------------------------------- 2. unvalidated user fields
def test_an_invalid_email_is_refused_like_the_api_refuses_it(acme):
    code, out, _ = run("member_create", "--tenant", "acme", "eve", "--email", "not an email", "--json")
    assert code == 1, out


@pytest.mark.parametrize(
    "argv",
    [
        ["member_create", "--tenant", "acme", "eve", "--email", "a" * 250 + "@x.example"],
        ["member_create", "--tenant", "acme", "eve", "--first-name", "x" * 151],
        ["member_create", "--tenant", "acme", "eve", "--last-name", "x" * 151],
        ["tenant_create", "initech", "--name", "Initech", "--owner", "o", "--owner-email", "a" * 250 + "@x.example"],
        ["api_key_create", "--tenant", "acme", "--name", "k" * 101, "--scopes", "search"],
    ],
    ids=["email>254", "first_name>150", "last_name>150", "owner_email>254", "key_name>100"],
)
def test_an_overlong_value_is_invalid_input_not_a_stored_row(acme, argv):
    """SQLite stores it silently (it ignores varchar lengths); PostgreSQL, the deployed database,
    raises DataError ("value too long for type character varying(N)"): a traceback, no JSON."""
    code, out, _ = run(*argv, "--json")
    assert code == 1, out
    assert _single_json_object(out)["error"]["code"]


# ----------------------------------------------------------------------------- 3. --expires-at far future with offset
def test_an_expiry_at_the_end_of_time_with_an_offset_is_invalid_input_not_a_traceback(acme):
    code, out, err = run(
        "api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search",
        "--expires-at", "9999-12-31T23:00:00-05:00", "--json",
    )  # fmt: skip
    assert "Traceback" not in err and "OverflowError" not in err, err[-600:]
    assert code == 1
    assert _single_json_object(out)["error"]["code"] == "invalid_expiry"
    assert not ApiKey.objects.filter(tenant=acme.tenant).exists()


# ----------------------------------------------------------------------------- 4. text output says UTC when it is not
def test_the_text_output_states_the_expiry_in_utc(acme):
    code, out, _ = run(
        "api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search",
        "--expires-at", "2030-01-01T00:00:00+05:00",
    )  # fmt: skip
    assert code == 0
    stored = ApiKey.objects.get(tenant=acme.tenant).expires_at  # 2029-12-31 19:00 UTC
    assert f"expires {stored:%Y-%m-%d %H:%M} UTC" in out, out


# ----------------------------------------------------------------------------- 5. check-then-insert races
def test_a_tenant_slug_taken_between_the_check_and_the_insert_is_a_conflict_not_a_traceback(db):
    original = Tenant.full_clean

    def competitor_wins(self, *args, **kwargs):
        original(self, *args, **kwargs)
        Tenant.objects.bulk_create([Tenant(slug=self.slug, name="the other script")])

    with mock.patch.object(Tenant, "full_clean", competitor_wins):
        code, out, err = run("tenant_create", "initech", "--name", "Initech", "--json")
    assert "IntegrityError" not in err, err[-400:]
    assert code == 4 and _single_json_object(out)["error"]["code"] == "conflict"


def test_a_username_taken_between_the_check_and_the_insert_is_a_conflict_not_a_traceback(acme):
    original = services._internal_username

    def competitor_wins(tenant, username):
        name = original(tenant, username)
        other = get_user_model().objects.create(username="competitor")
        Membership.objects.bulk_create([Membership(tenant=tenant, user=other, username=username, role=Role.READER)])
        return name

    with mock.patch.object(services, "_internal_username", competitor_wins):
        code, _out, err = run("member_create", "--tenant", "acme", "zed", "--json")
    assert "IntegrityError" not in err, err[-400:]
    assert code == 4


# ----------------------------------------------------------------------------- 6. --json and non-ApplicationErrors
def test_an_unexpected_failure_still_prints_one_json_object_and_a_distinct_code(acme):
    with mock.patch.object(services, "api_key_create", side_effect=RuntimeError("database went away")):
        code, out, err = run("api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search", "--json")
    assert code == 70, code  # 1 would read as "invalid input"
    assert _single_json_object(out)["error"]["code"] == "internal_error" and "database went away" in err


def test_a_usage_error_under_json_is_argparses_with_nothing_on_stdout(acme):
    code, out, err = run("api_key_create", "--tenant", "acme", "--json")
    assert code == 2 and "--name" in err
    assert out == ""  # as documented: nothing a script could take for a result


# ----------------------------------------------------------------------------- 7. suspension vs the admin site
def test_a_compliance_staff_member_of_a_suspended_tenant_is_refused_on_the_admin_site(acme):
    carol = services.member_create(tenant=acme.tenant, username="carol", role=Role.COMPLIANCE)
    carol.user.is_staff = True
    carol.user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(carol.user)
    assert client.get("/admin/audit/auditrecord/").status_code == 200
    assert run("tenant_deactivate", "acme")[0] == 0
    # "every key and member of the tenant is refused (403, tenant_inactive)" (tenant_deactivate's docstring)
    assert client.get("/admin/audit/auditrecord/").status_code != 200


# ----------------------------------------------------------------------------- 8. the admin's tenant form
def _superuser_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-for-tests-only"))
    return client


def _form(**overrides):
    form = {"slug": "initech", "name": "Initech", "is_active": "on",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # fmt: skip
    form.update(overrides)
    return {k: v for k, v in form.items() if v is not None}


def test_admin_add_with_is_active_unchecked_makes_a_suspended_tenant_with_its_group(db):
    response = _superuser_client().post("/admin/tenants/tenant/add/", _form(is_active=None))
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.is_active is False
    assert TenantGroup.objects.filter(tenant=tenant, is_everyone=True).count() == 1


@pytest.mark.parametrize("slug", ["acme", "Not a slug!", "", "x" * 64, "ünï"])
def test_admin_add_with_a_taken_or_invalid_slug_is_a_form_error(acme, slug):
    before = Tenant.objects.count()
    response = _superuser_client().post("/admin/tenants/tenant/add/", _form(slug=slug))
    assert response.status_code == 200 and b"errornote" in response.content
    assert Tenant.objects.count() == before


def test_admin_add_racing_a_cli_create_is_a_message_not_a_500(db):
    client = _superuser_client()
    original = services.tenant_create

    def cli_wins(**kwargs):
        Tenant.objects.create(slug=kwargs["slug"], name="from the CLI")
        return original(**kwargs)

    with mock.patch.object(services, "tenant_create", cli_wins):
        response = client.post("/admin/tenants/tenant/add/", _form(), follow=True)
    # The service's Conflict is caught by TenantScopedAdmin.changeform_view: a message, no 500.
    # (The competitor's row is rolled back with the admin's transaction here: one connection.)
    assert response.status_code == 200 and b"already exists" in response.content


def test_a_group_of_another_tenant_with_the_everyone_name_is_not_joined(acme, globex):
    code, result = run_json("member_create", "--tenant", "acme", "hannah", "--group", "everyone", "--group", "everyone")
    assert code == 0 and result["member"]["groups"] == ["everyone"]
    globex_everyone = TenantGroup.objects.get(tenant=globex.tenant, is_everyone=True)
    assert not globex_everyone.auth_group.user_set.filter(memberships__username="hannah").exists()


# ----------------------------------------------------------------------------- 9. silent no-ops and forged output
def test_a_blank_tenant_name_is_invalid_as_on_the_admin_form(db):
    code, result = run_json("tenant_create", "initech", "--name", "   ")
    assert code == 1, result


def test_an_owner_email_without_an_owner_is_invalid(db):
    code, out, _ = run("tenant_create", "initech", "--name", "Initech", "--owner-email", "o@i.example", "--json")
    assert code != 0, out


def test_an_empty_owner_is_an_invalid_username_not_no_owner(db):
    code, out, _ = run("tenant_create", "initech", "--name", "Initech", "--owner", "", "--json")
    assert code == 1, out


def test_a_key_name_with_a_line_break_cannot_forge_a_second_key_line(acme):
    code, out, _ = run(
        "api_key_create", "--tenant", "acme", "--name", "k\nkp_0123456789ab_forged", "--scopes", "search"
    )
    assert code == 1 and "kp_0123456789ab_forged" not in out
