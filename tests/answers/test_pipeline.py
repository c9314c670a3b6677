"""The pipeline's declarations: each step names the PipelineRun fields it reads and writes, a
Pipeline refuses an order in which a field is read before it is written, and no step touches a
field it did not declare."""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from apps.answers import steps
from apps.answers.steps import ASK, RETRIEVE, SEARCH, Pipeline, PipelineError


def test_a_step_before_the_producer_of_its_input_is_refused():
    with pytest.raises(PipelineError) as refused:
        Pipeline((steps.ExpandQuery(), steps.EmbedQuery(), steps.Fuse(), steps.Search()))
    message = str(refused.value)
    assert "step 3 (Fuse, timed as 'fuse') reads ['search_query', 'bm25', 'dense']" in message
    assert "no earlier step writes" in message and "context, principals, request" in message


def test_a_field_that_does_not_exist_is_refused():
    class Typo(steps.Step):
        name = "typo"
        reads = ("rankd",)

        def __call__(self, run):
            pass

    with pytest.raises(PipelineError, match=r"names \['rankd'\], which are not fields of PipelineRun"):
        Pipeline((Typo(),))


def test_search_and_ask_differ_only_in_their_tails():
    assert SEARCH.steps[: len(RETRIEVE)] == ASK.steps[: len(RETRIEVE)] == RETRIEVE
    assert [s.name for s in SEARCH.steps[len(RETRIEVE) :]] == ["recheck", "select"]
    assert [s.name for s in ASK.steps[len(RETRIEVE) :]] == ["recheck", "context", "generate"]
    # Only an ask's context needs the chunks' parent sections: a search's re-check leaves them unread.
    assert (SEARCH.steps[len(RETRIEVE)].sections, ASK.steps[len(RETRIEVE)].sections) == (False, True)


def test_the_timing_names_are_those_the_response_and_the_audit_record_list():
    assert list(dict.fromkeys(s.name for s in SEARCH.steps)) == [
        "expand",
        "embed",
        "search",
        "fuse",
        "feedback",
        "rerank",
        "recheck",
        "select",
    ]
    assert list(dict.fromkeys(s.name for s in ASK.steps))[-2:] == ["context", "generate"]


@pytest.mark.parametrize("step", dict.fromkeys(type(s) for s in (*SEARCH.steps, *ASK.steps)), ids=lambda t: t.__name__)
def test_a_step_touches_only_the_fields_it_declares(step):
    """`run.<field>` in a step's own code: read only if declared in `reads`, set only if in `writes`
    (helpers take plain values, not the run, so this sees everything a step does with it)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(step.__call__)))
    accesses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "run"
    ]
    bare = [node for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id == "run"]
    assert len(bare) == len(accesses), f"{step.__name__} hands the whole run on: give helpers plain values"
    loaded = {node.attr for node in accesses if not isinstance(node.ctx, ast.Store)}
    stored = {node.attr for node in accesses if isinstance(node.ctx, ast.Store)}
    assert loaded <= set(step.reads), f"{step.__name__} reads {sorted(loaded - set(step.reads))} undeclared"
    assert stored <= set(step.writes), f"{step.__name__} writes {sorted(stored - set(step.writes))} undeclared"
