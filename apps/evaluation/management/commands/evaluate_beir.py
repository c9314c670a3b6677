"""A BEIR folder evaluated end to end: import (ingest the corpus into a collection, the judged
queries into a golden set), then one evaluation run per mode through the real pipeline; prints a
table and writes a bar chart.

    manage.py evaluate_beir ../shared/datasets/cranfield --tenant eval --as evaluator \\
        [--plot docs/evaluation/cranfield.png] [--answers] [--rerank] [--queries 20]

The tenant and member are created if missing (the member as the tenant's owner, who reads
everything). Re-running skips what is already ingested."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.core.exceptions import ApplicationError
from apps.evaluation import beir, report, services
from apps.evaluation.models import RunStatus
from apps.tenants import resolution
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership, Role, Tenant

MEASURES = ["nDCG@10", "MRR@10", "Recall@100"]
# Plain-library figures on the shared Cranfield queries (shared/datasets/README.md).
CRANFIELD_REFERENCE = {
    "bm25": {"nDCG@10": 0.372, "Recall@100": 0.750, "MRR@10": 0.516},
    "dense": {"nDCG@10": 0.372, "Recall@100": 0.772, "MRR@10": 0.533},
    "hybrid rrf": {"nDCG@10": 0.426, "Recall@100": 0.801, "MRR@10": 0.593},
    "hybrid weighted": {"nDCG@10": 0.411, "Recall@100": 0.806, "MRR@10": 0.575},
}


class Command(BaseCommand):
    help = "Import a BEIR folder into a tenant and evaluate every retrieval mode; table and plot."

    def add_arguments(self, parser):
        parser.add_argument("folder")
        parser.add_argument("--tenant", default="eval", help="Tenant slug (created if missing).")
        parser.add_argument(
            "--as",
            dest="username",
            default="evaluator",
            help="Member whose access is evaluated (created as owner if missing).",
        )
        parser.add_argument("--collection", default=None, help="Collection name (default: the folder's name).")
        parser.add_argument("--plot", default=None, help="Where to write the chart (PNG).")
        parser.add_argument(
            "--answers", action="store_true", help="Also ask every question and check the answers' citations."
        )
        parser.add_argument(
            "--rerank", action="store_true", help="Add a re-ranked hybrid run (needs RERANK_MODEL_PATH)."
        )
        parser.add_argument("--chunk-size", type=int, help="Tokens per chunk of a new collection (default 200).")
        parser.add_argument("--chunk-overlap", type=int, help="Overlap of a new collection (default 40).")
        parser.add_argument(
            "--queries", type=int, default=None, help="Evaluate only the first N questions (a quick look)."
        )

    def handle(
        self,
        *args,
        folder,
        tenant,
        username,
        collection,
        plot,
        answers,
        rerank,
        queries,
        chunk_size,
        chunk_overlap,
        **options,
    ):
        folder_path = Path(folder)
        try:
            name = beir.load(folder_path).name
        except beir.BeirFormatError as exc:
            raise CommandError(str(exc)) from exc
        chunking = {
            k: v for k, v in {"chunk_size": chunk_size, "chunk_overlap": chunk_overlap}.items() if v is not None
        }
        configs = [
            services.RunConfig(**{**config.__dict__, "answers": answers, "limit": queries})
            for config in services.STANDARD_CONFIGS
        ]
        if rerank:
            configs.append(services.RunConfig(mode="hybrid", fusion="rrf", rerank=True, answers=answers, limit=queries))
        try:
            for config in configs:  # before the import, which takes minutes
                services.config_check(config)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        membership = self._member(tenant, username)
        try:  # whom the runs act for (resolution.act_for), before the import too
            for config in configs:
                services.run_acting(caller=resolution.member_context(membership), config=config)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        try:
            golden = services.beir_import(
                tenant=membership.tenant,
                folder=folder_path,
                collection_name=collection or name,
                name=collection or name,
                stdout=self.stdout,
                **chunking,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        runs = []
        for config in configs:
            try:
                run = services.run_start(golden_set=golden, config=config, run_as=membership)
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            runs.append(services.run_execute(run=run, progress=True))
            if run.status != RunStatus.DONE:
                raise CommandError(f"run {run.pk} {run.label}: {run.error}")
            self.stdout.write(
                f"run {run.pk} {run.label:<18} " + "  ".join(f"{m} {run.metrics[m]:.3f}" for m in MEASURES)
            )
        reference = CRANFIELD_REFERENCE if name == "cranfield" and not queries else None
        name = golden.name
        self.stdout.write("")
        self.stdout.write(
            f"{name}: {runs[0].metrics.get('judged_questions')} judged questions, {membership.tenant.slug} tenant, "
            f"backend {runs[0].config['search_backend']}, code {runs[0].code_version}"
        )
        self.stdout.write(report.table(runs, MEASURES, reference))
        if answers:
            for run in runs:
                self.stdout.write(f"answers ({run.label}): {run.answer_checks}")
        if plot:
            path = report.plot(runs, MEASURES, Path(plot), f"{name} — {runs[0].config['search_backend']} backend")
            self.stdout.write(f"plot: {path}")

    @staticmethod
    @transaction.atomic
    def _member(slug: str, username: str) -> Membership:
        tenant = Tenant.objects.filter(slug=slug).first() or tenant_services.tenant_create(slug=slug, name=slug.title())
        membership = Membership.objects.filter(tenant=tenant, username=username).first()
        return membership or tenant_services.member_create(tenant=tenant, username=username, role=Role.OWNER)
