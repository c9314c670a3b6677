"""Every lifecycle transition through the API, and every bad input: a clear 4xx JSON error, nothing
lost, the published version untouched."""

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from apps.documents.models import Document, DocumentVersion
from tests.conftest import key_client
from tests.documents.conftest import POLICY_V1, POLICY_V2, make_ready, text_file


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["message"], body
    return body


def upload(client, document_id: int, content: bytes, name: str = "travel-policy.md"):
    return client.post(
        f"/api/v1/documents/{document_id}/versions", {"file": text_file(content, name)}, format="multipart"
    )


def published_number(client, document_id: int):
    version = client.get(f"/api/v1/documents/{document_id}").json()["published_version"]
    return version and version["number"]


@pytest.mark.django_db
class TestLifecycle:
    def test_a_new_document_is_a_draft_with_a_pending_first_version(self, writer, document):
        assert document["state"] == "draft" and document["published_version"] is None
        versions = writer.get(f"/api/v1/documents/{document['id']}/versions").json()["results"]
        assert len(versions) == 1
        v1 = versions[0]
        assert (v1["number"], v1["status"], v1["media_type"], v1["size"]) == (
            1,
            "pending",
            "text/markdown",
            len(POLICY_V1),
        )
        import hashlib

        assert v1["sha256"] == hashlib.sha256(POLICY_V1).hexdigest()

    def test_publish_upload_publish_rollback(self, writer, document):
        doc = document["id"]
        make_ready(doc, 1)
        published = writer.post(f"/api/v1/documents/{doc}/versions/1/publish", {"reason": "approved"}, format="json")
        assert published.status_code == 200 and published.json()["state"] == "published"
        assert published_number(writer, doc) == 1

        assert upload(writer, doc, POLICY_V2).status_code == 201
        assert published_number(writer, doc) == 1  # the published version keeps serving meanwhile
        make_ready(doc, 2)
        writer.post(f"/api/v1/documents/{doc}/versions/2/publish")
        assert published_number(writer, doc) == 2

        v1_id = DocumentVersion.objects.across_tenants().get(document_id=doc, number=1).pk
        rolled = writer.post(
            f"/api/v1/documents/{doc}/rollback", {"version_id": v1_id, "reason": "v2 was wrong"}, format="json"
        )
        assert rolled.status_code == 200 and rolled.json()["published_version"]["number"] == 1
        history = writer.get(f"/api/v1/documents/{doc}/history").json()["results"]
        assert [e["action"] for e in history][:4] == ["rolled_back", "published", "version_uploaded", "published"]
        assert history[0]["reason"] == "v2 was wrong" and history[0]["actor"].startswith("api-key:")
        assert history[0]["details"] == {"number": 1, "previous": 2}

    def test_the_file_of_a_version_downloads_as_uploaded(self, writer, document):
        response = writer.get(f"/api/v1/documents/{document['id']}/versions/1/content")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == POLICY_V1
        assert 'filename="travel-policy.md"' in response["Content-Disposition"]

    def test_archive_unarchive(self, writer, document):
        doc = document["id"]
        make_ready(doc, 1)
        writer.post(f"/api/v1/documents/{doc}/versions/1/publish")
        assert (
            writer.post(f"/api/v1/documents/{doc}/archive", {"reason": "superseded"}, format="json").json()["state"]
            == "archived"
        )
        error(writer.post(f"/api/v1/documents/{doc}/archive"), 409, "already_archived")
        assert writer.post(f"/api/v1/documents/{doc}/unarchive").json()["state"] == "published"
        assert published_number(writer, doc) == 1

    def test_soft_delete_then_purge_leaves_a_tombstone(self, writer, document, django_capture_on_commit_callbacks):
        doc = document["id"]
        stored = DocumentVersion.objects.across_tenants().get(document_id=doc, number=1).file.name
        assert default_storage.exists(stored)
        assert (
            writer.delete(f"/api/v1/documents/{doc}", {"reason": "obsolete"}, format="json").json()["state"]
            == "deleted"
        )
        error(upload(writer, doc, POLICY_V2), 409, "document_deleted")

        # A purge whose transaction fails keeps the files: they go only once the purge is committed.
        from django.db import transaction

        from apps.documents import services
        from apps.tenants.actors import Actor

        with pytest.raises(RuntimeError), transaction.atomic():
            services.document_purge(document=Document.objects.across_tenants().get(pk=doc), actor=Actor(None))
            raise RuntimeError("the transaction fails after the purge")
        assert default_storage.exists(stored)
        assert Document.objects.across_tenants().get(pk=doc).purged_at is None

        with django_capture_on_commit_callbacks(execute=True):
            purged = writer.post(f"/api/v1/documents/{doc}/purge", {"reason": "retention over"}, format="json")
        assert purged.status_code == 200 and purged.json()["purged_at"]
        assert not default_storage.exists(stored)
        v1 = writer.get(f"/api/v1/documents/{doc}/versions/1").json()
        assert v1["purged_at"] and len(v1["sha256"]) == 64  # the tombstone still says what it was
        error(writer.get(f"/api/v1/documents/{doc}/versions/1/content"), 404, "version_purged")
        error(writer.post(f"/api/v1/documents/{doc}/purge"), 409, "already_purged")

    def test_metadata_update_is_recorded(self, writer, document):
        doc = document["id"]
        response = writer.patch(
            f"/api/v1/documents/{doc}", {"title": "Travel & expenses", "tags": ["travel", "money"]}, format="json"
        )
        assert response.status_code == 200 and response.json()["tags"] == ["travel", "money"]
        event = writer.get(f"/api/v1/documents/{doc}/history").json()["results"][0]
        assert event["action"] == "metadata_changed" and "title" in event["details"]["changes"]

    def test_filters(self, writer, collection, document):
        other = writer.post(
            "/api/v1/documents",
            {"collection": collection["id"], "title": "Security handbook", "category": "security", "tags": ["it"]},
            format="json",
        ).json()
        assert [d["id"] for d in writer.get("/api/v1/documents?category=security").json()["results"]] == [other["id"]]
        assert [d["id"] for d in writer.get("/api/v1/documents?tag=it").json()["results"]] == [other["id"]]
        assert [d["id"] for d in writer.get("/api/v1/documents?q=travel").json()["results"]] == [document["id"]]
        assert writer.get("/api/v1/documents?state=published").json()["count"] == 0
        error(writer.get("/api/v1/documents?state=flying"), 400, "invalid")


@pytest.mark.django_db
class TestBadInput:
    def test_identical_content_is_reported_not_duplicated(self, writer, document):
        body = error(upload(writer, document["id"], POLICY_V1), 409, "duplicate_content")
        assert body["extra"]["version"] == 1
        assert writer.get(f"/api/v1/documents/{document['id']}/versions").json()["count"] == 1

    @override_settings(DOCUMENT_MAX_UPLOAD_BYTES=64)
    def test_over_the_size_limit(self, writer, document):
        body = error(upload(writer, document["id"], b"x" * 65 + b"\n", "big.txt"), 413, "payload_too_large")
        assert body["extra"] == {"size": 66, "limit": 64}
        assert writer.get(f"/api/v1/documents/{document['id']}/versions").json()["count"] == 1

    @pytest.mark.parametrize(
        "content, name",
        [
            (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "picture.txt"),  # the extension lies
            (b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "policy.pdf"),
            (b"PK\x03\x04" + b"\x00" * 64, "policy.docx"),  # a zip, but not a Word document
        ],
    )
    def test_unsupported_media_type_detected_from_content(self, writer, document, content, name):
        body = error(upload(writer, document["id"], content, name), 415, "unsupported_media_type")
        assert "supported" in body["extra"]

    def test_empty_file(self, writer, document):
        error(upload(writer, document["id"], b"", "empty.txt"), 400, "invalid")

    def test_path_tricks_in_file_names_never_reach_the_storage(self, writer, document, settings):
        response = upload(writer, document["id"], POLICY_V2, "../../../etc/cron.d/policy.md")
        assert response.status_code == 201
        assert response.json()["original_filename"] == "policy.md"
        stored = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=2).file
        assert stored.path.startswith(str(settings.MEDIA_ROOT)) and ".." not in stored.name

    def test_publishing_a_version_that_is_not_ready(self, writer, document):
        body = error(writer.post(f"/api/v1/documents/{document['id']}/versions/1/publish"), 409, "version_not_ready")
        assert body["extra"]["status"] == "pending"
        assert writer.get(f"/api/v1/documents/{document['id']}").json()["state"] == "draft"

    def test_publishing_a_version_that_does_not_exist(self, writer, document):
        error(writer.post(f"/api/v1/documents/{document['id']}/versions/9/publish"), 404, "version_not_found")

    def test_rolling_back_to_another_documents_version(self, writer, collection, document):
        make_ready(document["id"], 1)
        writer.post(f"/api/v1/documents/{document['id']}/versions/1/publish")
        other = writer.post(
            "/api/v1/documents",
            {"collection": collection["id"], "title": "Other", "file": text_file(POLICY_V2)},
            format="multipart",
        ).json()
        other_version = DocumentVersion.objects.across_tenants().get(document_id=other["id"]).pk
        error(
            writer.post(f"/api/v1/documents/{document['id']}/rollback", {"version_id": other_version}, format="json"),
            400,
            "version_of_another_document",
        )
        assert published_number(writer, document["id"]) == 1

    def test_rolling_back_to_another_tenants_version(self, writer, document, globex):
        from apps.documents import services
        from apps.tenants.actors import Actor

        theirs = services.collection_create(tenant=globex.tenant, name="Theirs")
        their_doc = services.document_create(
            tenant=globex.tenant, collection=theirs, title="Secret", actor=Actor(None), file=text_file(POLICY_V2)
        )
        error(
            writer.post(
                f"/api/v1/documents/{document['id']}/rollback",
                {"version_id": their_doc.versions.get().pk},
                format="json",
            ),
            404,
            "version_not_found",
        )

    def test_purging_under_legal_hold_or_retention(self, writer, document, acme):
        from apps.tenants.models import Scope

        doc = document["id"]
        # documents:write alone does not set a hold: that takes documents:retention (the compliance team's)
        compliance = key_client(
            acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.DOCUMENTS_RETENTION])
        )
        error(writer.post(f"/api/v1/documents/{doc}/purge"), 409, "not_deleted")
        writer.delete(f"/api/v1/documents/{doc}")
        error(writer.patch(f"/api/v1/documents/{doc}", {"title": "x"}, format="json"), 409, "document_deleted")
        # while deleted, what decides the purge can still change: the hold is set in time
        error(
            writer.patch(f"/api/v1/documents/{doc}", {"legal_hold": True}, format="json"), 403, "retention_not_allowed"
        )
        assert compliance.patch(f"/api/v1/documents/{doc}", {"legal_hold": True}, format="json").status_code == 200
        error(writer.post(f"/api/v1/documents/{doc}/purge"), 409, "legal_hold")
        compliance.patch(
            f"/api/v1/documents/{doc}", {"legal_hold": False, "retention_until": "2999-01-01"}, format="json"
        )
        body = error(writer.post(f"/api/v1/documents/{doc}/purge"), 409, "retention_period")
        assert body["extra"]["retention_until"] == "2999-01-01"
        assert writer.get(f"/api/v1/documents/{doc}/versions/1/content").status_code == 200

    def test_a_collection_with_documents_cannot_be_deleted(self, writer, collection, document):
        error(writer.delete(f"/api/v1/collections/{collection['id']}"), 409, "collection_not_empty")
        writer.delete(f"/api/v1/documents/{document['id']}")
        writer.post(f"/api/v1/documents/{document['id']}/purge")
        error(writer.delete(f"/api/v1/collections/{collection['id']}"), 409, "collection_holds_tombstones")

    def test_a_collection_sets_its_chunking_at_creation(self, writer):
        created = writer.post(
            "/api/v1/collections", {"name": "Papers", "chunk_size": 254, "chunk_overlap": 0}, format="json"
        ).json()
        assert (created["chunk_size"], created["chunk_overlap"], created["chunk_strategy"]) == (254, 0, "tokens")
        response = writer.post("/api/v1/collections", {"name": "Huge", "chunk_size": 512}, format="json")
        assert response.status_code == 400 and "chunk_size" in response.json()["extra"]["fields"]

    def test_an_empty_collection_can_be_deleted(self, writer):
        created = writer.post("/api/v1/collections", {"name": "Scratch"}, format="json").json()
        assert writer.delete(f"/api/v1/collections/{created['id']}").status_code == 204

    def test_an_archived_document_is_unarchived_before_publishing(self, writer, document):
        doc = document["id"]
        make_ready(doc, 1)
        writer.post(f"/api/v1/documents/{doc}/archive")
        error(writer.post(f"/api/v1/documents/{doc}/versions/1/publish"), 409, "document_archived")
        assert writer.get(f"/api/v1/documents/{doc}").json()["state"] == "archived"

    def test_huge_ids_are_a_clear_400(self, writer, document):
        error(writer.get(f"/api/v1/documents?collection={2**70}"), 400, "invalid")
        error(
            writer.post(f"/api/v1/documents/{document['id']}/rollback", {"version_id": 2**70}, format="json"),
            400,
            "invalid",
        )

    def test_stored_names_are_generated_never_taken_from_the_upload(self, writer, document):
        import re

        stored = DocumentVersion.objects.across_tenants().get(document_id=document["id"], number=1).file.name
        assert re.fullmatch(r"documents/\d+/\d+/v1-[0-9a-f]{16}(_\w+)?", stored), stored

    def test_a_document_in_another_tenants_collection(self, globex, document):
        their_writer = key_client(globex.key())
        error(their_writer.get(f"/api/v1/documents/{document['id']}"), 404, "document_not_found")
        response = their_writer.post(
            "/api/v1/documents", {"collection": document["collection"], "title": "x"}, format="json"
        )
        error(response, 404, "collection_not_found")

    def test_a_version_object_cannot_be_changed_or_deleted(self, document):
        version = DocumentVersion.objects.across_tenants().get(document_id=document["id"])
        version.sha256 = "0" * 64
        with pytest.raises(ValueError, match="immutable"):
            version.save()
        with pytest.raises(ValueError):
            version.delete()
