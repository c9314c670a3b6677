"""The audit trail's protection on PostgreSQL rests on who is asking, never on what a session says
(docs/audit.md, "Database privileges").

- The row trigger of 0002 gets a new body: UPDATE is always refused; DELETE of records, retrieved
  chunks and reviews only when `current_user` is the owner of `audit_purge_prefix()` (looked up in
  pg_proc, in the table's own schema), which is the case only inside that SECURITY DEFINER
  function; DELETE of retention anchors never. 0002's `audit.retention_purge` setting is gone.
- TRUNCATE, which row triggers do not see, is refused on the four tables and on the chain head.
- The chain head may only move forward: no DELETE, no UPDATE that lowers its sequence, changes
  its tenant or rewrites its hash in place.
- `audit_purge_prefix(tenant, through)` deletes one tenant's chain prefix and nothing else. No one
  may execute it but its owner and whom migrate grants it to (apps/audit/database_roles.py); when
  settings.DATABASE_ROLES["AUDIT_PURGER"] names an existing role it becomes the owner.

Privileges do the rest: the application's role is granted SELECT and INSERT on the audit tables
only (post_migrate, apps/audit/database_roles.py), and TRUNCATE or ALTER TABLE ... DISABLE
TRIGGER need ownership, which it never has."""

from django.db import migrations

TABLES = ("audit_auditrecord", "audit_retrievedchunk", "audit_review", "audit_retentionpurge")
CHAIN_HEAD = "audit_chainhead"

# Every trigger function runs with a fixed search_path: an operator or function a session put
# first on its own search_path (e.g. a `<` in a schema it may create in) cannot stand in for
# pg_catalog's inside the checks.
REFUSE_CHANGE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    purger oid;
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME IN ('audit_auditrecord', 'audit_retrievedchunk', 'audit_review') THEN
        -- The owner of the purge function, in this table's schema (a function of the same name in
        -- pg_temp or elsewhere does not count). Only inside that function is it current_user.
        SELECT p.proowner INTO purger FROM pg_catalog.pg_proc p
         WHERE p.oid = pg_catalog.to_regprocedure(
                   pg_catalog.quote_ident(TG_TABLE_SCHEMA) || '.audit_purge_prefix(bigint,bigint)');
        IF purger IS NOT NULL
           AND purger = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

# 0002's body, for the way back.
PREVIOUS_REFUSE_CHANGE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME <> 'audit_retentionpurge'
       AND current_setting('audit.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;
"""

CHAIN_HEAD_FORWARD = """
CREATE OR REPLACE FUNCTION audit_chainhead_forward_only() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'the audit chain head cannot be deleted (tenant %)', OLD.tenant_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id THEN
        RAISE EXCEPTION 'the audit chain head of tenant % cannot move to another tenant', OLD.tenant_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.sequence < OLD.sequence
       OR (NEW.sequence = OLD.sequence AND NEW.last_hash IS DISTINCT FROM OLD.last_hash) THEN
        RAISE EXCEPTION 'the audit chain head of tenant % only moves forward (% to % refused)',
            OLD.tenant_id, OLD.sequence, NEW.sequence
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
"""

REFUSE_TRUNCATE = """
CREATE OR REPLACE FUNCTION audit_refuse_truncate() RETURNS trigger LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'audit tables cannot be truncated: TRUNCATE on % refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

# SECURITY DEFINER: runs as its owner (the purger role), whose DELETE the row trigger allows. A
# fixed search_path with pg_temp last, and every table schema-qualified, so a caller's temporary
# objects can never stand in for ours (PostgreSQL docs, "Writing SECURITY DEFINER Functions Safely").
PURGE = """
CREATE FUNCTION {schema}.audit_purge_prefix(p_tenant bigint, p_through bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, {schema}, pg_temp AS $$
DECLARE
    deleted bigint;
BEGIN
    IF p_tenant IS NULL OR p_through IS NULL THEN
        RAISE EXCEPTION 'audit_purge_prefix(tenant, through): both are required';
    END IF;
    DELETE FROM {schema}.audit_review WHERE tenant_id = p_tenant AND sequence <= p_through;
    DELETE FROM {schema}.audit_retrievedchunk c USING {schema}.audit_auditrecord r
     WHERE c.record_id = r.id AND r.tenant_id = p_tenant AND r.sequence <= p_through;
    DELETE FROM {schema}.audit_auditrecord WHERE tenant_id = p_tenant AND sequence <= p_through;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    RETURN deleted;
END
$$;
REVOKE EXECUTE ON FUNCTION {schema}.audit_purge_prefix(bigint, bigint) FROM PUBLIC;
"""


def _schema(schema_editor) -> str:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return schema_editor.quote_name(cursor.fetchone()[0])


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # elsewhere the application's refusal (models.AppendOnly) is the guard
    from apps.audit.database_roles import hand_purge_function_to_purger

    schema = _schema(schema_editor)
    for body in (REFUSE_CHANGE, CHAIN_HEAD_FORWARD, REFUSE_TRUNCATE):
        schema_editor.execute(body, params=None)  # no placeholders: its % are PL/pgSQL's
    schema_editor.execute(
        f"CREATE TRIGGER {CHAIN_HEAD}_forward_only BEFORE UPDATE OR DELETE ON {CHAIN_HEAD} "
        "FOR EACH ROW EXECUTE FUNCTION audit_chainhead_forward_only()"
    )
    for table in (*TABLES, CHAIN_HEAD):
        schema_editor.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate()"
        )
    schema_editor.execute(PURGE.format(schema=schema), params=None)
    # The purger role (when configured) becomes its owner; post_migrate does it again, so a role
    # configured later takes over at the next migrate.
    hand_purge_function_to_purger(schema_editor.connection)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema = _schema(schema_editor)
    # The migrating role is a member of the purger role (bin/services), so it may drop its function.
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {schema}.audit_purge_prefix(bigint, bigint)")
    for table in (*TABLES, CHAIN_HEAD):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    schema_editor.execute(f"DROP TRIGGER IF EXISTS {CHAIN_HEAD}_forward_only ON {CHAIN_HEAD}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_truncate()")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_chainhead_forward_only()")
    schema_editor.execute(PREVIOUS_REFUSE_CHANGE, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_keyed_chain")]
    operations = [migrations.RunPython(create, drop)]
