"""PostgreSQL protects the audit trail by who is asking, not by what a session says (migration
audit/0004, apps/audit/database_roles.py, docs/audit.md "Database privileges").

The application's role (DATABASE_APP_URL, written by bin/services) connects to the test database
from a second connection, so the rows it attacks are committed ones (transactional tests)."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg import errors

from apps.audit.models import AuditRecord, ChainHead, RetentionPurge, RetrievedChunk, Review
from apps.tenants.models import Tenant
from tests.conftest import IN_CI

pytestmark = [pytest.mark.full_profile, pytest.mark.django_db(transaction=True)]

AUDIT_TABLES = ("audit_auditrecord", "audit_retrievedchunk", "audit_review", "audit_retentionpurge")
GENESIS = "0" * 64
PURGE = "audit_purge_prefix(bigint,bigint)"


@dataclass(frozen=True)
class AppRole:
    user: str
    password: str
    host: str
    port: int


@pytest.fixture
def app_role() -> AppRole:
    url = os.environ.get("DATABASE_APP_URL", "")
    missing = [
        name
        for name, value in (
            ("DATABASE_APP_URL", url),
            ("DATABASE_APP_ROLE", settings.DATABASE_ROLES["APP"]),
            ("AUDIT_PURGE_ROLE", settings.DATABASE_ROLES["AUDIT_PURGER"]),
        )
        if not value
    ]
    if missing:
        message = (
            f"{', '.join(missing)} not set: `bash bin/services start` creates the roles and writes them to "
            "its env file (source it)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    parts = urlsplit(url)
    role = AppRole(
        unquote(parts.username or ""), unquote(parts.password or ""), parts.hostname or "127.0.0.1", parts.port or 5432
    )
    assert role.user == settings.DATABASE_ROLES["APP"], "DATABASE_APP_URL and DATABASE_APP_ROLE name different roles"
    return role


@pytest.fixture
def app(app_role):
    """A psycopg connection to the *test* database as the application's role."""
    conn = psycopg.connect(
        host=app_role.host,
        port=app_role.port,
        user=app_role.user,
        password=app_role.password,
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    )
    try:
        yield conn
    finally:
        conn.close()


def attempt(conn, statement: str, params=None, *, bypass: bool = False) -> psycopg.Error | None:
    """Runs `statement` in a transaction of its own (after 0002's old switch, with `bypass`);
    returns what PostgreSQL raised, None when it let the statement through."""
    try:
        with conn.transaction():
            if bypass:
                conn.execute("SET LOCAL audit.retention_purge = 'on'")
            conn.execute(statement, params)
    except psycopg.Error as error:
        return error
    return None


def owner_attempt(statement: str, params=None, *, bypass: bool = False) -> DatabaseError | None:
    """The same through Django's connection: the test database's owner, the migrating role."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            if bypass:
                cursor.execute("SET LOCAL audit.retention_purge = 'on'")
            cursor.execute(statement, params)
    except DatabaseError as error:
        return error
    return None


@contextmanager
def django_as(role: AppRole):
    """Django's own connection, reconnected as the application's role (as web and workers serve)."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(USER=role.user, PASSWORD=role.password)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


# --------------------------------------------------------------------------- the rows attacked
def _record(tenant: Tenant, sequence: int) -> AuditRecord:
    record = AuditRecord(
        tenant=tenant,
        sequence=sequence,
        created_at=timezone.now(),
        kind="search",
        outcome="answered",
        query=f"question {sequence}",
        previous_hash=GENESIS,
        record_hash=hashlib.sha256(f"{tenant.slug}:{sequence}".encode()).hexdigest(),
    )
    record.save()
    RetrievedChunk(
        record=record,
        rank=1,
        chunk_id=f"{tenant.slug}-{sequence}",
        document_id=1,
        version_id=1,
        text_sha256=GENESIS,
        passed_recheck=True,
        shown=True,
    ).save()
    return record


def _review(tenant: Tenant, sequence: int, record: AuditRecord) -> Review:
    review = Review(
        tenant=tenant,
        sequence=sequence,
        record=record,
        record_sequence=record.sequence,
        record_hash=record.record_hash,
        status="reviewed",
        reviewer_name="carol",
        created_at=timezone.now(),
        previous_hash=GENESIS,
        entry_hash=hashlib.sha256(f"{tenant.slug}:review:{sequence}".encode()).hexdigest(),
    )
    review.save()
    return review


@dataclass
class World:
    acme: Tenant
    globex: Tenant

    def snapshot(self) -> dict:
        return {
            "records": sorted(AuditRecord.objects.across_tenants().values_list("tenant__slug", "sequence")),
            "chunks": sorted(RetrievedChunk.objects.across_tenants().values_list("chunk_id", flat=True)),
            "reviews": sorted(Review.objects.across_tenants().values_list("tenant__slug", "sequence")),
            "anchors": RetentionPurge.objects.across_tenants().count(),
            "heads": sorted(ChainHead.objects.across_tenants().values_list("tenant__slug", "sequence", "last_hash")),
        }


@pytest.fixture
def world(app_role) -> World:
    """acme's chain: records 1, 2, a review of 1 at 3, record 4, a review of 1 at 5 (younger than
    its record); globex's: records 1, 2, a review of 2 at 3. An old retention anchor; both heads."""
    acme, globex = Tenant.objects.create(slug="acme", name="Acme"), Tenant.objects.create(slug="globex", name="Globex")
    first, _ = _record(acme, 1), _record(acme, 2)
    _review(acme, 3, first)
    _record(acme, 4)
    _review(acme, 5, first)
    _record(globex, 1)
    _review(globex, 3, _record(globex, 2))
    now = timezone.now()
    RetentionPurge(tenant=acme, created_at=now, older_than=now, records=0, through_sequence=0, last_hash=GENESIS).save()
    ChainHead.objects.create(tenant=acme, sequence=5, last_hash="a" * 64)
    ChainHead.objects.create(tenant=globex, sequence=3, last_hash="b" * 64)
    return World(acme, globex)


# --------------------------------------------------------------------------- refused
@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_the_application_role_cannot_change_delete_or_truncate_audit_rows(app, world, table):
    before = world.snapshot()
    for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}", f"TRUNCATE {table}"):
        for bypass in (False, True):
            error = attempt(app, statement, bypass=bypass)
            assert isinstance(error, errors.InsufficientPrivilege), (statement, bypass, error)
            assert f"permission denied for table {table}" in str(error)
    # What it may do to them: read and add.
    assert app.execute(f"SELECT count(*) FROM {table}").fetchone()[0] >= 1
    assert world.snapshot() == before


def test_the_trigger_refuses_even_the_tables_owner_and_ignores_the_old_session_switch(app_role, world):
    """The migrating role holds every privilege; the trigger still refuses it (it is not the purge
    function's owner), with or without 0002's `audit.retention_purge`, and a function of the same
    name in its own temporary schema does not make it one."""
    before = world.snapshot()
    for table in AUDIT_TABLES:
        for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):
            for bypass in (False, True):
                error = owner_attempt(statement, bypass=bypass)
                assert error is not None and "append-only" in str(error), (statement, bypass, error)
    for table in (*AUDIT_TABLES, "audit_chainhead"):
        error = owner_attempt(f"TRUNCATE {table} CASCADE")
        assert error is not None and "cannot be truncated" in str(error), (table, error)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.audit_purge_prefix(bigint, bigint) RETURNS bigint LANGUAGE sql AS 'SELECT "
            "0::bigint'"
        )
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            cursor.execute("DELETE FROM audit_auditrecord")
        transaction.set_rollback(True)
    assert world.snapshot() == before


def test_the_application_role_cannot_switch_the_guard_off(app, world):
    purger = settings.DATABASE_ROLES["AUDIT_PURGER"]
    for statement in (
        "ALTER TABLE audit_auditrecord DISABLE TRIGGER USER",
        "ALTER TABLE audit_auditrecord DISABLE TRIGGER audit_auditrecord_append_only",
        "ALTER TABLE audit_chainhead DISABLE TRIGGER audit_chainhead_forward_only",
        "DROP TRIGGER audit_review_append_only ON audit_review",
        "ALTER FUNCTION audit_purge_prefix(bigint, bigint) SECURITY INVOKER",
        "CREATE OR REPLACE FUNCTION public.audit_refuse_change() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN OLD; END $$",
        f'SET ROLE "{purger}"',
    ):
        error = attempt(app, statement)
        assert isinstance(error, errors.InsufficientPrivilege), (statement, error)
    assert attempt(app, "DELETE FROM audit_review") is not None  # still refused afterwards


def test_the_chain_head_only_moves_forward(app, world):
    before = world.snapshot()
    initech = Tenant.objects.create(slug="initech", name="Initech")  # a tenant without a head
    head = f"UPDATE audit_chainhead SET {{}} WHERE tenant_id = {world.acme.pk}"
    for change, message in (
        ("sequence = sequence - 1", "only moves forward"),
        ("sequence = 0, last_hash = ''", "only moves forward"),
        (f"last_hash = '{'f' * 64}'", "only moves forward"),  # rewritten in place
        (f"tenant_id = {initech.pk}", "cannot move to another tenant"),
    ):
        error = attempt(app, head.format(change))
        assert isinstance(error, errors.InsufficientPrivilege) and message in str(error), (change, error)
    for bypass in (False, True):
        error = attempt(app, "DELETE FROM audit_chainhead", bypass=bypass)
        assert isinstance(error, errors.InsufficientPrivilege) and "permission denied" in str(error)
    error = attempt(app, "TRUNCATE audit_chainhead")
    assert isinstance(error, errors.InsufficientPrivilege) and "permission denied" in str(error)
    # Not even the owner deletes a head (that would restart the tenant's chain at 1).
    error = owner_attempt("DELETE FROM audit_chainhead WHERE tenant_id = %s", [world.acme.pk])
    assert error is not None and "cannot be deleted" in str(error)
    assert world.snapshot() == before


# --------------------------------------------------------------------------- allowed
def test_the_application_role_purges_one_tenants_prefix_through_the_function_only(app, world):
    purger = settings.DATABASE_ROLES["AUDIT_PURGER"]
    owner, definer, config = app.execute(
        "SELECT proowner::regrole::text, prosecdef, proconfig FROM pg_proc WHERE oid = %s::regprocedure", [PURGE]
    ).fetchone()
    assert (owner, definer) == (purger, True)
    assert config == ["search_path=pg_catalog, public, pg_temp"]
    assert app.execute("SELECT has_function_privilege('public', %s, 'EXECUTE')", [PURGE]).fetchone()[0] is False
    globex_before = {
        k: [row for row in v if "globex" in str(row)] for k, v in world.snapshot().items() if k != "anchors"
    }
    # A decoy in the caller's temporary schema is not what the function deletes from.
    app.execute("CREATE TEMP TABLE audit_review (tenant_id bigint, sequence bigint)")
    app.execute("INSERT INTO audit_review VALUES (%s, 1)", [world.acme.pk])

    assert app.execute("SELECT audit_purge_prefix(%s, %s)", [world.acme.pk, 3]).fetchone()[0] == 2

    after = world.snapshot()
    assert [seq for slug, seq in after["records"] if slug == "acme"] == [4]
    assert [seq for slug, seq in after["reviews"] if slug == "acme"] == [5]  # outlives its record (1)
    assert [c for c in after["chunks"] if c.startswith("acme")] == ["acme-4"]
    assert {k: [row for row in v if "globex" in str(row)] for k, v in after.items() if k != "anchors"} == globex_before
    assert after["anchors"] == 1 and ("acme", 5, "a" * 64) in after["heads"]
    assert app.execute("SELECT count(*) FROM pg_temp.audit_review").fetchone()[0] == 1
    # The function's rights did not rub off on the caller.
    error = attempt(app, "DELETE FROM audit_auditrecord")
    assert isinstance(error, errors.InsufficientPrivilege)


def test_the_application_role_does_the_platforms_ordinary_work(app_role, world):
    from apps.audit import purge
    from apps.tenants import services as tenants

    with django_as(app_role):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone()[0] == app_role.user
        with transaction.atomic():  # what appending to a chain does
            head = ChainHead.objects.select_for_update().get(tenant=world.acme)
            record = _record(world.acme, head.sequence + 1)
            _review(world.acme, head.sequence + 2, record)
            head.sequence, head.last_hash = head.sequence + 2, "c" * 64
            head.save(update_fields=["sequence", "last_hash"])
        # ordinary tables: create, change, delete
        initech = tenants.tenant_create(slug="initech", name="Initech")
        Tenant.objects.filter(pk=initech.pk).update(name="Initech Inc.")
        Group.objects.create(name="scratch").delete()
        # the retention purge: the function, then the anchor
        with transaction.atomic():
            assert purge.delete_prefix(tenant_id=world.globex.pk, through_sequence=2) == 2
            now = timezone.now()
            RetentionPurge(
                tenant=world.globex, created_at=now, older_than=now, records=2, through_sequence=2, last_hash=GENESIS
            ).save()
    assert ChainHead.objects.get(tenant=world.acme).sequence == 7
    assert AuditRecord.objects.filter(tenant=world.acme).count() == 4
    assert (
        Tenant.objects.get(pk=initech.pk).name == "Initech Inc." and not Group.objects.filter(name="scratch").exists()
    )
    assert not AuditRecord.objects.filter(tenant=world.globex).exists()
    assert list(Review.objects.filter(tenant=world.globex).values_list("sequence", flat=True)) == [3]


def test_the_application_role_runs_the_audit_services_themselves(app_role, settings):
    """The real services, as web and workers run them: record_append (its chunks go by COPY),
    review_add, a signed checkpoint, the retention purge through the function, and verify."""
    from datetime import timedelta

    from apps.audit import chain
    from apps.audit.checkpoints import checkpoint_write
    from apps.audit.services import ChunkEntry, RecordEntry, record_append, retention_purge, review_add
    from apps.tenants.resolution import TenantContext

    initech = Tenant.objects.create(slug="initech", name="Initech")
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="peter@initech")
    context = TenantContext(tenant=initech, user=user, api_key=None, membership=None, scopes=frozenset())
    chunk = ChunkEntry(
        rank=1,
        chunk_id="c1",
        document_id=1,
        version_id=1,
        text_sha256="0" * 64,
        served_sha256="0" * 64,
        scores={"fused": 0.5, "bm25": -0.0},
        passed_recheck=True,
        recheck_reason="",
        shown=True,
    )
    with django_as(app_role):
        records = [
            record_append(
                context=context,
                entry=RecordEntry(
                    kind="search", outcome="answered", query=f"q{i}", filters={}, parameters={}, chunks=[chunk]
                ),
            )
            for i in range(3)
        ]
        review_add(record=records[0], status="flagged", comment="", reviewer_id=None, reviewer_name="carol")
        assert checkpoint_write(tenant=initech).sequence == 4
        settings.AUDIT = {**settings.AUDIT, "RETENTION_DAYS": 30}
        purged = retention_purge(tenant=initech, now=timezone.now() + timedelta(days=31))
        assert (purged.records, purged.through_sequence, purged.refused) == (3, 4, "")
        record_append(
            context=context,
            entry=RecordEntry(kind="search", outcome="no_results", query="after", filters={}, parameters={}),
        )
        assert chain.verify_tenant(initech).intact


def test_every_migrate_grants_the_application_role_exactly_its_privileges_again(app_role, world):
    app = app_role.user
    with connection.cursor() as cursor:
        cursor.execute(f'GRANT UPDATE, DELETE, TRUNCATE ON audit_review, audit_chainhead TO "{app}"')  # a mistake
        cursor.execute(f'REVOKE INSERT ON tenants_tenant FROM "{app}"')
    call_command("migrate", verbosity=0)  # nothing to apply; post_migrate still runs
    expected = {
        **{
            (table, p): p in ("SELECT", "INSERT")
            for table in AUDIT_TABLES
            for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        },
        **{
            ("audit_chainhead", p): p in ("SELECT", "INSERT", "UPDATE")
            for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
        },
        **{("tenants_tenant", p): p != "TRUNCATE" for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")},
        **{("django_migrations", p): p == "SELECT" for p in ("SELECT", "INSERT", "UPDATE", "DELETE")},
    }
    with connection.cursor() as cursor:
        actual = {}
        for table, privilege in expected:
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [app, table, privilege])
            actual[table, privilege] = cursor.fetchone()[0]
        cursor.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE')", [app, PURGE])
        assert cursor.fetchone()[0] is True
        cursor.execute(
            "SELECT has_sequence_privilege(%s, pg_get_serial_sequence('audit_auditrecord', 'id'), 'USAGE')", [app]
        )
        assert cursor.fetchone()[0] is True
    assert actual == expected


def test_the_application_role_cannot_create_in_the_schema(app_role, app):
    """Objects it could create (an operator `<` in public, say) could stand in for pg_catalog's
    inside the triggers; they also run with a fixed search_path."""
    schema = app.execute("SELECT current_schema()").fetchone()[0]
    assert app.execute("SELECT has_schema_privilege(current_user, %s, 'CREATE')", [schema]).fetchone()[0] is False
    settings_of = dict(
        app.execute(
            "SELECT p.proname, array_to_string(p.proconfig, ',') FROM pg_proc p WHERE p.proname IN "
            "('audit_refuse_change', 'audit_chainhead_forward_only', 'audit_refuse_truncate')"
        ).fetchall()
    )
    assert len(settings_of) == 3 and all(
        "search_path=pg_catalog, pg_temp" in (config or "") for config in settings_of.values()
    )
