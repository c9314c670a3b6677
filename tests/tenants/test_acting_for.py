"""One way to act for someone: every URL that retrieves resolves whom it runs for through
`resolution.act_for`.

Which URLs retrieve is found, not listed by hand: every URL pattern of the project is walked
(django.urls.get_resolver) and a view retrieves when its code — its methods and, transitively,
every function of apps/ they name — reaches the pipeline (`answers.steps.run_steps`) or starts an
evaluation run. Each of them must have a probe below, which calls it with `as_user` through a key
and proves the call went through act_for and that everything it audited names the key and the
member. A new retrieving endpoint without a probe fails `test_every_retrieving_url_has_a_probe`."""

from __future__ import annotations

import builtins
import dis
import inspect
import types
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from apps.answers import services as answer_services
from apps.answers import steps
from apps.audit.models import AuditRecord
from apps.evaluation import services as evaluation_services
from apps.evaluation.models import EvaluationRun, RunStatus
from apps.tenants import resolution
from apps.tenants.models import Scope
from tests.answers.conftest import library  # noqa: F401 (a fixture)
from tests.conftest import key_client

# Where retrieval happens: the pipeline itself, and starting an evaluation run (whose execution
# is queued through a task the static walk cannot follow).
SINKS = frozenset(
    {steps.run_steps, evaluation_services.run_start, evaluation_services.run_submit, evaluation_services.run_execute}
)


# ------------------------------------------------------------------------------ the static walk
def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _referenced(function: types.FunctionType):
    """The objects a function's code names: globals, and attributes of modules or classes."""
    namespace = function.__globals__
    for code in _code_objects(function.__code__):
        current = None
        for instruction in dis.get_instructions(code):
            if instruction.opname == "LOAD_GLOBAL":
                name = instruction.argval
                current = namespace.get(name, getattr(builtins, name, None))
            elif instruction.opname in ("LOAD_ATTR", "LOAD_METHOD") and isinstance(current, (types.ModuleType, type)):
                current = getattr(current, instruction.argval, None)
            else:
                current = None
                continue
            if current is not None:
                yield current


def _functions_of(obj):
    """The plain functions behind a callable or a class (its own methods, through its MRO in apps/)."""
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if klass.__module__.startswith("apps."):
                for member in vars(klass).values():
                    yield from _functions_of(
                        member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                    )
        return
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, types.MethodType):
        yield from _functions_of(obj.__func__)
        yield from _functions_of(type(obj.__self__))
    elif isinstance(obj, types.FunctionType):
        yield obj


def reaches_retrieval(obj, seen: set | None = None) -> bool:
    seen = set() if seen is None else seen
    for function in _functions_of(obj):
        if function in SINKS:
            return True
        if function in seen or not (function.__module__ or "").startswith("apps."):
            continue
        seen.add(function)
        for referenced in _referenced(function):
            followed = isinstance(referenced, (types.FunctionType, types.MethodType)) or (
                isinstance(referenced, type) and (referenced.__module__ or "").startswith("apps.")
            )
            if followed and reaches_retrieval(referenced, seen):
                return True
    return False


def url_views(patterns=None, prefix=""):
    """(route, view class or function) of every URL pattern of the project."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from url_views(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            yield route, getattr(callback, "view_class", None) or getattr(callback, "cls", None) or callback


def retrieving_routes() -> dict[str, object]:
    return {route: view for route, view in url_views() if reaches_retrieval(view)}


# ------------------------------------------------------------------------------ the probes
def _golden(library):
    golden = evaluation_services.golden_set_create(tenant=library.world.tenant, name="probe")
    evaluation_services.question_add(golden_set=golden, text="hotel nights per trip", judgements={library.travel.pk: 1})
    return golden


# route → (the member to act for, the body, what must have happened besides the audit records)
PROBES = {
    "api/v1/search": lambda library: ("alice", {"query": "hotel nights per trip"}),
    "api/v1/ask": lambda library: ("alice", {"query": "How many nights may I book in a hotel?"}),
    # Only a role that may evaluate can be acted for by a run (readers cannot): the owner.
    "api/v1/evaluation/runs": lambda library: ("owner", {"golden_set": _golden(library).pk, "k": 10, "answers": True}),
}
RETRIEVAL_SCOPES = [Scope.SEARCH, Scope.ASK, Scope.EVALUATION, Scope.ACT_AS_USER]


def test_every_retrieving_url_has_a_probe():
    found = retrieving_routes()
    assert set(found) == set(PROBES), (
        f"URLs that retrieve without a probe here: {sorted(set(found) - set(PROBES))}; "
        f"probes of URLs that no longer retrieve: {sorted(set(PROBES) - set(found))}"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(PROBES))
def test_acting_for_someone_goes_through_act_for_and_is_audited_as_both(
    route, library, django_capture_on_commit_callbacks
):
    as_user, body = PROBES[route](library)
    raw = library.world.key(scopes=RETRIEVAL_SCOPES)
    client = key_client(raw)
    before = AuditRecord.objects.across_tenants().order_by("-pk").values_list("pk", flat=True).first() or 0
    with (
        mock.patch.object(resolution, "act_for", wraps=resolution.act_for) as act_for,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(f"/{route}", {**body, "as_user": as_user}, format="json")
    assert response.status_code in (200, 202), response.content
    assert act_for.call_count >= 1 and all(call.kwargs.get("as_user") == as_user for call in act_for.call_args_list)
    records = list(AuditRecord.objects.across_tenants().filter(pk__gt=before))
    assert records, "a retrieval must leave an audit record"
    member = {"alice": library.alice, "owner": library.world.owner}[as_user]
    for record in records:
        assert record.username == as_user and record.user_id == member.user_id and record.acting_for_user
        assert record.api_key_prefix == raw.split("_")[1]
    if route == "api/v1/evaluation/runs":
        run = EvaluationRun.objects.across_tenants().get(pk=response.json()["id"])
        assert run.status == RunStatus.DONE, run.error
        # submitted, then once per question on the worker
        assert act_for.call_count == 1 + run.queries.count()
        assert all(r.parameters["evaluation_run"] == run.pk for r in records)


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(PROBES))
def test_without_act_as_user_no_retrieving_url_acts_for_anyone(route, library, django_capture_on_commit_callbacks):
    as_user, body = PROBES[route](library)
    client = key_client(library.world.key(scopes=[s for s in RETRIEVAL_SCOPES if s != Scope.ACT_AS_USER]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/{route}", {**body, "as_user": as_user}, format="json")
    assert response.status_code == 403 and response.json()["extra"]["required_scope"] == Scope.ACT_AS_USER
    assert (
        not AuditRecord.objects.across_tenants().filter(username=as_user).exists()
        and not EvaluationRun.objects.across_tenants().exists()
    )


@pytest.mark.django_db
def test_the_audited_services_refuse_a_context_act_for_did_not_resolve(library):
    from apps.answers.types import RetrievalRequest

    context = resolution.member_context(library.alice)  # whom it acts for was never resolved
    with pytest.raises(RuntimeError, match="act_for"):
        answer_services.search_run(context=context, request=RetrievalRequest(query="hotel"))
    assert not AuditRecord.objects.across_tenants().exists()
    resolved = resolution.act_for(context, require=(Scope.SEARCH,))
    assert (
        answer_services.search_run(context=resolved, request=RetrievalRequest(query="hotel")).record.username == "alice"
    )


# ------------------------------------------------------------------------------ the walk itself
def _helper_that_searches(context, request):
    return answer_services.search_run(context=context, request=request)


class _RetrievesThroughAHelper:
    def post(self, request):
        return _helper_that_searches(None, None)


class _RetrievesThroughAMethod:
    def post(self, request):
        return self._go()

    def _go(self):
        return evaluation_services.run_submit(golden_set=None, config=None)


class _DoesNotRetrieve:
    def get(self, request):
        return evaluation_services.run_compare(before=None, after=None)


def test_the_walk_finds_retrieval_through_helpers_and_methods(monkeypatch):
    # The walk follows functions of apps/ only: make these look like they live there.
    for thing in (_helper_that_searches, _RetrievesThroughAHelper, _RetrievesThroughAMethod, _DoesNotRetrieve):
        monkeypatch.setattr(thing, "__module__", "apps.probe")
    for klass in (_RetrievesThroughAHelper, _RetrievesThroughAMethod, _DoesNotRetrieve):
        for function in vars(klass).values():
            if isinstance(function, types.FunctionType):
                monkeypatch.setattr(function, "__module__", "apps.probe")
    assert reaches_retrieval(_RetrievesThroughAHelper) and reaches_retrieval(_RetrievesThroughAMethod)
    assert not reaches_retrieval(_DoesNotRetrieve)
    assert reaches_retrieval(answer_services.ask_run) and reaches_retrieval(evaluation_services.run_execute)


def test_nothing_in_apps_calls_the_unaudited_pipeline():
    """pipeline_run retrieves without the act-as check and without an audit record: tests only."""
    apps = Path(settings.BASE_DIR) / "apps"
    callers = [
        str(p.relative_to(apps))
        for p in apps.rglob("*.py")
        if "pipeline_run" in p.read_text() and p != apps / "answers" / "services.py"
    ]
    assert callers == []
