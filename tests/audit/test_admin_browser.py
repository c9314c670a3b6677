"""The compliance review pages in a real browser (headless Chromium via Playwright): log in as a
compliance reviewer, filter the list, open a record, read the chunks' exact text, flag it, replay it.
Screenshots go to test-artifacts/."""

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

    page.goto(f"{live_server.url}/admin/login/?next=/admin/audit/auditrecord/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", "browser-test-password")
    page.click("input[type=submit]")
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
