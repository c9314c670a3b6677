"""The one deletion of audit rows: a tenant's chain prefix, for the retention purge.

On PostgreSQL it is `audit_purge_prefix()` (migration audit/0004), a SECURITY DEFINER function
owned by the purger role: the application's own role holds no DELETE on the audit tables and the
trigger lets only that function's owner delete, so nothing else can remove an audit row, whatever
a session sets. Elsewhere (SQLite) the rows are deleted below the append-only query set, which is
the guard there. The caller holds the tenant's chain head locked and writes the purge anchor in
the same transaction (services.retention_purge)."""

from __future__ import annotations

from django.db import connection, transaction

from .models import AuditRecord, RetrievedChunk, Review


def delete_prefix(*, tenant_id: int, through_sequence: int) -> int:
    """Deletes the tenant's reviews and records with `sequence <= through_sequence` (and the
    records' retrieved chunks). Returns how many records were deleted."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT audit_purge_prefix(%s, %s)", [tenant_id, through_sequence])
            return cursor.fetchone()[0]
    with transaction.atomic():
        records = list(
            AuditRecord.objects.filter(tenant_id=tenant_id, sequence__lte=through_sequence).values_list("pk", flat=True)
        )
        _delete(
            Review,
            list(
                Review.objects.filter(tenant_id=tenant_id, sequence__lte=through_sequence).values_list("pk", flat=True)
            ),
        )
        chunks = RetrievedChunk.objects.filter(record__tenant_id=tenant_id, record__sequence__lte=through_sequence)
        _delete(RetrievedChunk, list(chunks.values_list("pk", flat=True)))
        _delete(AuditRecord, records)
    return len(records)


def _delete(model, ids: list[int]) -> None:
    """Below the append-only query set (models.AppendOnlyQuerySet refuses every delete)."""
    from django.db.models.sql.subqueries import DeleteQuery

    if ids:
        DeleteQuery(model).delete_batch(ids, connection.alias)
