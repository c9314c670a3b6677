"""Bulk ingest: a folder of files, or a BEIR-format corpus.jsonl, into a tenant's collection.

Resumable and repeatable (see apps.ingestion.bulk): unchanged items already ingested are
skipped, half-done ones ingested again, changed ones get a new version. Prints documents/s and
chunks/s at the end.

    manage.py ingest_bulk --tenant acme --collection Handbook path/to/folder
    manage.py ingest_bulk --tenant acme --collection Cranfield ../shared/datasets/cranfield/corpus.jsonl --publish
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.exceptions import ApplicationError
from apps.documents import services as document_services
from apps.documents.models import Collection
from apps.ingestion import bulk
from apps.tenants.models import Tenant


class Command(BaseCommand):
    help = "Ingest a folder of files or a BEIR corpus.jsonl into a tenant's collection (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("source", help="A folder, or a BEIR corpus.jsonl file")
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--collection", required=True, help="Collection name (created if missing)")
        parser.add_argument("--publish", action="store_true", help="Publish each document once it is ready")
        parser.add_argument("--batch", type=int, default=128, help="Documents per embedding batch")
        parser.add_argument("--limit", type=int, default=None, help="Stop after this many items")

    def handle(self, *args, source, tenant, collection, publish, batch, limit, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant '{tenant}'.")
        try:
            items = bulk.source_items(Path(source))
            target = Collection.objects.filter(
                tenant=tenant_obj, name=collection
            ).first() or document_services.collection_create(tenant=tenant_obj, name=collection)
            report = bulk.ingest_items(collection=target, items=items, publish=publish, batch=batch, limit=limit)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(report.summary())
