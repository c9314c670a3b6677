"""Evaluation runs act for a member the one way everything else does (resolution.act_for): the
caller's scopes ∩ the member's role's, evaluation and search (ask with answers) required of the
result, checked when the run is started and again on the worker; every retrieval is audited."""

from unittest import mock

import pytest

from apps.audit import chain
from apps.audit.models import AuditRecord, Kind
from apps.evaluation import services
from apps.evaluation.models import EvaluationRun, RunStatus
from apps.search.backends import get_search_backend
from apps.tenants import keys
from apps.tenants import services as tenants
from apps.tenants.models import ApiKey, Role, Scope
from tests.conftest import key_client, user_client


@pytest.fixture
def golden(acme, beir_folder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        golden = services.beir_import(tenant=acme.tenant, folder=beir_folder, collection_name="Tiny", name="tiny")
    get_search_backend().refresh()
    return golden


def _key(world, *scopes):
    raw = world.key(scopes=list(scopes))
    return key_client(raw), ApiKey.objects.across_tenants().get(prefix=keys.parse_prefix(raw))


def _start(client, golden, capture, **body):
    with capture(execute=True):
        return client.post("/api/v1/evaluation/runs", {"golden_set": golden.pk, "k": 10, **body}, format="json")


@pytest.mark.django_db
def test_the_reviewers_reproduction_is_refused(acme, golden, django_capture_on_commit_callbacks):
    """A key with only evaluation and act_as_user: 403 from /search with as_user, and now from
    /evaluation/runs too — for a reader (no evaluation in the role), and for anyone without search."""
    client, _ = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER)
    response = client.post("/api/v1/search", {"query": "flutter", "as_user": "reader"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "scope_missing"

    for as_user, missing in (("reader", Scope.EVALUATION), ("owner", Scope.SEARCH)):
        response = _start(client, golden, django_capture_on_commit_callbacks, as_user=as_user, answers=True)
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "scope_missing" and response.json()["extra"]["required_scope"] == missing
    # A key that may search for an owner still may not ask through a run's answers without ask.
    searcher, _ = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER, Scope.SEARCH)
    response = _start(searcher, golden, django_capture_on_commit_callbacks, as_user="owner", answers=True)
    assert response.status_code == 403 and response.json()["extra"]["required_scope"] == Scope.ASK
    # Even a key holding every retrieval scope gets nothing for a reader: their role may not evaluate.
    full, _ = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER, Scope.SEARCH, Scope.ASK)
    response = _start(full, golden, django_capture_on_commit_callbacks, as_user="reader", answers=True)
    assert response.status_code == 403 and response.json()["extra"]["required_scope"] == Scope.EVALUATION
    assert not EvaluationRun.objects.across_tenants().exists() and not AuditRecord.objects.across_tenants().exists()


@pytest.mark.django_db
def test_members_evaluate_as_themselves_only_and_need_the_scopes_themselves(
    acme, golden, django_capture_on_commit_callbacks
):
    owner = user_client(acme.owner, "acme")
    response = _start(owner, golden, django_capture_on_commit_callbacks, as_user="reader")
    assert response.status_code == 403 and response.json()["code"] == "act_as_user_denied"
    themselves = _start(owner, golden, django_capture_on_commit_callbacks, as_user="owner")
    assert EvaluationRun.objects.across_tenants().get(pk=themselves.json()["id"]).status == RunStatus.DONE
    # A role without evaluation is refused, whatever it sends.
    carol = tenants.member_create(tenant=acme.tenant, username="carol", role=Role.COMPLIANCE)
    for member in (acme.reader, carol):
        assert _start(user_client(member, "acme"), golden, django_capture_on_commit_callbacks).status_code == 403


@pytest.mark.django_db
def test_a_run_acts_with_the_keys_scopes_and_the_members_role_intersected_and_is_audited(
    acme, golden, django_capture_on_commit_callbacks
):
    client, api_key = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER, Scope.SEARCH, Scope.ASK)
    seen = []
    real_search = services.search_run

    def spy(*, context, **kwargs):
        seen.append(context)
        return real_search(context=context, **kwargs)

    with mock.patch.object(services, "search_run", spy):
        response = _start(client, golden, django_capture_on_commit_callbacks, as_user="owner", answers=True)
    assert response.status_code == 202, response.content
    run = EvaluationRun.objects.across_tenants().get(pk=response.json()["id"])
    assert run.status == RunStatus.DONE, run.error
    intersected = {Scope.EVALUATION, Scope.SEARCH, Scope.ASK}  # the owner's role has no act_as_user
    assert set(run.scopes) == intersected and run.api_key == api_key and run.api_key_prefix == api_key.prefix
    assert response.json()["scopes"] == sorted(intersected) and response.json()["api_key_prefix"] == api_key.prefix
    # The worker acted with exactly those, never the owner's full role.
    assert len(seen) == golden.questions.count() and all(
        c.scopes == intersected and c.api_key == api_key and c.membership.username == "owner" for c in seen
    )

    records = list(AuditRecord.objects.filter(tenant=acme.tenant).order_by("sequence"))
    questions = golden.questions.count()
    assert [r.kind for r in records].count(Kind.SEARCH) == questions and [r.kind for r in records].count(
        Kind.ASK
    ) == questions
    for record in records:
        assert (
            record.username == "owner" and record.api_key_id == api_key.pk and record.api_key_prefix == api_key.prefix
        )
        assert record.acting_for_user and record.user_id == acme.owner.user_id
        assert record.parameters["evaluation_run"] == run.pk and record.parameters["golden_set"] == golden.pk
    # What came back: the search records hold the rankings the run stored.
    first = run.queries.order_by("question_id").first()
    search = next(r for r in records if r.kind == Kind.SEARCH and r.query == first.question.text)
    assert [c.document_id for c in search.chunks.filter(shown=True).order_by("rank")] == first.ranking
    assert chain.verify_tenant(acme.tenant).intact


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, code",
    [
        (lambda world, key: tenants.api_key_revoke(api_key=key), "api_key_revoked"),
        (lambda world, key: tenants.member_set_active(membership=world.owner, active=False), "user_not_found"),
        (lambda world, key: tenants.member_set_role(membership=world.owner, role=Role.READER), "scope_missing"),
        (lambda world, key: key.delete(), "api_key_deleted"),
    ],
)
def test_a_run_whose_key_or_member_changed_before_it_executes_fails_with_the_reason(
    acme, golden, change, code, django_capture_on_commit_callbacks
):
    client, api_key = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER, Scope.SEARCH)
    tenants.member_create(tenant=acme.tenant, username="other-owner", role=Role.OWNER)  # the tenant keeps an owner
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post("/api/v1/evaluation/runs", {"golden_set": golden.pk, "as_user": "owner"}, format="json")
    assert response.status_code == 202, response.content
    change(acme, api_key)
    for callback in queued:
        callback()
    run = EvaluationRun.objects.across_tenants().get(pk=response.json()["id"])
    assert run.status == RunStatus.FAILED and f"({code})" in run.error and "owner" in run.error, run.error
    assert not run.queries.exists() and not AuditRecord.objects.across_tenants().exists()


@pytest.mark.django_db
def test_a_member_who_started_a_run_and_is_deactivated_before_it_executes_fails_it(
    acme, golden, django_capture_on_commit_callbacks
):
    editor = tenants.member_create(tenant=acme.tenant, username="ed", role=Role.EDITOR)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = user_client(editor, "acme").post("/api/v1/evaluation/runs", {"golden_set": golden.pk}, format="json")
    assert response.status_code == 202 and response.json()["api_key_prefix"] == ""
    tenants.member_set_active(membership=editor, active=False)
    for callback in queued:
        callback()
    run = EvaluationRun.objects.across_tenants().get(pk=response.json()["id"])
    assert run.status == RunStatus.FAILED and "(membership_inactive)" in run.error, run.error


@pytest.mark.django_db
def test_a_key_revoked_during_a_run_stops_it_at_the_next_question(acme, golden, django_capture_on_commit_callbacks):
    client, api_key = _key(acme, Scope.EVALUATION, Scope.ACT_AS_USER, Scope.SEARCH)
    real_search = services.search_run

    def search_then_revoke(**kwargs):
        outcome = real_search(**kwargs)
        tenants.api_key_revoke(api_key=ApiKey.objects.across_tenants().get(pk=api_key.pk))
        return outcome

    with mock.patch.object(services, "search_run", search_then_revoke):
        response = _start(client, golden, django_capture_on_commit_callbacks, as_user="owner")
    run = EvaluationRun.objects.across_tenants().get(pk=response.json()["id"])
    assert run.status == RunStatus.FAILED and "(api_key_revoked)" in run.error
    assert AuditRecord.objects.across_tenants().count() == 1  # the one question searched before the revocation, audited


@pytest.mark.django_db
def test_the_command_runs_as_its_member_through_act_for_and_is_audited(acme, golden):
    editor = tenants.member_create(tenant=acme.tenant, username="ed", role=Role.EDITOR)
    run = services.run_execute(
        run=services.run_start(golden_set=golden, config=services.RunConfig(mode="bm25", k=10), run_as=editor)
    )
    assert run.status == RunStatus.DONE and run.scopes and run.api_key is None
    records = AuditRecord.objects.filter(tenant=acme.tenant)
    assert records.count() == golden.questions.count()
    assert all(
        r.username == "ed"
        and r.api_key_id is None
        and not r.acting_for_user
        and r.parameters["evaluation_run"] == run.pk
        for r in records
    )
