"""PostgreSQL privileges by construction (docs/audit.md, "Database privileges").

Three roles: the *owner* (DATABASE_URL of `migrate`) owns every table; the *application*
(settings.DATABASE_ROLES["APP"]) serves requests and runs the workers; the *audit purger*
(settings.DATABASE_ROLES["AUDIT_PURGER"], no login) owns `audit_purge_prefix()`, the one way audit
rows are ever deleted (migration audit/0004, apps/audit/purge.py).

After every `migrate` (the `post_migrate` signal, connected in apps.py) the application role is
given exactly what it needs, recomputed from nothing: ordinary read and write on the tables of the
schema, but only SELECT and INSERT on the audit trail and the directory's history, no DELETE on
the chain head, no writes to `django_migrations`, and EXECUTE on the purge function. Only on
PostgreSQL, and only when a role is configured: elsewhere (SQLite, a development database served
by its owner) nothing is granted.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction

logger = logging.getLogger(__name__)

# Append-only: the application may read and add rows, never change or remove them.
AUDIT_TABLES = ("audit_auditrecord", "audit_retrievedchunk", "audit_review", "audit_retentionpurge")
# The directory's history (tenants.DirectoryEvent): who changed the people and groups that access
# follows. Append-only for the application too; it has no trigger (its owner is trusted, as for
# every table), and nothing points at its rows.
HISTORY_TABLES = ("tenants_directoryevent",)
# The tip of each tenant's chain moves forward (a trigger refuses the rest); never deleted.
CHAIN_HEAD_TABLE = "audit_chainhead"
# What the purge function deletes from, and so all its owner may touch.
PURGED_TABLES = ("audit_review", "audit_retrievedchunk", "audit_auditrecord")
PURGE_FUNCTION = "audit_purge_prefix"
PURGE_SIGNATURE = "(bigint, bigint)"


def _sql(connection, template: str, **identifiers):
    """`template` with each {name} replaced by the quoted identifier, as a plain string."""
    from psycopg import sql

    composed = sql.SQL(template).format(
        **{k: sql.Identifier(*v) if isinstance(v, tuple) else sql.Identifier(v) for k, v in identifiers.items()}
    )
    return composed.as_string(connection.connection)


def _schema(cursor) -> str:
    cursor.execute("SELECT current_schema()")
    return cursor.fetchone()[0]


def role_exists(cursor, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", [role])
    return cursor.fetchone() is not None


def _table_exists(cursor, schema: str, table: str) -> bool:
    cursor.execute("SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", [schema, table])
    return cursor.fetchone()[0]


def purge_function_owner(cursor, schema: str) -> str | None:
    """The role owning `<schema>.audit_purge_prefix(bigint, bigint)`, None when it does not exist."""
    cursor.execute(
        "SELECT r.rolname FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_roles r ON r.oid = p.proowner "
        "WHERE p.oid = to_regprocedure(format('%%I.%%I%%s', %s::text, %s::text, %s::text))",
        [schema, PURGE_FUNCTION, PURGE_SIGNATURE],
    )
    row = cursor.fetchone()
    return row[0] if row else None


def hand_purge_function_to_purger(connection) -> bool:
    """Makes the configured purger role the owner of the purge function and gives it exactly what
    the function does: SELECT and DELETE on the three purged tables, USAGE on the schema. Returns
    whether the purger owns it. Without a configured (and existing) purger role the function stays
    with the migrating role, which is then the one role the trigger lets delete (development)."""
    purger = settings.DATABASE_ROLES.get("AUDIT_PURGER")
    if connection.vendor != "postgresql" or not purger:
        return False
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        schema = _schema(cursor)
        owner = purge_function_owner(cursor, schema)
        if owner is None:
            return False  # migrated back before audit/0004
        if not role_exists(cursor, purger):
            logger.warning("AUDIT_PURGE_ROLE=%s does not exist: audit_purge_prefix() stays owned by %s", purger, owner)
            return False
        ids = {"schema": schema, "purger": purger}
        cursor.execute(_sql(connection, "GRANT USAGE ON SCHEMA {schema} TO {purger}", **ids))
        # Nothing but the function's own needs, recomputed every time.
        cursor.execute(_sql(connection, "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {purger}", **ids))
        for table in PURGED_TABLES:
            cursor.execute(
                _sql(connection, "GRANT SELECT, DELETE ON {table} TO {purger}", table=(schema, table), **ids)
            )
        if owner != purger:
            # ALTER ... OWNER needs the new owner to hold CREATE on the schema (PostgreSQL 15 gives
            # it to nobody on public); it holds it for this transaction only.
            cursor.execute("SELECT has_schema_privilege(%s, %s, 'CREATE')", [purger, schema])
            had_create = cursor.fetchone()[0]
            if not had_create:
                cursor.execute(_sql(connection, "GRANT CREATE ON SCHEMA {schema} TO {purger}", **ids))
            cursor.execute(
                _sql(
                    connection,
                    "ALTER FUNCTION {function}" + PURGE_SIGNATURE + " OWNER TO {purger}",
                    function=(schema, PURGE_FUNCTION),
                    **ids,
                )
            )
            if not had_create:
                cursor.execute(_sql(connection, "REVOKE CREATE ON SCHEMA {schema} FROM {purger}", **ids))
    return True


def grant_application_role(connection) -> bool:
    """Grants the configured application role what it needs, and no more. Returns whether it
    granted anything (False: not PostgreSQL, or no role configured)."""
    app = settings.DATABASE_ROLES.get("APP")
    if connection.vendor != "postgresql" or not app:
        return False
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if not role_exists(cursor, app):
            raise ImproperlyConfigured(
                f"DATABASE_APP_ROLE={app}: no such PostgreSQL role (bin/services creates it locally; "
                "create it with LOGIN and a password, then run migrate again)."
            )
        cursor.execute("SELECT current_database()")
        database = cursor.fetchone()[0]
        schema = _schema(cursor)
        ids = {"app": app, "schema": schema}

        def run(template: str, **more) -> None:
            cursor.execute(_sql(connection, template, **ids, **more))

        run("GRANT CONNECT ON DATABASE {database} TO {app}", database=database)
        # USAGE only: a role that may create objects in the schema could shadow what the
        # triggers and the purge function call (PostgreSQL 15 already denies CREATE to PUBLIC).
        run("REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC")
        run("REVOKE CREATE ON SCHEMA {schema} FROM {app}")
        run("GRANT USAGE ON SCHEMA {schema} TO {app}")
        # From nothing, in this one transaction: whatever was granted before does not linger.
        run("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {app}")
        run("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {app}")
        run("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}")
        run("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app}")
        for table in AUDIT_TABLES + HISTORY_TABLES:
            if _table_exists(cursor, schema, table):
                run("REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {app}", table=(schema, table))
        if _table_exists(cursor, schema, CHAIN_HEAD_TABLE):
            run("REVOKE DELETE, TRUNCATE ON {table} FROM {app}", table=(schema, CHAIN_HEAD_TABLE))
        if _table_exists(cursor, schema, "django_migrations"):
            run("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {table} FROM {app}", table=(schema, "django_migrations"))
        if purge_function_owner(cursor, schema) is not None:
            run(
                "GRANT EXECUTE ON FUNCTION {function}" + PURGE_SIGNATURE + " TO {app}",
                function=(schema, PURGE_FUNCTION),
            )
    return True


def apply_after_migrate(sender, using, **kwargs) -> None:
    """post_migrate receiver (once per migrate: it is connected for the audit app only)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    hand_purge_function_to_purger(connection)
    grant_application_role(connection)
