"""Compliance review in the admin site: read-only, compliance role only, within their tenants."""

import pytest
from django.test import Client

from apps.audit.models import AuditRecord, Review
from apps.audit.services import review_add
from apps.corpus.models import Chunk

LIST = "/admin/audit/auditrecord/"


def staff(membership) -> Client:
    user = membership.user
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_compliance_staff_see_the_list_with_filters(library, records, auditor):
    client = staff(auditor)
    page = client.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Can I fly business class?" in html and "When are bonuses paid?" in html
    bob_only = client.get(LIST, {"username": "bob"}).content.decode()
    assert "When are bonuses paid?" in bob_only and "Can I fly business class?" not in bob_only
    by_document = client.get(LIST, {"document": library.salaries.pk}).content.decode()
    assert "When are bonuses paid?" in by_document and "how long must passwords be" not in by_document
    review_add(
        record=AuditRecord.objects.across_tenants().get(pk=records[0]),
        status="flagged",
        comment="",
        reviewer_id=None,
        reviewer_name="carol",
    )
    flagged = client.get(LIST, {"review": "flagged"}).content.decode()
    assert "how long must passwords be" in flagged and "When are bonuses paid?" not in flagged


@pytest.mark.django_db
def test_other_staff_do_not_see_the_trail(library, records):
    owner = staff(library.world.owner)
    assert owner.get(LIST).status_code == 403
    assert owner.get(f"{LIST}{records[0]}/change/").status_code in (302, 403, 404)


@pytest.mark.django_db
def test_the_trail_cannot_be_added_to_changed_or_deleted_from_the_admin(library, records, auditor):
    client = staff(auditor)
    assert client.get(f"{LIST}add/").status_code == 403
    assert client.post(f"{LIST}{records[0]}/delete/", {"post": "yes"}).status_code == 403
    client.post(LIST, {"action": "delete_selected", "_selected_action": records, "post": "yes"})
    assert AuditRecord.objects.across_tenants().count() == 4


@pytest.mark.django_db
def test_detail_page_shows_query_answer_and_exact_chunk_text_and_takes_a_review(library, records, auditor):
    client = staff(auditor)
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    html = client.get(f"{LIST}{record.pk}/change/").content.decode()
    assert record.query in html and "Business class is allowed" in html
    for chunk in record.chunks.all():
        assert Chunk.objects.across_tenants().get(pk=chunk.chunk_id).text.splitlines()[-1] in html
    response = client.post(f"{LIST}{record.pk}/change/", {"status": "flagged", "comment": "check the source"})
    assert response.status_code == 302
    review = Review.objects.across_tenants().get(record=record)
    assert (review.status, review.comment, review.reviewer_name) == ("flagged", "check the source", "carol")
    assert "check the source" in client.get(f"{LIST}{record.pk}/change/").content.decode()


@pytest.mark.django_db
def test_the_detail_page_replays_a_record_and_shows_what_differs(library, records, auditor):
    from tests.audit.test_tamper import _sql

    client = staff(auditor)
    record = AuditRecord.objects.across_tenants().get(pk=records[1])
    assert "Replay this record" in client.get(f"{LIST}{record.pk}/change/").content.decode()
    html = client.get(f"{LIST}{record.pk}/change/", {"replay": "1"}).content.decode()
    assert "Every text re-derived from the versions matches the record." in html and "DIFFERS" not in html
    chunk_id = record.chunks.filter(shown=True).first().chunk_id
    _sql("UPDATE corpus_chunk SET start_offset = start_offset + 1 WHERE id = %s", [chunk_id])
    html = client.get(f"{LIST}{record.pk}/change/", {"replay": "1"}).content.decode()
    assert "Some texts do not match what the record kept." in html and "DIFFERS" in html


def exported(response) -> list[dict]:
    import csv
    import io

    assert response.status_code == 200 and response["Content-Type"] == "text/csv", response
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


@pytest.mark.django_db
def test_the_export_holds_what_the_filtered_list_shows_and_nothing_else(library, records, auditor, globex):
    from apps.tenants import services as tenants
    from apps.tenants.models import Role

    client = staff(auditor)
    everything = exported(client.get(f"{LIST}export/"))
    assert sorted(int(row["id"]) for row in everything) == sorted(records)
    bob = exported(client.get(f"{LIST}export/", {"username": "bob"}))
    assert {row["query"] for row in bob} == {"When are bonuses paid?", "capital of France"}
    by_document = exported(client.get(f"{LIST}export/", {"document": library.salaries.pk}))
    touching = AuditRecord.objects.filter(tenant=library.world.tenant, chunks__document_id=library.salaries.pk)
    assert {row["query"] for row in by_document} == set(touching.values_list("query", flat=True))
    assert "When are bonuses paid?" in {row["query"] for row in by_document}
    assert "how long must passwords be" not in {row["query"] for row in by_document}
    assert "Export these records (CSV)" in client.get(LIST, {"username": "bob"}).content.decode()
    # A filter the list refuses is refused here too; another tenant's id names nothing.
    assert client.get(f"{LIST}export/", {"nonsense__field": "1"}).status_code == 302
    assert exported(client.get(f"{LIST}export/", {"tenant": globex.tenant.pk})) == []
    assert exported(client.get(f"{LIST}export/", {"tenant": "acme"})) == []  # an id, not a slug: was a 500
    assert client.get(LIST, {"tenant": "9" * 30}).status_code == 200
    # Other roles, and a compliance member of another tenant, export nothing of acme's.
    assert staff(library.world.owner).get(f"{LIST}export/").status_code == 403
    theirs = tenants.member_create(tenant=globex.tenant, username="gina", role=Role.COMPLIANCE)
    assert exported(staff(theirs).get(f"{LIST}export/")) == []
