"""Issue 15, item 6: list pages have a maximum size, and a limit or offset that is not a
non-negative ASCII integer in range is a 400 naming the field (never a 409 or a 500)."""

import pytest

from apps.tenants.models import Scope
from tests.conftest import key_client

MAX_PAGE_SIZE = 500  # apps/core/pagination.py, README's API section


@pytest.fixture
def keys_client(acme):
    return key_client(acme.key(scopes=[Scope.KEYS_MANAGE]))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=99999999999999999999", "limit"),
        (f"limit={MAX_PAGE_SIZE + 1}", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=²", "limit"),
        ("limit=١٢", "limit"),  # Arabic-Indic digits: int() takes them, a URL parameter should not
        ("offset=99999999999999999999", "offset"),
        ("offset=-5", "offset"),
        ("offset=x", "offset"),
        ("offset=²", "offset"),
    ],
)
def test_a_bad_limit_or_offset_is_a_400_naming_the_field(keys_client, query, field):
    response = keys_client.get(f"/api/v1/api-keys?{query}")
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert body["code"] == "invalid"
    assert field in body["extra"]["fields"]


@pytest.mark.django_db
def test_a_page_is_at_most_the_maximum_and_valid_paging_still_works(acme, keys_client):
    for _ in range(3):
        acme.key(scopes=[Scope.SEARCH])
    assert keys_client.get(f"/api/v1/api-keys?limit={MAX_PAGE_SIZE}").status_code == 200
    page = keys_client.get("/api/v1/api-keys?limit=2&offset=1").json()
    assert page["count"] == 4 and len(page["results"]) == 2
    assert "limit=2" in page["next"] or page["next"] is None
    assert len(keys_client.get("/api/v1/api-keys").json()["results"]) == 4  # the default page (50)


def test_the_maximum_is_the_documented_one():
    from apps.core.pagination import MAX_PAGE_SIZE as configured

    assert configured == MAX_PAGE_SIZE


def test_every_list_that_answers_a_page_documents_limit_and_offset():
    """The schema the API serves names ?limit= and ?offset= with their bounds on every paginated
    list (apps/core/schema.py), so schemathesis fuzzes them: in range, out of range, not numbers."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    pages = {
        (path, method): operation
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "Paginated" in str(operation.get("responses", {}).get("200", {}))
    }
    assert len(pages) >= 10  # users, groups, keys, collections, documents, versions, history, audit, golden sets, runs
    for (path, method), operation in pages.items():
        parameters = {p["name"]: p["schema"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert method == "get" and parameters.get("limit") == {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PAGE_SIZE,
        }, path
        assert parameters.get("offset", {}).get("minimum") == 0, path
