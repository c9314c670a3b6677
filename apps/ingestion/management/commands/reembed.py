"""Re-embed what another model (or input convention) embedded: every version holding chunks whose
`embedding_model` is not the current model's identity, or sections whose sentences it did not embed
(ingested before sentence vectors were stored, or by another model), is ingested again (parse,
chunk, embed, store, index — idempotent, same chunk ids), in batches, with a progress bar. Search keeps serving
the published versions meanwhile; each batch is swapped in by one transaction and one index write.

    manage.py reembed [--tenant acme] [--dry-run]
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk, Section
from apps.corpus.sentences import segmented_by
from apps.ingestion import services
from apps.tenants.models import Tenant

BATCH = 128


class Command(BaseCommand):
    help = "Re-embed the chunks another embedding model (or input convention) made."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be re-embedded; change nothing.")

    def handle(self, *args, tenant, dry_run, **options):
        identity = get_embedder().identity
        if tenant:
            if not Tenant.objects.filter(slug=tenant).exists():
                raise CommandError(f"No tenant '{tenant}'.")
            chunks = Chunk.objects.filter(version__document__tenant__slug=tenant)
            sections = Section.objects.filter(version__document__tenant__slug=tenant)
        else:
            chunks = Chunk.objects.across_tenants()  # the whole corpus: an operator's model change
            sections = Section.objects.across_tenants()
        stale = chunks.exclude(embedding_model=identity).filter(version__purged_at__isnull=True)
        wanted = set(stale.values_list("version_id", flat=True))
        message = f"{len(wanted)} versions hold {stale.count()} chunks embedded by another model than {identity}"
        if settings.INGESTION["SENTENCE_VECTORS"]:
            unsentenced = sections.exclude(sentences_model=segmented_by(identity)).filter(
                version__purged_at__isnull=True
            )
            without = set(unsentenced.values_list("version_id", flat=True))
            message += f"; {len(without - wanted)} more have sections whose sentences it did not embed"
            wanted |= without
        version_ids = sorted(wanted)
        self.stdout.write(message)
        if dry_run or not version_ids:
            return
        failed = 0
        with tqdm(total=len(version_ids), unit="version", desc="re-embedding") as bar, logging_redirect_tqdm():
            for start in range(0, len(version_ids), BATCH):
                batch = version_ids[start : start + BATCH]
                failed += sum(1 for report in services.ingest_versions(version_ids=batch) if report.status != "ready")
                bar.update(len(batch))
        self.stdout.write(
            f"re-embedded {len(version_ids) - failed} versions"
            + (f", {failed} failed (see their status)" if failed else "")
        )
