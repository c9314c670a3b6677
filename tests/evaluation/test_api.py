"""Golden sets and runs through the API."""

import pytest

from apps.tenants.models import Scope
from tests.conftest import key_client, user_client


@pytest.fixture
def owner(acme):
    return user_client(acme.owner, "acme")


@pytest.mark.django_db
def test_manage_a_golden_set_and_run_it(acme, owner, django_capture_on_commit_callbacks):
    from apps.documents import services as documents
    from tests.answers.conftest import TRAVEL, add_document

    collection = documents.collection_create(tenant=acme.tenant, name="Handbook")
    travel = add_document(acme.tenant, collection, "Travel policy", TRAVEL, django_capture_on_commit_callbacks)
    from apps.search.backends import get_search_backend

    get_search_backend().refresh()
    golden = owner.post("/api/v1/evaluation/golden-sets", {"name": "handbook"}, format="json").json()
    response = owner.post(
        f"/api/v1/evaluation/golden-sets/{golden['id']}/questions",
        {"text": "What is the hotel limit per night?", "judgements": [{"document": travel.pk, "grade": 2}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    detail = owner.get(f"/api/v1/evaluation/golden-sets/{golden['id']}").json()
    assert detail["questions"][0]["judgements"] == [{"document": travel.pk, "grade": 2}]

    with django_capture_on_commit_callbacks(execute=True):
        started = owner.post(
            "/api/v1/evaluation/runs", {"golden_set": golden["id"], "mode": "bm25", "k": 10}, format="json"
        )
    assert started.status_code == 202, started.content
    run = owner.get(f"/api/v1/evaluation/runs/{started.json()['id']}").json()
    assert run["status"] == "done" and run["metrics"]["nDCG@10"] == 1.0 and run["run_as"] == "owner"
    assert run["queries"][0]["ranking"][0] == travel.pk
    with django_capture_on_commit_callbacks(execute=True):
        second = owner.post(
            "/api/v1/evaluation/runs", {"golden_set": golden["id"], "mode": "dense", "k": 10}, format="json"
        ).json()
    comparison = owner.get(f"/api/v1/evaluation/runs/{run['id']}/compare/{second['id']}").json()
    assert (
        comparison["measure"] == "nDCG@10"
        and comparison["ties"] + len(comparison["wins"]) + len(comparison["losses"]) == 1
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"text": "", "judgements": []}, "text"),
        ({"text": "q", "judgements": [{"document": "x"}]}, "judgements"),
        ({"text": "q", "judgements": [{"document": 1, "grade": 0}]}, "judgements"),
        ({"text": "q", "judgements": [{"document": 99999}]}, "judgements"),
        ({"text": "q", "judgements": [], "answer": "a"}, "answer"),
    ],
)
def test_bad_questions_are_400s(owner, body, field):
    golden = owner.post("/api/v1/evaluation/golden-sets", {"name": "g"}, format="json").json()
    response = owner.post(f"/api/v1/evaluation/golden-sets/{golden['id']}/questions", body, format="json")
    assert response.status_code == 400 and field in response.json()["extra"]["fields"], response.json()


@pytest.mark.django_db
def test_runs_need_the_scope_and_keys_name_whose_access(acme, globex, owner):
    golden = owner.post("/api/v1/evaluation/golden-sets", {"name": "g"}, format="json").json()
    reader = user_client(acme.reader, "acme")
    assert reader.post("/api/v1/evaluation/runs", {"golden_set": golden["id"]}, format="json").status_code == 403
    key = key_client(acme.key(scopes=[Scope.EVALUATION]))
    response = key.post("/api/v1/evaluation/runs", {"golden_set": golden["id"]}, format="json")
    assert response.status_code == 400 and "as_user" in response.json()["extra"]["fields"]
    other = key_client(globex.key(scopes=[Scope.EVALUATION, Scope.ACT_AS_USER]))
    assert other.get(f"/api/v1/evaluation/golden-sets/{golden['id']}").status_code == 404
    assert (
        other.post(
            "/api/v1/evaluation/runs", {"golden_set": golden["id"], "as_user": "owner"}, format="json"
        ).status_code
        == 404
    )
    assert owner.post("/api/v1/evaluation/golden-sets", {"name": "g"}, format="json").status_code == 400
