"""The admin's document lifecycle in a real browser: headless Chromium (Debian's package) driven by
Playwright. Log in, upload a version, publish it, roll it back; screenshots go to test-artifacts/.

Ingestion is not part of this test: between upload and publish the test marks the new version
ready through the same service the ingestion pipeline reports to."""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from apps.documents import services
from apps.documents.models import Document
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from tests.conftest import IN_CI
from tests.documents.conftest import POLICY_V2, make_ready, text_file

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not shutil.which(CHROMIUM):
        message = "needs playwright (pip) and chromium (apt): bin/test installs both"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself
    # are still synchronous, one at a time.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        yield page
        browser.close()
        # Playwright's greenlets give the test body its own context, so Django opened a separate
        # connection for the ORM calls made there; close it, or the test database cannot be dropped.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_log_in_upload_publish_roll_back(browser_page, live_server, tmp_path):
    page = browser_page
    tenant = tenant_services.tenant_create(slug="acme", name="Acme")
    get_user_model().objects.create_superuser("admin", password="browser-test-password")
    collection = services.collection_create(tenant=tenant, name="Policies")
    document = services.document_create(
        tenant=tenant, collection=collection, title="Travel policy", actor=Actor(None), file=text_file()
    )
    make_ready(document.pk, 1)
    services.version_publish(version=document.versions.get(number=1), actor=Actor(None))

    page.goto(f"{live_server.url}/admin/login/?next=/admin/documents/document/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "browser-test-password")
    page.click("input[type=submit]")
    page.click("text=Travel policy")

    page.click("text=Upload a new version")
    new_version = tmp_path / "travel-policy.md"
    new_version.write_bytes(POLICY_V2)
    page.set_input_files("#id_file", str(new_version))
    page.fill("#id_change_note", "flights under eight hours")
    page.click("#upload-form input[type=submit]")
    assert "Uploaded version 2" in page.inner_text(".messagelist")

    make_ready(document.pk, 2)  # what ingestion reports when it is done
    page.reload()
    page.click("a.button:has-text('Publish')")
    assert "Publish version 2" in page.inner_text("h1")
    page.fill("#id_reason", "approved by HR")
    page.click("#confirm-form input[type=submit]")
    assert "Publish version 2 of “Travel policy”: done." in page.inner_text(".messagelist")
    assert Document.objects.across_tenants().get(pk=document.pk).published_version.number == 2

    page.click("a.button:has-text('Roll back to this version')")
    page.fill("#id_reason", "eight hours was a typo")
    page.click("#confirm-form input[type=submit]")
    assert "Roll back to version 1" in page.inner_text(".messagelist")
    assert Document.objects.across_tenants().get(pk=document.pk).published_version.number == 1
    shot(page, "admin-document-lifecycle")
    assert "rolled_back" in page.inner_text("body")
