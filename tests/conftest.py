"""Shared fixtures. Tests mirror apps/: tests/<app>/test_<module>.py."""

from __future__ import annotations

import contextlib
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
        # Deselected, not skipped: the embedded profile's run (bin/test runs both) is where they run.
        embedded_only = [item for item in items if "embedded_only" in item.keywords]
        if embedded_only:
            config.hook.pytest_deselected(items=embedded_only)
            items[:] = [item for item in items if "embedded_only" not in item.keywords]
        return
    for item in items:
        if "full_profile" in item.keywords:
            if IN_CI:
                item.add_marker(pytest.mark.usefixtures("_fail_full_profile_missing"))
            else:
                item.add_marker(pytest.mark.skip(reason="needs PLATFORM_PROFILE=full (bash bin/test full)"))


@pytest.fixture
def _fail_full_profile_missing():
    pytest.fail(
        "CI=true but PLATFORM_PROFILE is not 'full': start the services (bin/services start) and source their env"
    )


@pytest.fixture(autouse=True)
def _tasks_in_process(request):
    """Full profile: tasks run in-process for speed and determinism, except in tests marked
    `celery_worker`, which send them through Redis to a real worker process (tests/test_worker.py)."""
    from celery import current_app

    if settings.PLATFORM_PROFILE != "full" or request.node.get_closest_marker("celery_worker"):
        yield
        return
    current_app.conf.task_always_eager = True
    yield
    current_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _fresh_query_vectors():
    """Ids are reused across tests: a caller's cached query vectors must not outlive their test
    (a test counting what the encoder is asked would otherwise see a hit from an earlier one)."""
    from apps.answers import query_vectors

    query_vectors.clear()
    yield
    query_vectors.clear()


@pytest.fixture(autouse=True)
def _fresh_audit_checkpoints(settings, tmp_path):
    """Every test signs its audit checkpoints into a sink of its own (ids are reused across tests)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "audit_checkpoints": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "audit-checkpoints")},
        },
    }


@pytest.fixture(autouse=True)
def _fresh_search_index(settings, tmp_path):
    """Every test gets an empty search index of its own (the database rolls back; the index must
    too): a fresh SQLite file, or an Elasticsearch index prefix dropped afterwards."""
    import uuid

    from apps.search.backends import _built

    prefix = f"kp-test-{uuid.uuid4().hex[:10]}"
    settings.SEARCH = {
        "EMBEDDED": {"PATH": str(tmp_path / "search.sqlite3")},
        "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": prefix},
    }
    reset_search_backends()
    yield
    elasticsearch = _built.get("elasticsearch")
    if elasticsearch is not None:
        # An unreachable engine is the test's own failure to report, not teardown's.
        with contextlib.suppress(Exception):
            elasticsearch.drop()
    reset_search_backends()


@pytest.fixture(scope="session", autouse=True)
def _flush_past_the_audit_truncate_guard():
    """PostgreSQL refuses TRUNCATE on the audit tables (migration audit/0004), and TRUNCATE is how
    Django empties the database after a transactional test. The test runner owns the test
    database, so it may do what only an owner can: switch those triggers off around its own flush,
    inside the flush's transaction (they are on again at its end, whatever happens)."""
    if settings.PLATFORM_PROFILE != "full":
        yield
        return
    from django.db import transaction
    from django.db.backends.postgresql.operations import DatabaseOperations
    from psycopg import sql

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        with transaction.atomic(using=self.connection.alias), self.connection.cursor() as cursor:
            cursor.execute(  # tgtype bit 5: a TRUNCATE trigger
                "SELECT n.nspname, c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' "
                "AND (t.tgtype & 32) <> 0 AND n.nspname = current_schema()"
            )
            guards = cursor.fetchall()
            alter = "ALTER TABLE {} {} TRIGGER {}"
            for schema, table, trigger in guards:
                cursor.execute(
                    sql.SQL(alter)
                    .format(sql.Identifier(schema, table), sql.SQL("DISABLE"), sql.Identifier(trigger))
                    .as_string(self.connection.connection)
                )
            original(self, sql_list)
            for schema, table, trigger in guards:
                cursor.execute(
                    sql.SQL(alter)
                    .format(sql.Identifier(schema, table), sql.SQL("ENABLE"), sql.Identifier(trigger))
                    .as_string(self.connection.connection)
                )

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original


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
