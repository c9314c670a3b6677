"""The `ask` command asks as a member through resolution.act_for, like the API: an active member
of an active tenant whose role may ask, and the answer is audited."""

from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from apps.audit.models import AuditRecord, Kind
from apps.tenants import resolution
from apps.tenants import services as tenants
from apps.tenants.models import Role

QUESTION = "How many nights may I book in a hotel?"


@pytest.mark.django_db
def test_the_command_asks_as_the_member_through_act_for_and_is_audited(library, capsys):
    with mock.patch.object(resolution, "act_for", wraps=resolution.act_for) as act_for:
        call_command("ask", QUESTION, tenant="acme", username="alice")
    assert act_for.call_count == 1 and act_for.call_args.args[0].membership == library.alice
    assert act_for.call_args.kwargs["require"] == ("ask",)
    record = AuditRecord.objects.across_tenants().order_by("-pk").first()
    assert record.kind == Kind.ASK and record.username == "alice" and record.user_id == library.alice.user_id
    assert record.api_key_id is None and not record.acting_for_user
    assert f"audit record {record.pk}" in capsys.readouterr().out
    # alice reads the handbook only: the record's shown chunks are all hers to read
    assert {c.document_id for c in record.chunks.filter(shown=True)} <= {library.travel.pk, library.security.pk}


@pytest.mark.django_db
def test_the_command_refuses_a_deactivated_member_a_role_that_may_not_ask_and_a_stranger(library):
    tenants.member_set_active(membership=library.bob, active=False)
    tenants.member_create(tenant=library.world.tenant, username="carol", role=Role.COMPLIANCE)
    before = AuditRecord.objects.across_tenants().count()
    with pytest.raises(CommandError, match="deactivated"):
        call_command("ask", QUESTION, tenant="acme", username="bob")
    with pytest.raises(CommandError, match="'ask' scope"):
        call_command("ask", QUESTION, tenant="acme", username="carol")
    with pytest.raises(CommandError, match="No member 'nobody'"):
        call_command("ask", QUESTION, tenant="acme", username="nobody")
    assert AuditRecord.objects.across_tenants().count() == before
