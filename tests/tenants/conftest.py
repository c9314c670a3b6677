"""Fixtures of the tenant-scoping tests."""

import pytest

from apps.corpus.models import Section
from apps.documents import services as document_services
from apps.tenants.actors import Actor
from apps.tenants.scoping import TenantScopeMissing
from tests.documents.conftest import text_file
from tests.search.conftest import add_chunks


@pytest.fixture
def two(acme, globex):
    """A collection, a document, a version with chunks and a section, in each of two tenants."""
    made = {}
    for world in (acme, globex):
        collection = document_services.collection_create(tenant=world.tenant, name="c")
        document = document_services.document_create(
            tenant=world.tenant, collection=collection, title=f"{world.tenant.slug} doc", actor=Actor(None)
        )
        version = document_services.version_upload(
            document=document, file=text_file(b"# t\n"), actor=Actor(None), ingest=False
        )
        add_chunks(version, ["one", "two"])
        Section.objects.create(version=version, ordinal=0, text="s", start_offset=0, end_offset=1)
        made[world.tenant.slug] = (world.tenant, collection, document, version)
    return made


def refused(queryset_or_run):
    """The attack tests' assertion: running the queryset (or calling the function) is refused."""
    with pytest.raises(TenantScopeMissing):
        run = queryset_or_run if callable(queryset_or_run) else lambda: list(queryset_or_run)
        run()
