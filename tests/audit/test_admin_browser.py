"""The compliance review pages in a real browser (headless Chromium via Playwright): log in as a
compliance reviewer, filter the list (by person, by review, by document), open a record, read the
chunks' exact text, flag it, replay it, export what the list shows; staff of another role are
refused. Screenshots go to test-artifacts/."""

import csv

import pytest

from apps.audit.models import Review
from tests.documents.test_admin_browser import browser_page, shot  # noqa: F401


@pytest.mark.django_db(transaction=True)
def test_compliance_reviewer_flags_an_answer(browser_page, live_server, library, records, auditor):
    page = browser_page
    user = auditor.user
    user.is_staff = True
    user.set_password("browser-test-password")
    user.save()

    log_in(page, live_server, user)
    assert "When are bonuses paid?" in page.inner_text("#result_list")

    page.click("#changelist-filter >> text=bob")
    rows = page.inner_text("#result_list")
    assert "When are bonuses paid?" in rows and "business class" not in rows
    shot(page, "audit-review-list")

    page.click("#result_list >> text=When are bonuses paid?")
    assert "Annual bonuses are paid every March." in page.inner_text(".audit-answer")
    assert "Salary bands for engineers" in page.inner_text(".audit-chunks")
    page.check("input[value=flagged]")
    page.fill("textarea[name=comment]", "Salary data: confirm bob may read it.")
    page.click(".audit-review-form input[type=submit]")
    assert "marked flagged" in page.inner_text(".messagelist")
    assert "flagged" in page.inner_text(".audit-review-status")
    shot(page, "audit-review-detail")
    review = Review.objects.across_tenants().get()
    assert review.record_id == records[2] and review.status == "flagged"

    page.click(".audit-replay-link")
    assert "Every text re-derived from the versions matches the record." in page.inner_text(".audit-replay-verdict")
    assert "DIFFERS" not in page.inner_text(".audit-replay-chunks")
    shot(page, "audit-replay")

    # Back to the list: what is flagged, what nobody has reviewed yet, what touched a document.
    page.goto(f"{live_server.url}/admin/audit/auditrecord/")
    page.click("#changelist-filter >> text=Flagged")
    assert rows_of(page) == ["When are bonuses paid?"]
    page.goto(f"{live_server.url}/admin/audit/auditrecord/")
    page.click("#changelist-filter >> text=Not reviewed")
    assert "When are bonuses paid?" not in rows_of(page) and "Can I fly business class?" in rows_of(page)
    page.goto(f"{live_server.url}/admin/audit/auditrecord/")
    page.click("#changelist-filter >> text=Salary bands")
    by_document = rows_of(page)
    assert "When are bonuses paid?" in by_document and "how long must passwords be" not in by_document
    shot(page, "audit-review-by-document")

    # The export holds exactly the records the filtered list shows.
    with page.expect_download() as download:
        page.click(".audit-export-link")
    with open(download.value.path(), newline="") as exported:
        assert sorted(row["query"] for row in csv.DictReader(exported)) == sorted(by_document)


@pytest.mark.django_db(transaction=True)
def test_staff_of_another_role_are_refused_the_trail(browser_page, live_server, library, records):
    owner = library.world.owner.user
    owner.is_staff = True
    owner.set_password("browser-test-password")
    owner.save()
    log_in(browser_page, live_server, owner)
    assert "403" in browser_page.title() or "Forbidden" in browser_page.inner_text("body")
    assert "When are bonuses paid?" not in browser_page.content()
    shot(browser_page, "audit-refused-to-an-owner")


def log_in(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/audit/auditrecord/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", "browser-test-password")
    page.click("input[type=submit]")


def rows_of(page) -> list[str]:
    """The queries of the listed records (the list's query column)."""
    return [cell.strip() for cell in page.locator("#result_list td.field-short_query").all_inner_texts()]
