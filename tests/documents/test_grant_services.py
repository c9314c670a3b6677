"""grants_set builds permission names from obj._meta.app_label now (was the fixed
`documents.`), and the grant services moved to documents. No API or admin path may hand them an
object other than a collection or a document; on those two the permissions are the same as before.
The admin's "Retry ingestion" now goes through documents.services.version_requeue."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.utils import timezone
from guardian.shortcuts import get_perms

from apps.access.grants import Grant, grants_list
from apps.access.levels import Level
from apps.documents import services
from apps.documents.admin import GrantsAdminMixin
from apps.documents.models import Collection, Document, IngestionStatus
from apps.tenants.actors import Actor
from tests.documents.conftest import text_file

pytestmark = pytest.mark.django_db


def test_only_collections_and_documents_have_a_grants_page():
    with_grants = {
        model for model, model_admin in admin.site._registry.items() if isinstance(model_admin, GrantsAdminMixin)
    }
    assert with_grants == {Collection, Document}


def test_permissions_are_the_documents_apps_as_before(acme):
    collection = services.collection_create(tenant=acme.tenant, name="c")
    document = services.document_create(tenant=acme.tenant, collection=collection, title="d", actor=Actor(None))
    user = acme.reader.user
    services.grants_replace(obj=collection, grants=[Grant(user, Level.CHANGE)], actor=Actor(None))
    services.grants_replace(obj=document, grants=[Grant(user, Level.MANAGE)], actor=Actor(None))
    assert set(get_perms(user, collection)) == {"view_collection", "change_collection"}
    assert set(get_perms(user, document)) == {"view_document", "change_document", "manage_document"}
    assert user.has_perm("documents.manage_document", document)
    assert [(g.principal, g.level) for g in grants_list(document)] == [(user, Level.MANAGE)]


def test_requeue_leaves_ready_and_purged_versions_alone(acme):
    collection = services.collection_create(tenant=acme.tenant, name="c")
    document = services.document_create(tenant=acme.tenant, collection=collection, title="d", actor=Actor(None))
    version = services.version_upload(document=document, file=text_file(), actor=Actor(None), ingest=False)
    services.version_set_status(version=version, status=IngestionStatus.READY)
    assert services.version_requeue(version=version) is False
    services.version_set_status(version=version, status=IngestionStatus.FAILED, reason="x")
    version.purged_at = timezone.now()
    version.save(update_fields=["purged_at"])
    assert services.version_requeue(version=version) is False
    version.purged_at = None
    version.save(update_fields=["purged_at"])
    assert services.version_requeue(version=version) is True
    version.refresh_from_db()
    assert version.status == IngestionStatus.PENDING
