"""Replaying a past answer: every text rebuilt from the immutable versions, every hash checked, and
what would differ now — a version published since, access revoked since, a record altered."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from apps.audit.models import AuditRecord
from apps.documents import services as documents
from apps.documents.services import Actor
from tests.audit.test_tamper import _sql


def _ask(library, who, query="Can I fly business class?") -> AuditRecord:
    body = library.client(who).post("/api/v1/ask", {"query": query}, format="json").json()
    return AuditRecord.objects.across_tenants().get(pk=body["audit_id"])


@pytest.mark.django_db
def test_an_untouched_answer_replays_with_every_hash_matching(library, auditor):
    record = _ask(library, library.alice)
    assert record.outcome == "answered" and record.citations
    replay = library.client(auditor).get(f"/api/v1/audit/records/{record.pk}/replay").json()
    assert replay["record_intact"] and replay["hashes_match"] and replay["now"] == []
    assert {c["chunk_id"] for c in replay["chunks"]} == set(record.chunks.values_list("chunk_id", flat=True))
    for chunk in replay["chunks"]:
        assert chunk["text"] and chunk["text_matches"] and chunk["served_matches"] and chunk["now"] == []
    assert replay["context"] and all(p["text_matches"] for p in replay["context"])
    assert replay["citations"] and all(c["quote_matches"] for c in replay["citations"])


@pytest.mark.django_db
def test_replay_says_what_changed_since(library, auditor, django_capture_on_commit_callbacks):
    record = _ask(library, library.alice)
    travel_chunks = [c for c in record.chunks.all() if c.document_id == library.travel.pk]
    assert travel_chunks
    with django_capture_on_commit_callbacks(execute=True):  # a new travel policy, published
        documents.version_upload(
            document=library.travel,
            actor=Actor(user=None),
            publish_when_ready=True,
            file=SimpleUploadedFile("travel.md", b"# Travel\n\nEconomy class only, always.\n"),
        )
    with django_capture_on_commit_callbacks(execute=True):  # alice's group loses the handbook
        documents.grants_replace(obj=library.travel.collection, grants=[], actor=Actor(user=None))
    replay = library.client(auditor).get(f"/api/v1/audit/records/{record.pk}/replay").json()
    assert replay["hashes_match"], "the old version's texts still rebuild exactly"
    for chunk in (c for c in replay["chunks"] if c["document_id"] == library.travel.pk):
        assert any("now serves version 2" in note for note in chunk["now"])
        assert any("access revoked since" in note for note in chunk["now"])


@pytest.mark.django_db
def test_an_altered_record_or_a_tampered_chunk_row_fails_the_replay(library, auditor, capsys):
    record = _ask(library, library.alice)
    call_command("audit_replay", str(record.pk), "--tenant", "acme")
    assert "record intact, texts all match" in capsys.readouterr().out
    # The chunk row's offsets are moved: the text re-derived from the file no longer hashes right.
    chunk_id = record.chunks.filter(shown=True).first().chunk_id
    _sql("UPDATE corpus_chunk SET start_offset = start_offset + 1 WHERE id = %s", [chunk_id])
    with pytest.raises(CommandError):
        call_command("audit_replay", str(record.pk), "--tenant", "acme")
    _sql("UPDATE audit_auditrecord SET answer = %s WHERE id = %s", ["Everyone flies first class.", record.pk])
    replay = library.client(auditor).get(f"/api/v1/audit/records/{record.pk}/replay").json()
    assert replay["record_intact"] is False and replay["hashes_match"] is False


@pytest.mark.django_db
def test_replay_is_for_the_compliance_team_of_the_records_tenant(library, auditor, globex):
    record = _ask(library, library.alice)
    assert library.client(library.world.owner).get(f"/api/v1/audit/records/{record.pk}/replay").status_code == 403
    from apps.tenants import services as tenants
    from apps.tenants.models import Role
    from tests.conftest import user_client

    other = tenants.member_create(tenant=globex.tenant, username="carol", role=Role.COMPLIANCE)
    assert user_client(other, "globex").get(f"/api/v1/audit/records/{record.pk}/replay").status_code == 404
    with pytest.raises(CommandError):
        call_command("audit_replay", str(record.pk), "--tenant", "globex")
