"""Retrieval metrics through ir-measures (pytrec_eval underneath), not hand-written."""

from __future__ import annotations

import ir_measures
from ir_measures import RR, R, nDCG

from apps.core.params import is_ascii_digits

MEASURES = {"nDCG@10": nDCG @ 10, "MRR@10": RR @ 10, "Recall@10": R @ 10, "Recall@100": R @ 100}


def measure(name: str):
    """ "nDCG@10", "MRR@10", "Recall@<k>" → the ir-measures measure."""
    if name in MEASURES:
        return MEASURES[name]
    family, _, cutoff = name.partition("@")
    base = {"nDCG": nDCG, "MRR": RR, "Recall": R}.get(family)
    if base is None or not is_ascii_digits(cutoff):
        raise ValueError(f"Unknown measure {name!r}: use nDCG@k, MRR@k or Recall@k.")
    return base @ int(cutoff)


def _rows(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]):
    qrel_rows = [ir_measures.Qrel(q, d, rel) for q, docs in qrels.items() for d, rel in docs.items()]
    run_rows = [ir_measures.ScoredDoc(q, d, s) for q, docs in run.items() for d, s in docs.items()]
    return qrel_rows, run_rows


def per_query(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], names: list[str] | None = None
) -> dict[str, dict[str, float]]:
    """measure name → query id → value, for every judged query (0 where the run found nothing)."""
    names = names or list(MEASURES)
    by_measure = {str(measure(n)): n for n in names}
    values = {n: dict.fromkeys(qrels, 0.0) for n in names}
    for metric in ir_measures.iter_calc([measure(n) for n in names], *_rows(qrels, run)):
        values[by_measure[str(metric.measure)]][metric.query_id] = metric.value
    return values


def evaluate(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], names: list[str] | None = None
) -> dict[str, float]:
    """The mean of each measure over every judged query."""
    return {name: sum(v.values()) / len(v) if v else 0.0 for name, v in per_query(qrels, run, names).items()}
