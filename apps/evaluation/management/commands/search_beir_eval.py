"""Retrieval quality of the search backend alone on a BEIR folder (default: the shared Cranfield
set): bm25, dense, hybrid by reciprocal rank and weighted, nDCG@10 / MRR@10 / Recall@100, beside
the plain-library reference figures. `--sweep` tries fusion parameters (how the defaults were tuned).

The corpus goes into a throwaway index (prefix `<prefix>-eval`), never into the tenants' one."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.corpus.embedding import get_embedder
from apps.evaluation import backend_eval, beir
from apps.search.backends.elasticsearch import ElasticsearchBackend
from apps.search.backends.embedded import EmbeddedBackend
from apps.search.types import Fusion, Mode

REFERENCE = {  # ../shared/datasets/README.md, plain libraries, same queries
    "bm25": 0.372,
    "dense": 0.372,
    "hybrid rrf": 0.426,
    "hybrid weighted": 0.411,
}


def eval_backend(name: str, workdir: Path):
    if name == "embedded":
        return EmbeddedBackend({"PATH": str(workdir / "eval-search.sqlite3")})
    if name == "elasticsearch":
        config = settings.SEARCH["ELASTICSEARCH"]
        return ElasticsearchBackend({**config, "INDEX_PREFIX": f"{config['INDEX_PREFIX']}-eval"})
    raise CommandError(f"Unknown backend {name!r}: use embedded or elasticsearch.")


class Command(BaseCommand):
    help = "Evaluate the search backend on a BEIR folder (default: the shared Cranfield set)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--folder", default=str(Path(settings.BASE_DIR).parent / "shared" / "datasets" / "cranfield")
        )
        parser.add_argument("--backend", default=settings.SEARCH_BACKEND, choices=["embedded", "elasticsearch"])
        parser.add_argument("--sweep", action="store_true", help="Also try RRF k and dense weights.")

    def handle(self, *args, folder, backend, sweep, **options):
        try:
            data = beir.load(folder)
        except beir.BeirFormatError as exc:
            raise CommandError(str(exc)) from exc
        cache = Path(settings.VAR_DIR) / "cache"
        search = eval_backend(backend, Path(settings.VAR_DIR))
        embedder = get_embedder()
        self.stdout.write(
            f"{data.name}: {len(data.corpus)} documents, {len(data.queries)} judged queries, backend {backend}"
        )
        backend_eval.load_corpus(search, data, embedder, cache_dir=cache)
        configs = list(backend_eval.STANDARD_CONFIGS)
        if sweep:
            configs += [backend_eval.Config(f"rrf k={k}", Mode.HYBRID, Fusion.RRF, rrf_k=k) for k in (10, 20, 40, 80)]
            configs += [
                backend_eval.Config(f"weighted {w:.2f}", Mode.HYBRID, Fusion.WEIGHTED, dense_weight=w)
                for w in (0.4, 0.5, 0.6, 0.7, 0.8)
            ]
        results = backend_eval.run(search, data, embedder, configs, cache_dir=cache)
        self.stdout.write(
            f"\n{'configuration':<22} {'nDCG@10':>8} {'MRR@10':>8} {'R@100':>8}   {'reference nDCG@10':>18}"
        )
        for label, result in results.items():
            m = result["metrics"]
            ref = REFERENCE.get(label)
            ref_text = f"{ref:.3f} ({m['nDCG@10'] - ref:+.3f})" if ref else ""
            self.stdout.write(
                f"{label:<22} {m['nDCG@10']:>8.3f} {m['MRR@10']:>8.3f} {m['Recall@100']:>8.3f}   {ref_text:>18}"
            )
        search.drop()  # a throwaway index: nothing of it stays
        search.close()
