"""The metrics, against cases computed by hand."""

import math

import pytest

from apps.evaluation import metrics

QRELS = {"q1": {"a": 2, "b": 1}, "q2": {"c": 1}}


def test_ndcg_mrr_recall_by_hand():
    run = {"q1": {"x": 3.0, "a": 2.0, "b": 1.0}, "q2": {"y": 2.0, "z": 1.0}}
    values = metrics.per_query(QRELS, run, ["nDCG@10", "MRR@10", "Recall@2", "Recall@10"])
    # q1: gains 2 at rank 2, 1 at rank 3 (linear gains, log2 discount); ideal: 2 at rank 1, 1 at rank 2
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert values["nDCG@10"]["q1"] == pytest.approx(dcg / idcg)
    assert values["MRR@10"]["q1"] == pytest.approx(1 / 2)
    assert values["Recall@2"]["q1"] == pytest.approx(1 / 2)
    assert values["Recall@10"]["q1"] == pytest.approx(1.0)
    # q2 found nothing relevant: every measure is 0, and it still counts in the mean
    assert all(values[m]["q2"] == 0 for m in values)
    means = metrics.evaluate(QRELS, run, ["nDCG@10", "MRR@10"])
    assert means["MRR@10"] == pytest.approx(0.25)
    assert means["nDCG@10"] == pytest.approx(dcg / idcg / 2)


def test_a_query_the_run_never_answered_counts_as_zero():
    values = metrics.per_query(QRELS, {"q1": {"a": 1.0}}, ["nDCG@10"])
    assert values["nDCG@10"] == {"q1": pytest.approx(2 / (2 + 1 / math.log2(3))), "q2": 0.0}


def test_unknown_measures_are_refused():
    with pytest.raises(ValueError, match="Unknown measure"):
        metrics.measure("P@5")
    assert str(metrics.measure("Recall@50")) == "R@50"
