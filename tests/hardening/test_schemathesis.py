"""schemathesis against the OpenAPI schema: every operation, fuzzed through the Django WSGI
application in-process, must never answer 5xx, and what it answers must match the schema.

* The schema is the one the application serves (GET /api/schema/?format=json, loaded through the
  same WSGI application with `schemathesis.openapi.from_wsgi`), so a view whose annotations drift
  from its behaviour fails here. One pytest test per operation.
* The caller is a tenant app's API key with every scope, on a tenant holding an object of every
  kind (tests/hardening/test_tenant_isolation.py's `build_world`: members, groups, keys, a
  collection with grants, an ingested document with two versions and grants of its own, an audit
  record with a review, a golden set with a question, two evaluation runs). Generated path ids are
  often swapped for the ids of those objects (`flatmap_path_parameters` below), so fuzzing reaches
  real objects as well as ids that name nothing.
* Checks: no server error; the body matches the schema documented for its status; the content
  type is the documented one; a success status is a documented one (a 200 where the schema
  promises 204 is a mismatch too); input the schema forbids (negative mode) is refused with a 4xx,
  except a blank value in a query string or form body, which DRF reads as "not given".
* The tenant is built once for the module; each operation's test runs in a savepoint, so the
  writes of one operation's fuzzing (deletes, renames, uploads) pile up within that operation's
  cases and never reach the next operation's.

Bounded and reproducible: a fixed seed and a few examples per operation and mode (SETTINGS). Nothing
is excluded: file uploads go through WSGI like any body.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation

from tests.hardening.test_tenant_isolation import build_world, data_built_once

SCHEMA_PATH = "/api/schema/?format=json"

SETTINGS = {
    # The same cases on every run, so CI is reproducible; change the seed locally to explore more.
    "seed": 20_260_601,
    "generation": {
        "mode": "all",  # valid input, and input the schema forbids (which must be refused with a 4xx)
        "max-examples": 10,  # per operation and mode, in the fuzzing phase
        "with-security-parameters": False,  # the key is sent by the test, not fuzzed
        "database": "none",  # no .hypothesis/ directory: the seed already makes failures repeatable
    },
}

# Django's WSGI application, called in-process. Loading the schema needs no database.
APP = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, APP, config=schemathesis.Config.from_dict(SETTINGS))

# Path parameter → ids of the tenant's real objects; filled by the `tenant` fixture before any case
# is generated (hooks run when Hypothesis draws, inside the test).
REAL_IDS: dict[str, list] = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Each generated id may become the id of a real object. Only values of the right type are
    swapped: a negative case's deliberately wrong path value (a word for an integer id) stays."""
    if not path_parameters:
        return st.just(path_parameters)
    choices = {}
    for name, value in path_parameters.items():
        ids = REAL_IDS.get(name)
        if ids and type(value) is type(ids[0]):
            choices[name] = st.sampled_from([value, *ids])
        else:
            choices[name] = st.just(value)
    return st.fixed_dictionaries(choices)


@schemathesis.check
def success_status_is_documented(ctx, response, case):
    """A 2xx the schema does not list is a schema mismatch: a client told 204 gets 200 and a body.
    (Error statuses are not listed per operation; they share the one error body of
    apps/core/exception_handler.py.)"""
    if case.method.upper() != case.operation.method.upper():
        return None  # schemathesis also probes other methods (OPTIONS, say), which no operation documents
    if 200 <= response.status_code < 300:
        documented = {str(code) for code in case.operation.responses.status_codes}
        if str(response.status_code) not in documented and "default" not in documented:
            raise AssertionError(
                f"{case.operation.label} answered {response.status_code}; the schema documents {sorted(documented)}"
            )


FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _sent_value(case, location: ParameterLocation, parameter: str | None, path: tuple) -> object:
    """The value a negative case carried at the place it broke, or None where that cannot be told
    (or the place is neither a query parameter nor a field of a form-encoded body)."""
    if location == ParameterLocation.QUERY:
        return (case.query or {}).get(parameter)
    if location == ParameterLocation.BODY and (case.media_type or "").split(";")[0] in FORM_MEDIA_TYPES:
        value = case.body
        for step in path:
            if not isinstance(value, dict) or step not in value:
                return None
            value = value[step]
        return value if path else None
    return None


def _broken_places(case) -> list[tuple]:
    """Where a negative case broke the schema: its recorded mutations (fuzzing phase), or the one
    place the coverage phase names with a schema pointer such as /properties/as_user/minLength."""
    data = case.meta.phase.data
    if data.mutations:
        return [(m.parameter_location, m.parameter, tuple(m.path)) for m in data.mutations]
    segments = (data.location or "").strip("/").split("/")
    path = tuple(segments[i + 1] for i, segment in enumerate(segments[:-1]) if segment == "properties")
    return [(data.parameter_location, data.parameter, path)]


def _blank_is_absent(case) -> bool:
    """DRF reads an empty value in a query string or a form body as "not given" (its HTML-input
    semantics: a form's blank field), whatever the field's own constraints. A negative case whose
    every violation is such an empty value is the valid request without those fields."""
    if case.meta is None:
        return False
    return all(_sent_value(case, *place) == "" for place in _broken_places(case))


def _form_without_fields(case) -> bool:
    """A form-encoded body that is not an object at all (a bare number, null, a string) carries no
    fields: DRF's form parsers read it as an empty form, which is a valid request wherever every
    field is optional (a PATCH that changes nothing, a publish without a reason)."""
    if case.meta is None or (case.media_type or "").split(";")[0] not in FORM_MEDIA_TYPES:
        return False
    return not isinstance(case.body, dict) and all(
        place[0] == ParameterLocation.BODY and not place[2] for place in _broken_places(case)
    )


@schemathesis.check
def negative_data_is_refused(ctx, response, case):
    """schemathesis's negative_data_rejection, except for blank form/query values (_blank_is_absent)
    and form bodies without fields (_form_without_fields)."""
    try:
        return negative_data_rejection(ctx, response, case)
    except AcceptedNegativeData:
        if _blank_is_absent(case) or _form_without_fields(case):
            return None
        raise


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    success_status_is_documented,
    negative_data_is_refused,
]


@pytest.fixture(autouse=True)
def _fresh_search_index():
    """Replaces tests/conftest.py's per-test index: this module's index is built once, in `tenant`."""
    yield


@pytest.fixture(scope="module")
def tenant(django_db_setup, django_db_blocker, tmp_path_factory):
    with data_built_once(django_db_blocker, tmp_path_factory, "schemathesis"):
        world = build_world("acme", "anvil")
        values = world.values()
        REAL_IDS.update(
            {
                "collection_id": [values["collection"]],
                "document_id": [values["document"]],
                "number": [v.number for v in world.versions],
                "group_id": [values["group"], world.tenant.groups.get(is_everyone=True).pk],
                "username": [values["member"], world.owner.username],
                "prefix": [values["api_key"]],
                "record_id": [values["audit_record"]],
                "golden_set_id": [values["golden_set"]],
                "question_id": [values["question"]],
                "run_id": [values["run"], values["run#2"]],
                "other_id": [values["run#2"], values["run"]],
            }
        )
        yield world
        REAL_IDS.clear()


@pytest.fixture(autouse=True)
def _keep_the_connection():
    """Django's handler closes the database connection when a request starts and ends; the module's
    transaction (and so its data) lives on that connection. Django's own test client disconnects
    these signals the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


CALLS: dict[str, int] = {}  # requests sent per operation, reported at the end of the module


@pytest.fixture(scope="module", autouse=True)
def _report_calls(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CALLS:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"\n[schemathesis] {sum(CALLS.values())} requests over {len(CALLS)} operations "
                f"(fewest {min(CALLS.values())}, most {max(CALLS.values())} per operation)"
            )


@pytest.mark.django_db
@schema.parametrize()
def test_api_conforms_to_its_schema(case, tenant):
    unknown = sorted(set(case.path_parameters or {}) - set(REAL_IDS))
    assert not unknown, f"path parameter(s) {unknown} have no real objects to reach: add their ids in `tenant`"
    CALLS[case.operation.label] = CALLS.get(case.operation.label, 0) + 1
    case.call_and_validate(headers={"Authorization": f"Api-Key {tenant.caller_key}"}, checks=CHECKS)
