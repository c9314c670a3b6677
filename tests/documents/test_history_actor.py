"""Issue 15, item 6: a document's history names its actors as the document's tenant knows them,
never by the global username that carries another tenant's slug (`ceo@globex`)."""

import pytest

from apps.tenants import services as tenants
from apps.tenants.models import Membership, Role
from tests.conftest import user_client


@pytest.fixture
def ceo(acme, globex):
    """A person of globex (global username `ceo@globex`) who is also acme's editor `chief`."""
    membership = tenants.member_create(tenant=globex.tenant, username="ceo", role=Role.OWNER)
    assert membership.user.get_username() == "ceo@globex"
    return tenants.membership_add(tenant=acme.tenant, user=membership.user, username="chief", role=Role.EDITOR)


def _history(writer, document):
    response = writer.get(f"/api/v1/documents/{document['id']}/history")
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.django_db
def test_history_shows_the_tenant_local_name_of_a_member_of_two_tenants(ceo, document, writer):
    response = user_client(ceo, "acme").patch(
        f"/api/v1/documents/{document['id']}", {"title": "Travel policy 2"}, format="json"
    )
    assert response.status_code == 200, response.content
    history = _history(writer, document)
    assert history[0]["actor"] == "chief"
    assert not any("globex" in (event["actor"] or "") for event in history)
    assert history[-1]["actor"].startswith("api-key:")  # the key that created it, by its prefix


@pytest.mark.django_db
def test_an_actor_without_a_membership_here_gets_a_neutral_label(ceo, document, writer):
    user_client(ceo, "acme").patch(f"/api/v1/documents/{document['id']}", {"title": "Travel policy 2"}, format="json")
    Membership.objects.across_tenants().filter(pk=ceo.pk).delete()  # they left acme; their event stays
    history = _history(writer, document)
    assert history[0]["actor"] == "not a member of this tenant"
    assert "globex" not in str(history)
