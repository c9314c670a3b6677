"""The operator's CLI: `tenant_create`, `member_create`, `api_key_create`, `tenant_deactivate`.

Each is run the way a provisioning script runs it, through Django's command-line entry
(ManagementUtility, which calls sys.exit with the command's code), and its promises are what such
a script relies on: the exit code of every kind of failure, one JSON object on stdout with --json,
nothing half-made after a failure, a key that is printed once and works, a suspension that takes
effect on the very next request."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.management import ManagementUtility
from django.test import Client

from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Tenant, TenantGroup
from tests.conftest import key_client, user_client

pytestmark = pytest.mark.django_db


def run(*argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `manage.py <argv>`."""
    out, err = io.StringIO(), io.StringIO()
    # run_from_argv closes every connection when a command ends (a process is about to exit);
    # here that would be the test's own transaction.
    with redirect_stdout(out), redirect_stderr(err), mock.patch("django.core.management.base.connections.close_all"):
        try:
            ManagementUtility(["manage.py", *argv]).execute()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def run_json(*argv: str) -> tuple[int, dict]:
    code, out, _ = run(*argv, "--json")
    return code, json.loads(out)


def test_a_tenant_provisioned_from_the_command_line_works_end_to_end():
    code, made = run_json(
        "tenant_create", "initech", "--name", "Initech", "--owner", "olivia", "--owner-email", "o@i.example"
    )
    assert code == 0
    assert made["tenant"]["slug"] == "initech" and made["tenant"]["is_active"] is True
    assert made["owner"] == {
        "tenant": "initech", "username": "olivia", "role": "owner", "email": "o@i.example", "is_active": True,
        "groups": ["everyone"],
    }  # fmt: skip
    tenant = Tenant.objects.get(slug="initech")
    assert TenantGroup.objects.filter(tenant=tenant, is_everyone=True).count() == 1
    services.group_create(tenant=tenant, name="HR")

    code, member = run_json("member_create", "--tenant", "initech", "hannah", "--role", "editor", "--group", "HR")
    assert code == 0 and member["member"]["groups"] == ["HR", "everyone"] and member["member"]["role"] == "editor"
    hannah = Membership.objects.get(tenant=tenant, username="hannah")
    assert not hannah.user.has_usable_password()  # people sign in through the tenant app or SSO

    code, issued = run_json(
        "api_key_create", "--tenant", "initech", "--name", "intranet", "--scopes", "search,ask", "--scopes",
        "act_as_user", "--expires-in-days", "30",
    )  # fmt: skip
    assert code == 0
    assert issued["api_key"]["scopes"] == ["act_as_user", "ask", "search"] and issued["api_key"]["expires_at"]
    raw = issued["key"]
    # Printed once: the database holds its digest, never the key or its secret.
    row = ApiKey.objects.get(tenant=tenant, prefix=issued["api_key"]["prefix"])
    stored = json.dumps(list(ApiKey.objects.filter(tenant=tenant, pk=row.pk).values()), default=str)
    assert raw.split("_")[-1] not in stored
    client = key_client(raw)
    assert client.get("/api/v1/tenant").json()["tenant"]["slug"] == "initech"
    searched = client.post("/api/v1/search", {"query": "leave", "as_user": "hannah"}, format="json")
    assert searched.status_code == 200, searched.content
    # Only what was asked for: the key cannot read the audit trail.
    assert client.get("/api/v1/audit/records").status_code == 403


def test_the_key_in_text_output_is_on_a_line_of_its_own_and_works(acme):
    code, out, _ = run("api_key_create", "--tenant", "acme", "--name", "ops", "--scopes", "documents:read")
    assert code == 0
    key_lines = [line for line in out.splitlines() if line.startswith("kp_")]
    assert len(key_lines) == 1 and "shown this once" in out and "never expires" in out
    assert key_client(key_lines[0]).get("/api/v1/tenant").status_code == 200


A_KEY = ["api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search"]


@pytest.mark.parametrize(
    ("argv", "exit_code", "error_code"),
    [
        (["tenant_create", "Not a slug!", "--name", "x"], 1, "invalid_tenant"),
        (["tenant_create", "acme", "--name", "Again"], 4, "tenant_exists"),
        (["member_create", "--tenant", "nope", "someone"], 3, "tenant_not_found"),
        (["member_create", "--tenant", "acme", "reader"], 4, "username_taken"),
        (["member_create", "--tenant", "acme", "someone", "--role", "god"], 1, "invalid_role"),
        (["member_create", "--tenant", "acme", "bad name!"], 1, "invalid_username"),
        (["member_create", "--tenant", "acme", "someone", "--group", "nosuch"], 3, "group_not_found"),
        (["api_key_create", "--tenant", "nope", "--name", "k", "--scopes", "search"], 3, "tenant_not_found"),
        (["api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search,root"], 1, "invalid_scope"),
        (["api_key_create", "--tenant", "acme", "--name", "k", "--scopes", ","], 1, "invalid_scope"),
        (["api_key_create", "--tenant", "acme", "--name", " ", "--scopes", "search"], 1, "invalid_name"),
        ([*A_KEY, "--expires-at", "2020-01-01T00:00Z"], 1, "invalid_expiry"),
        ([*A_KEY, "--expires-at", "soon"], 1, "invalid_expiry"),
        ([*A_KEY, "--expires-at", "2030-13-01T00:00"], 1, "invalid_expiry"),
        ([*A_KEY, "--expires-in-days", "0"], 1, "invalid_expiry"),
        ([*A_KEY, "--expires-in-days", "9999999"], 1, "invalid_expiry"),
        (["tenant_deactivate", "nope"], 3, "tenant_not_found"),
    ],
)  # fmt: skip
def test_every_failure_has_its_exit_code_a_json_error_and_leaves_nothing(acme, argv, exit_code, error_code):
    users, keys, tenants = (
        get_user_model().objects.count(),
        ApiKey.objects.across_tenants().count(),
        Tenant.objects.count(),
    )
    code, out, err = run(*argv, "--json")
    assert code == exit_code, err
    error = json.loads(out)["error"]
    assert error["code"] == error_code and error["message"] in err  # the same message for a person, on stderr
    assert (get_user_model().objects.count(), ApiKey.objects.across_tenants().count(), Tenant.objects.count()) == (
        users, keys, tenants,
    )  # fmt: skip


def test_a_wrong_command_line_exits_2_without_touching_anything(acme):
    code, _, err = run("api_key_create", "--tenant", "acme", "--scopes", "search")
    assert code == 2 and "--name" in err
    code, _, err = run("api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search",
                       "--expires-in-days", "3", "--expires-at", "2030-01-01T00:00Z")  # fmt: skip
    assert code == 2 and "not allowed with" in err
    assert not ApiKey.objects.filter(tenant=acme.tenant).exists()


def test_a_failed_owner_leaves_no_tenant_behind(db):
    code, error = run_json("tenant_create", "initech", "--name", "Initech", "--owner", "not valid!")
    assert code == 1 and error["error"]["code"] == "invalid_username"
    assert not Tenant.objects.filter(slug="initech").exists()


def test_a_group_of_another_tenant_is_not_found_and_not_joined(acme, globex):
    theirs = services.group_create(tenant=globex.tenant, name="HR")
    code, error = run_json("member_create", "--tenant", "acme", "hannah", "--group", "HR")
    assert code == 3 and "HR" in error["error"]["message"]
    assert not theirs.auth_group.user_set.exists()
    assert not Membership.objects.filter(tenant=acme.tenant, username="hannah").exists()


def test_a_suspension_refuses_the_next_request_of_every_key_and_member_and_lifting_it_restores_them(acme, globex):
    acme_key, globex_key = acme.key(), globex.key()
    member = user_client(acme.reader, "acme")
    assert key_client(acme_key).get("/api/v1/tenant").status_code == 200

    code, result = run_json("tenant_deactivate", "acme")
    assert code == 0 and result["changed"] is True and result["tenant"]["is_active"] is False
    for client in (key_client(acme_key), member):
        refused = client.post("/api/v1/search", {"query": "leave"}, format="json")
        assert refused.status_code == 403 and refused.json()["code"] == "tenant_inactive"
    assert key_client(globex_key).get("/api/v1/tenant").status_code == 200  # other tenants untouched
    # Nothing new for a suspended tenant: its keys and members would be refused anyway.
    assert run("api_key_create", "--tenant", "acme", "--name", "k", "--scopes", "search")[0] == 5
    assert run("member_create", "--tenant", "acme", "newcomer")[0] == 5
    assert run_json("tenant_deactivate", "acme")[1]["changed"] is False  # idempotent, and says so

    code, result = run_json("tenant_deactivate", "acme", "--reactivate")
    assert code == 0 and result["changed"] is True
    assert key_client(acme_key).get("/api/v1/tenant").status_code == 200
    assert member.get("/api/v1/tenant").status_code == 200


def test_a_tenant_added_on_the_admin_site_gets_its_everyone_group_like_one_from_the_command_line(db):
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-for-tests-only"))
    form = {"slug": "initech", "name": "Initech", "is_active": "on",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}  # fmt: skip
    response = client.post("/admin/tenants/tenant/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = Tenant.objects.get(slug="initech")
    assert TenantGroup.objects.filter(tenant=tenant, is_everyone=True).count() == 1
