"""On PostgreSQL the database itself refuses to change or delete audit rows, whatever the client.

The one exception is the retention purge (services.retention_purge), which sets
`audit.retention_purge = 'on'` for its own transaction only (SET LOCAL). TRUNCATE needs table
ownership; the application's database role in production should not own these tables (see
docs/audit.md).

Superseded by 0004_database_privileges: the setting no longer opens anything; only the owner of
the purge function may delete, and the application's role holds no DELETE at all."""

from django.db import migrations

TABLES = ("audit_auditrecord", "audit_retrievedchunk", "audit_review", "audit_retentionpurge")

FUNCTION = """
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


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # elsewhere the application's refusal (models.AppendOnly) is the guard
    schema_editor.execute(FUNCTION, params=None)  # no placeholders: its % are PL/pgSQL's
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(create, drop)]
