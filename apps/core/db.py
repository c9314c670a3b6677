"""PostgreSQL with psycopg's prepared statements (settings/base.py, DATABASE_PREPARED_STATEMENTS):
a statement prepared on a connection fails with "cached plan must not change result type" once
another process (a deploy's `migrate`) changes a column it returns, and keeps failing for as long
as the connection lives (CONN_MAX_AGE). Outside a transaction nothing ran: the connection's
prepared statements are dropped (DEALLOCATE ALL, which psycopg notices too) and the statement is
sent once more. Inside one, the error stands; the rollback clears psycopg's statements."""

from django.db.utils import NotSupportedError

STALE_PLAN = "cached plan must not change result type"


def reprepare_after_schema_change(execute, sql, params, many, context):
    try:
        return execute(sql, params, many, context)
    except NotSupportedError as error:
        connection = context["connection"]
        if STALE_PLAN not in str(error) or connection.in_atomic_block or not connection.get_autocommit():
            raise
        with connection.connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
        return execute(sql, params, many, context)


def install(sender, connection, **kwargs) -> None:
    """connection_created receiver: on PostgreSQL with prepared statements, once per wrapper."""
    if connection.vendor != "postgresql" or connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return
    if reprepare_after_schema_change not in connection.execute_wrappers:
        connection.execute_wrappers.append(reprepare_after_schema_change)
