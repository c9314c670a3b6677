"""The compliance team's REST view of the audit trail."""

import csv
import io
import json

import pytest

from apps.audit.models import AuditRecord
from apps.corpus.models import Chunk
from apps.tenants.models import Scope
from tests.conftest import key_client, user_client


@pytest.fixture
def compliance(library, auditor):
    return user_client(auditor, library.world.tenant.slug)


@pytest.mark.django_db
def test_only_the_compliance_role_or_an_audit_key_reads_the_trail(library, records, compliance):
    assert compliance.get("/api/v1/audit/records").status_code == 200
    for member in (library.world.owner, library.alice):
        response = library.client(member).get("/api/v1/audit/records")
        assert response.status_code == 403, member
    assert library.app(scopes=[Scope.SEARCH]).get("/api/v1/audit/records").status_code == 403
    assert library.app(scopes=[Scope.AUDIT_READ]).get("/api/v1/audit/records").json()["count"] == 4


@pytest.mark.django_db
def test_list_filters(library, records, compliance):
    def ids(**params):
        response = compliance.get("/api/v1/audit/records", params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert ids() == records[::-1]
    assert ids(user="bob") == records[:1:-1]
    assert ids(kind="ask") == [records[2], records[1]]
    assert ids(outcome="answered") == records[::-1] and ids(outcome="failed") == []
    # reverse look-up: which answers used a document (bob's two; alice may not read it) or a version
    assert ids(document=library.salaries.pk) == [records[3], records[2]]
    assert records[0] in ids(version=library.security.published_version_id)
    assert not {records[2], records[3]} & set(ids(version=library.security.published_version_id))
    from django.utils import timezone

    today = timezone.now().date().isoformat()
    assert ids(date_from=today, date_to=today) == records[::-1]
    assert ids(date_to="2000-01-01") == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params, field",
    [
        ({"date_from": "yesterday"}, "date_from"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "date_to"),
        ({"document": "x"}, "document"),
        ({"kind": "chat"}, "kind"),
        ({"review": "maybe"}, "review"),
        ({"usr": "bob"}, "usr"),
    ],
)
def test_bad_filters_are_400s(compliance, params, field):
    response = compliance.get("/api/v1/audit/records", params)
    assert response.status_code == 400 and field in response.json()["extra"]["fields"]


@pytest.mark.django_db
def test_detail_shows_each_chunks_exact_text_from_the_immutable_version(records, compliance):
    body = compliance.get(f"/api/v1/audit/records/{records[1]}").json()
    assert body["query"] == "Can I fly business class?" and body["answer"].endswith("]")
    assert body["chunks"]
    for chunk in body["chunks"]:
        row = Chunk.objects.across_tenants().get(pk=chunk["chunk_id"])
        assert chunk["text"] == row.text and chunk["text_matches"] is True
        assert (chunk["start_offset"], chunk["end_offset"]) == (row.start_offset, row.end_offset)
    assert any(c["cited"] for c in body["chunks"])


@pytest.mark.django_db
def test_review_is_kept_apart_and_the_record_never_changes(library, records, compliance):
    before = AuditRecord.objects.across_tenants().get(pk=records[2]).record_hash
    response = compliance.post(
        f"/api/v1/audit/records/{records[2]}/reviews", {"status": "flagged", "comment": "salary data"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["review_status"] == "flagged"
    assert response.json()["reviews"][0] == {
        **response.json()["reviews"][0],
        "status": "flagged",
        "comment": "salary data",
        "reviewer_name": "carol",
    }
    compliance.post(f"/api/v1/audit/records/{records[0]}/reviews", {"status": "reviewed"}, format="json")
    assert [r["id"] for r in compliance.get("/api/v1/audit/records", {"review": "flagged"}).json()["results"]] == [
        records[2]
    ]
    assert len(compliance.get("/api/v1/audit/records", {"review": "unreviewed"}).json()["results"]) == 2
    assert AuditRecord.objects.across_tenants().get(pk=records[2]).record_hash == before
    bad = compliance.post(f"/api/v1/audit/records/{records[2]}/reviews", {"status": "fine"}, format="json")
    assert bad.status_code == 400 and "status" in bad.json()["extra"]["fields"]
    reader = library.client(library.alice).post(
        f"/api/v1/audit/records/{records[2]}/reviews", {"status": "reviewed"}, format="json"
    )
    assert reader.status_code == 403


@pytest.mark.django_db
def test_another_tenants_records_are_not_found(library, records, globex):
    other = key_client(globex.key(scopes=[Scope.AUDIT_READ]))
    assert other.get(f"/api/v1/audit/records/{records[0]}").status_code == 404
    assert (
        other.post(f"/api/v1/audit/records/{records[0]}/reviews", {"status": "flagged"}, format="json").status_code
        == 404
    )
    assert other.get("/api/v1/audit/records").json()["count"] == 0
    assert other.get("/api/v1/audit/export").getvalue() == b""


@pytest.mark.django_db
def test_export_as_json_lines_and_csv_with_filters(library, records, compliance):
    response = compliance.get("/api/v1/audit/export", {"user": "alice"})
    assert response["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.getvalue().decode().splitlines()]
    assert [line["id"] for line in lines] == [records[1], records[0]]
    assert lines[0]["chunks"] and {"chunk_id", "document_id", "version_id", "text_sha256", "scores"} <= set(
        lines[0]["chunks"][0]
    )
    response = compliance.get("/api/v1/audit/export", {"output": "csv", "document": library.salaries.pk})
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.getvalue().decode())))
    assert [int(r["id"]) for r in rows] == [records[3], records[2]]
    assert json.loads(rows[1]["citations"])[0]["document_id"] == library.salaries.pk


@pytest.mark.django_db
def test_export_command(library, records, tmp_path):
    from django.core.management import call_command

    target = tmp_path / "audit.csv"
    call_command("audit_export", "--tenant", "acme", "--output", "csv", "--user", "bob", "--file", str(target))
    rows = list(csv.DictReader(target.open()))
    assert sorted(int(r["id"]) for r in rows) == records[2:]
