"""BEIR import, evaluation runs through the real pipeline, comparison, the end-to-end command."""

import pytest
from django.core.management import call_command

from apps.core.exceptions import ApplicationError, PermissionDenied
from apps.documents.models import Document
from apps.evaluation import services
from apps.evaluation.models import EvaluationRun, GoldenSet, RunQuery, RunStatus
from apps.search.backends import get_search_backend
from apps.tenants.models import Role, Tenant


@pytest.fixture
def imported(acme, beir_folder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        golden = services.beir_import(tenant=acme.tenant, folder=beir_folder, collection_name="Tiny", name="tiny")
    get_search_backend().refresh()
    return golden


@pytest.mark.django_db
def test_import_makes_documents_and_a_golden_set_with_graded_judgements(acme, imported, beir_folder):
    assert (
        Document.objects.filter(tenant=acme.tenant, collection__name="Tiny", published_version__isnull=False).count()
        == 6
    )
    questions = {q.external_id: q for q in imported.questions.prefetch_related("judgements__document")}
    assert set(questions) == {"1", "2", "3"}  # the unjudged query is not a golden question
    assert {(j.document.external_id, j.grade) for j in questions["1"].judgements.all()} == {("d1", 2), ("d6", 1)}
    again = services.beir_import(tenant=acme.tenant, folder=beir_folder, collection_name="Tiny", name="tiny")
    assert again.pk == imported.pk and again.questions.count() == 3  # re-import replaces, never duplicates
    assert Document.objects.filter(tenant=acme.tenant).count() == 6


@pytest.mark.django_db
def test_a_run_measures_each_question_and_records_its_configuration(acme, imported):
    run = services.run_start(golden_set=imported, config=services.RunConfig(mode="hybrid", k=10), run_as=acme.owner)
    run = services.run_execute(run=run)
    assert run.status == RunStatus.DONE and run.metrics["judged_questions"] == 3
    assert run.metrics["nDCG@10"] > 0.8 and run.metrics["MRR@10"] == 1.0  # the right paper first, every time
    assert run.config["mode"] == "hybrid" and run.config["chunking"] == {
        "size": 200,
        "overlap": 40,
        "strategy": "tokens",
    }
    assert run.config["embedding_model"] and run.code_version and run.run_as == "owner"
    flutter = RunQuery.objects.across_tenants().get(run=run, question__external_id="1")
    d1, d6 = (Document.objects.get(tenant=acme.tenant, external_id=x).pk for x in ("d1", "d6"))
    assert set(flutter.ranking[:2]) == {d1, d6} and len(flutter.ranking) == len(
        set(flutter.ranking)
    )  # one hit per document


@pytest.mark.django_db
def test_a_feedback_run_records_its_settings_and_a_bm25_one_is_refused(acme, imported, settings):
    settings.ANSWERS = {**settings.ANSWERS, "FEEDBACK_DOCUMENTS": 2, "FEEDBACK_QUERY_WEIGHT": 0.6}
    run = services.run_start(
        golden_set=imported, config=services.RunConfig(mode="hybrid", k=10, feedback=True), run_as=acme.owner
    )
    run = services.run_execute(run=run)
    assert run.status == RunStatus.DONE and run.label == "hybrid rrf + feedback"
    assert run.config["feedback"] is True and run.config["feedback_settings"] == {"documents": 2, "query_weight": 0.6}
    assert run.metrics["nDCG@10"] > 0.8
    with pytest.raises(ApplicationError, match="dense or hybrid"):
        services.run_start(
            golden_set=imported, config=services.RunConfig(mode="bm25", feedback=True), run_as=acme.owner
        )


@pytest.mark.django_db
def test_a_run_the_pipeline_would_refuse_is_refused_before_it_is_stored(acme, imported, settings):
    settings.ANSWERS = {**settings.ANSWERS, "RERANK_MODEL_PATH": ""}  # no cross-encoder configured
    with pytest.raises(ApplicationError, match="Re-ranking is not configured") as refused:
        services.run_start(golden_set=imported, config=services.RunConfig(rerank=True), run_as=acme.owner)
    assert refused.value.code == "rerank_unavailable"
    assert not EvaluationRun.objects.across_tenants().filter(golden_set=imported).exists()


@pytest.mark.django_db
def test_a_run_is_judged_against_its_golden_sets_collection_only(
    acme, imported, beir_folder, django_capture_on_commit_callbacks
):
    """The same corpus imported again under another chunking holds the same texts in other
    documents; those must not crowd the first golden set's ranking (they are not its judged ones)."""
    config = services.RunConfig(mode="bm25", k=10)
    before = services.run_execute(run=services.run_start(golden_set=imported, config=config, run_as=acme.owner))
    with django_capture_on_commit_callbacks(execute=True):
        services.beir_import(
            tenant=acme.tenant,
            folder=beir_folder,
            collection_name="Tiny small",
            name="tiny small",
            chunk_size=32,
            chunk_overlap=0,
        )
    get_search_backend().refresh()
    after = services.run_execute(run=services.run_start(golden_set=imported, config=config, run_as=acme.owner))
    assert after.metrics["nDCG@10"] == before.metrics["nDCG@10"] > 0.8
    tiny = set(Document.objects.across_tenants().filter(collection=imported.collection).values_list("pk", flat=True))
    assert all(set(q.ranking) <= tiny for q in RunQuery.objects.across_tenants().filter(run=after))


@pytest.mark.django_db
def test_a_run_acts_only_for_a_member_whose_role_may_evaluate(acme, imported):
    # A reader's role has no evaluation scope: no run acts for them, whoever starts it (resolution.act_for).
    with pytest.raises(PermissionDenied) as refused:
        services.run_start(golden_set=imported, config=services.RunConfig(), run_as=acme.reader)
    assert refused.value.code == "scope_missing" and refused.value.extra["required_scope"] == "evaluation"
    assert not EvaluationRun.objects.across_tenants().exists()


@pytest.mark.django_db
def test_answer_checks_cover_citations_and_support(acme, imported):
    run = services.run_execute(
        run=services.run_start(golden_set=imported, config=services.RunConfig(answers=True), run_as=acme.owner)
    )
    checks = run.answer_checks
    assert checks["questions"] == 3 and checks["grounded"] >= 2
    assert checks["citations_valid"] == checks["grounded"] and checks["support_rate"] == 1.0  # extractive: quotes


@pytest.mark.django_db
def test_comparison_lists_per_question_wins_and_losses(acme, imported):
    def run(mode):
        return services.run_execute(
            run=services.run_start(golden_set=imported, config=services.RunConfig(mode=mode), run_as=acme.owner)
        )

    dense, bm25 = run("dense"), run("bm25")
    for q in RunQuery.objects.across_tenants().filter(run=bm25):  # make one question clearly worse in the second run
        if q.question.external_id == "2":
            RunQuery.objects.across_tenants().filter(pk=q.pk).update(metrics={**q.metrics, "nDCG@10": 0.0})
    comparison = services.run_compare(before=dense, after=EvaluationRun.objects.across_tenants().get(pk=bm25.pk))
    assert [d.question for d in comparison.losses][:1] == ["buckling of cylindrical shells under compression"]
    assert comparison.losses[0].delta < 0 and comparison.losses[0].after == 0.0
    assert len(comparison.wins) + len(comparison.losses) + comparison.ties == 3


@pytest.mark.django_db
def test_the_end_to_end_command_prints_a_table_and_writes_a_plot(
    beir_folder, tmp_path, capsys, django_capture_on_commit_callbacks
):
    plot = tmp_path / "tiny.png"
    with django_capture_on_commit_callbacks(execute=True):
        call_command("evaluate_beir", str(beir_folder), "--tenant", "lab", "--as", "eve", "--plot", str(plot))
    out = capsys.readouterr().out
    assert "| configuration | nDCG@10 | MRR@10 | Recall@100 |" in out
    for label in (
        "bm25",
        "dense",
        "hybrid rrf",
        "hybrid weighted",
        "dense + feedback",
        "hybrid rrf + feedback",
        "hybrid weighted + feedback",
    ):
        assert f"| {label} |" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert EvaluationRun.objects.across_tenants().filter(golden_set__name="tiny", status=RunStatus.DONE).count() == 7
    assert GoldenSet.objects.across_tenants().get(name="tiny").tenant.memberships.get(username="eve").role == Role.OWNER


@pytest.mark.django_db
def test_the_command_refuses_rerank_without_a_model_before_importing_anything(beir_folder, settings):
    from django.core.management import CommandError

    settings.ANSWERS = {**settings.ANSWERS, "RERANK_MODEL_PATH": ""}
    with pytest.raises(CommandError, match="Re-ranking is not configured"):
        call_command("evaluate_beir", str(beir_folder), "--tenant", "lab", "--as", "eve", "--rerank")
    assert (
        not Tenant.objects.filter(slug="lab").exists()
        and not Document.objects.across_tenants().exists()
        and not GoldenSet.objects.across_tenants().exists()
    )


@pytest.mark.django_db
def test_the_command_refuses_a_folder_that_is_not_beir(tmp_path):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="not a BEIR folder"):
        call_command("evaluate_beir", str(tmp_path))
