"""Prepared statements on PostgreSQL (settings/base.py, DATABASE_PREPARED_STATEMENTS) against what
happens to a serving process's connections: a deploy's migration run by another process, and a
change of role on the connection. Found by the review of the change (2026-12-04)."""

from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection

from apps.tenants.models import Tenant

pytestmark = [pytest.mark.full_profile, pytest.mark.django_db(transaction=True)]


def _owner_connection():
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"] or None,
        port=s["PORT"] or None,
        user=s["USER"],
        password=s["PASSWORD"],
        dbname=s["NAME"],
        autocommit=True,
    )


@contextmanager
def _a_prepared_lookup_then_a_migration_from_another_process():
    """A tenant look-up run often enough that psycopg prepares it on this connection (6+ runs),
    then the deploy's `migrate` (another process, another connection) widening a column the
    look-up returns; the column is put back afterwards."""
    Tenant.objects.create(slug="t1", name="T1")
    for _ in range(7):
        assert list(Tenant.objects.filter(slug="t1").values_list("slug", "name")) == [("t1", "T1")]
    with _owner_connection() as other:
        other.execute("ALTER TABLE tenants_tenant ALTER COLUMN name TYPE varchar(300)")
    try:
        yield
    finally:
        connection.close()
        with _owner_connection() as other:
            other.execute("ALTER TABLE tenants_tenant ALTER COLUMN name TYPE varchar(200)")


def test_a_migration_run_by_another_process_does_not_break_the_servers_open_connections():
    """A deploy runs `migrate` (its own process) while web and worker processes keep their
    connections (CONN_MAX_AGE=60). A migration that changes a column's type or length (AlterField,
    e.g. CharField max_length 200 -> 300) must not make the next request's query fail."""
    with _a_prepared_lookup_then_a_migration_from_another_process():
        # The next request on the same (persistent) connection, in autocommit like a view.
        assert list(Tenant.objects.filter(slug="t1").values_list("slug", "name")) == [("t1", "T1")]


def test_inside_a_transaction_the_statement_fails_once_and_the_next_one_is_replanned():
    from django.db import DatabaseError, transaction

    with _a_prepared_lookup_then_a_migration_from_another_process():
        try:
            with transaction.atomic():
                list(Tenant.objects.filter(slug="t1").values_list("slug", "name"))
        except DatabaseError:
            pass  # the transaction is lost, its rollback clears psycopg's prepared statements
        assert list(Tenant.objects.filter(slug="t1").values_list("slug", "name")) == [("t1", "T1")]


def test_a_statement_prepared_under_one_role_runs_with_the_privileges_of_the_role_executing_it():
    """Privileges are checked at execution, not at preparation: SET ROLE after a statement was
    prepared does not carry the first role's rights over (here: the purger role, which holds no
    privilege on tenants_tenant, apps/audit/database_roles.py)."""
    from django.conf import settings
    from django.db import DatabaseError

    purger = settings.DATABASE_ROLES["AUDIT_PURGER"]
    assert purger, "the full profile names AUDIT_PURGE_ROLE (bin/services)"
    for _ in range(7):
        Tenant.objects.filter(slug="t1").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%%tenants_tenant%%'")
        assert cursor.fetchone()[0] >= 1
        cursor.execute(f'SET ROLE "{purger}"')
    try:
        with pytest.raises(DatabaseError, match="permission denied"):
            Tenant.objects.filter(slug="t1").exists()
    finally:
        connection.close()
