"""Shared fixtures. Tests mirror apps/: tests/<app>/test_<module>.py."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apps.search.backends import reset_search_backends
from apps.tenants import services
from apps.tenants.models import Membership, Role, Scope, Tenant

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    """Full-profile tests need the real services. Without them they skip on a developer's machine
    and fail in CI, where a missing service is a broken build, never a silent skip."""
    if settings.PLATFORM_PROFILE == "full":
        return
    for item in items:
        if "full_profile" in item.keywords:
            if IN_CI:
                item.add_marker(pytest.mark.usefixtures("_fail_full_profile_missing"))
            else:
                item.add_marker(pytest.mark.skip(reason="needs PLATFORM_PROFILE=full (bash bin/test full)"))


@pytest.fixture
def _fail_full_profile_missing():
    pytest.fail("CI=true but PLATFORM_PROFILE is not 'full': start the services (bin/services start) and source their env")


@pytest.fixture(autouse=True)
def _fresh_search_backends():
    yield
    reset_search_backends()


@dataclass
class TenantWorld:
    tenant: Tenant
    owner: Membership
    reader: Membership

    def key(self, scopes=None, **kwargs) -> str:
        _, raw = services.api_key_create(tenant=self.tenant, name="test", scopes=scopes or Scope.values, **kwargs)
        return raw


def make_world(slug: str) -> TenantWorld:
    tenant = services.tenant_create(slug=slug, name=slug.title())
    owner = services.member_create(tenant=tenant, username="owner", role=Role.OWNER)
    reader = services.member_create(tenant=tenant, username="reader", role=Role.READER)
    return TenantWorld(tenant=tenant, owner=owner, reader=reader)


@pytest.fixture
def acme(db) -> TenantWorld:
    return make_world("acme")


@pytest.fixture
def globex(db) -> TenantWorld:
    return make_world("globex")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def key_client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    return client


def user_client(membership: Membership, tenant_slug: str | None = None) -> APIClient:
    client = APIClient()
    client.force_authenticate(membership.user)
    if tenant_slug is not None:
        client.credentials(HTTP_X_TENANT=tenant_slug)
    return client
