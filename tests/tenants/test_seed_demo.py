"""The demo data of `bin/run`: loads twice without duplicating, and its grants mean what they say."""

import io

import pytest
from django.core.management import call_command

from apps.documents.models import Document
from apps.tenants.models import Membership
from tests.conftest import key_client, user_client


def seed() -> dict[str, str]:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return {line.split()[1]: line.split()[-1] for line in out.getvalue().splitlines()}


def titles(client) -> set[str]:
    return {d["title"] for d in client.get("/api/v1/documents?limit=100").json()["results"]}


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_its_grants_hold():
    first = seed()
    second = seed()
    assert Document.objects.across_tenants().filter(tenant__slug="acme").count() == 6
    assert Document.objects.across_tenants().filter(tenant__slug="globex").count() == 2
    assert key_client(first["acme"]).get("/api/v1/tenant").json()["code"] == "api_key_revoked"
    assert key_client(second["acme"]).get("/api/v1/tenant").status_code == 200

    media_types = set(
        Document.objects.across_tenants().filter(tenant__slug="acme").values_list("versions__media_type", flat=True)
    )
    assert media_types == {"text/markdown", "text/html", "text/plain"}

    # Ingestion marks versions ready; here every demo document is published by hand.
    from apps.documents import services as document_services
    from apps.documents.models import IngestionStatus
    from apps.tenants.actors import Actor

    for document in Document.objects.across_tenants().all():
        version = document.versions.get()
        document_services.version_set_status(version=version, status=IngestionStatus.READY)
        document_services.version_publish(version=version, actor=Actor(None))

    hannah = user_client(Membership.objects.across_tenants().get(username="hannah.hr"), "acme")
    sam = user_client(Membership.objects.across_tenants().get(username="sam.support"), "acme")
    assert "Parental leave" in titles(hannah) and "Parental leave" not in titles(sam)
    assert "Security incident response procedure" in titles(sam)
    assert "Security incident response procedure" not in titles(hannah)
    assert "Widget 3000 user manual" in titles(hannah) & titles(sam)
    assert titles(key_client(second["globex"])) == {"Globex travel policy", "Globex code of conduct"}
