"""apps/documents/rules.py decides each endpoint's level (api.py passes the action and the fields
it was sent). Every endpoint needs at least what it needed when the views chose levels:

    PATCH document            change; manage with retention_until/legal_hold present (any value)
    POST documents            change on the collection; manage with retention fields or a true
                              publish_when_ready
    POST versions             change; manage with a true publish_when_ready
    history                   change
    grants GET/PUT/DELETE     manage
    publish, rollback, lifecycle  manage
    readers (view)            the published version only: list, detail and content

and rollback to a version of another document is a 400 `version_of_another_document` that
changes nothing (the API's own check went; the service's is the only one left)."""

from __future__ import annotations

import pytest

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.documents import services
from apps.documents.models import Document, DocumentEvent, DocumentVersion, IngestionStatus
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import Role
from tests.conftest import user_client
from tests.documents.conftest import POLICY_V2, text_file

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(acme):
    actor = Actor(None)
    tenant = acme.tenant
    viewer = tenant_services.member_create(tenant=tenant, username="viewer", role=Role.READER)
    changer = tenant_services.member_create(tenant=tenant, username="changer", role=Role.READER)
    manager = tenant_services.member_create(tenant=tenant, username="manager", role=Role.READER)
    collection = services.collection_create(tenant=tenant, name="c")
    services.grants_replace(
        obj=collection,
        grants=[Grant(viewer.user, Level.VIEW), Grant(changer.user, Level.CHANGE), Grant(manager.user, Level.MANAGE)],
        actor=actor,
    )
    document = services.document_create(tenant=tenant, collection=collection, title="d", actor=actor, file=text_file())
    v1 = document.versions.get(number=1)
    services.version_set_status(version=v1, status=IngestionStatus.READY)
    document = services.version_publish(version=v1, actor=actor)
    v2 = services.version_upload(document=document, file=text_file(POLICY_V2), actor=actor)  # a draft version
    other = services.document_create(tenant=tenant, collection=collection, title="other", actor=actor, file=text_file())
    return {
        "viewer": user_client(viewer, tenant.slug),
        "changer": user_client(changer, tenant.slug),
        "manager": user_client(manager, tenant.slug),
        "owner": user_client(acme.owner, tenant.slug),
        "collection": collection,
        "document": document,
        "v1": v1,
        "v2": v2,
        "other": other,
    }


def _status(response):
    return response.status_code


@pytest.mark.parametrize(
    ("body", "changer_ok"),
    [
        ({"title": "x"}, True),
        ({"legal_hold": False}, False),
        ({"legal_hold": True}, False),
        ({"retention_until": None}, False),
        ({"retention_until": "2030-01-01"}, False),
        ({"title": "x", "legal_hold": False}, False),
        ({"publish_when_ready": True, "title": "y"}, True),  # not a field of PATCH: ignored as before
    ],
)
def test_patch_levels(world, body, changer_ok):
    url = f"/api/v1/documents/{world['document'].pk}"
    response = world["changer"].patch(url, body, format="json")
    if changer_ok:
        assert _status(response) == 200, response.content
    else:
        assert _status(response) == 403, response.content
        assert response.json()["extra"]["required_level"] == "manage"
    assert _status(world["viewer"].patch(url, {"title": "z"}, format="json")) == 403


@pytest.mark.parametrize(
    ("extra", "changer_ok"),
    [
        ({}, True),
        ({"publish_when_ready": False}, True),
        ({"publish_when_ready": "false"}, True),
        ({"publish_when_ready": True}, False),
        ({"publish_when_ready": "true"}, False),
        ({"publish_when_ready": "1"}, False),
        ({"legal_hold": False}, False),
        ({"retention_until": None}, False),
    ],
)
def test_create_levels(world, extra, changer_ok):
    # JSON: in multipart, DRF fills an absent BooleanField with False (checkbox semantics), so
    # every multipart create "sends" legal_hold (see test_multipart_sends_legal_hold_false).
    body = {"collection": world["collection"].pk, "title": "new", **extra}
    response = world["changer"].post("/api/v1/documents", body, format="json")
    if changer_ok:
        assert _status(response) == 201, response.content
    else:
        assert _status(response) in (400, 403), response.content
        assert not Document.objects.across_tenants().filter(title="new").exists()
    assert (
        _status(
            world["viewer"].post(
                "/api/v1/documents", {"collection": world["collection"].pk, "title": "v"}, format="json"
            )
        )
        == 403
    )


@pytest.mark.parametrize(
    ("extra", "changer_ok"),
    [
        ({}, True),
        ({"publish_when_ready": "false"}, True),
        ({"publish_when_ready": "true"}, False),
        ({"publish_when_ready": "True"}, False),
        ({"publish_when_ready": "on"}, False),
    ],
)
def test_upload_levels(world, extra, changer_ok):
    url = f"/api/v1/documents/{world['document'].pk}/versions"
    before = DocumentVersion.objects.across_tenants().filter(document=world["document"]).count()
    response = world["changer"].post(url, {"file": text_file(b"# v3\n"), **extra}, format="multipart")
    if changer_ok:
        assert _status(response) == 201, response.content
        assert response.json()["publish_when_ready"] is False
    else:
        assert _status(response) == 403, response.content
        assert DocumentVersion.objects.across_tenants().filter(document=world["document"]).count() == before
    assert _status(world["viewer"].post(url, {"file": text_file(b"# v4\n")}, format="multipart")) == 403


def test_history_grants_and_lifecycle_levels(world):
    d = world["document"].pk
    c = world["collection"].pk
    assert _status(world["viewer"].get(f"/api/v1/documents/{d}/history")) == 403
    assert _status(world["changer"].get(f"/api/v1/documents/{d}/history")) == 200
    for who in ("viewer", "changer"):
        client = world[who]
        assert _status(client.get(f"/api/v1/documents/{d}/grants")) == 403
        assert _status(client.put(f"/api/v1/documents/{d}/grants", {"grants": []}, format="json")) == 403
        assert _status(client.delete(f"/api/v1/documents/{d}/grants")) == 403
        assert _status(client.get(f"/api/v1/collections/{c}/grants")) == 403
        assert _status(client.put(f"/api/v1/collections/{c}/grants", {"grants": []}, format="json")) == 403
        assert _status(client.delete(f"/api/v1/collections/{c}")) == 403
        for action in ("archive", "unarchive", "purge"):
            assert _status(client.post(f"/api/v1/documents/{d}/{action}", {}, format="json")) == 403, action
        assert _status(client.post(f"/api/v1/documents/{d}/versions/2/publish", {}, format="json")) == 403
        assert (
            _status(client.post(f"/api/v1/documents/{d}/rollback", {"version_id": world["v1"].pk}, format="json"))
            == 403
        )
        assert _status(client.delete(f"/api/v1/documents/{d}", {}, format="json")) == 403
    assert Document.objects.across_tenants().get(pk=d).has_own_grants is False
    assert _status(world["manager"].get(f"/api/v1/documents/{d}/grants")) == 200


def test_readers_never_see_the_draft_version(world):
    d = world["document"].pk
    viewer = world["viewer"]
    listed = viewer.get(f"/api/v1/documents/{d}/versions").json()
    numbers = [v["number"] for v in listed.get("results", listed)]
    assert numbers == [1]
    assert _status(viewer.get(f"/api/v1/documents/{d}/versions/2")) == 404
    assert _status(viewer.get(f"/api/v1/documents/{d}/versions/2/content")) == 404
    assert _status(viewer.get(f"/api/v1/documents/{d}/versions/1")) == 200
    # a draft document is not the viewer's at all
    assert _status(viewer.get(f"/api/v1/documents/{world['other'].pk}")) == 404
    assert _status(viewer.get(f"/api/v1/documents/{world['other'].pk}/versions/1/content")) == 404
    changer_list = world["changer"].get(f"/api/v1/documents/{d}/versions").json()
    assert [v["number"] for v in changer_list.get("results", changer_list)] == [2, 1]


def test_rollback_to_a_version_of_another_document_is_refused_and_changes_nothing(world):
    d = world["document"]
    other_version = world["other"].versions.get(number=1)
    services.version_set_status(version=other_version, status=IngestionStatus.READY)
    events = DocumentEvent.objects.across_tenants().filter(document=d).count()
    other_events = DocumentEvent.objects.across_tenants().filter(document=world["other"]).count()
    for who in ("owner", "manager"):
        response = world[who].post(
            f"/api/v1/documents/{d.pk}/rollback", {"version_id": other_version.pk, "reason": "x"}, format="json"
        )
        assert _status(response) == 400, response.content
        assert response.json()["code"] == "version_of_another_document"
    after = Document.objects.across_tenants().get(pk=d.pk)
    assert after.published_version_id == world["v1"].pk
    assert after.state == d.state
    assert DocumentEvent.objects.across_tenants().filter(document=d).count() == events
    assert DocumentEvent.objects.across_tenants().filter(document=world["other"]).count() == other_events
    assert Document.objects.across_tenants().get(pk=world["other"].pk).published_version_id is None


def test_multipart_create_and_patch_send_legal_hold_false(world, acme):
    """A multipart/form-data body leaves out what it does not send, and DRF reads an absent checkbox
    as false and an absent list as empty. Absent fields must stay absent: a form PATCH of the title
    must not lift a legal hold or clear the tags, and a `change` grantee may create a document with
    a file (an absent legal_hold does not ask for `manage`)."""
    document = world["document"]
    services.document_update(document=document, actor=Actor(acme.owner.user), legal_hold=True, tags=["keep"])
    response = world["owner"].patch(f"/api/v1/documents/{document.pk}", {"title": "renamed"}, format="multipart")
    assert response.status_code == 200, response.content
    after = Document.objects.across_tenants().get(pk=document.pk)
    assert after.legal_hold is True, "a form PATCH of the title lifted the legal hold"
    assert after.tags == ["keep"], "a form PATCH of the title cleared the tags"
