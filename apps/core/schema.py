"""OpenAPI post-processing (drf-spectacular POSTPROCESSING_HOOKS)."""

from __future__ import annotations

from .pagination import MAX_PAGE_SIZE
from .params import MAX_BIGINT

PAGE_PARAMETERS = [
    {
        "in": "query",
        "name": "limit",
        "required": False,
        "description": f"Rows per page, 1 to {MAX_PAGE_SIZE} (default 50); anything else is a 400.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    },
    {
        "in": "query",
        "name": "offset",
        "required": False,
        "description": "Rows to skip (default 0).",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_BIGINT - MAX_PAGE_SIZE},
    },
]


def _answers_a_page(operation: dict) -> bool:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    return name.startswith("Paginated") and name.endswith("List")


def pagination_parameters(result, generator, request, public):
    """Every operation that answers a page (apps/core/pagination.paginated_schema) documents
    ?limit= and ?offset= with their bounds, so clients see them and the schema-driven fuzzing
    (tests/hardening/test_schemathesis.py) sends them, in range and out of it. Added here, once,
    rather than on each view, so no list can forget them."""
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method != "get" or not _answers_a_page(operation):
                continue
            present = {(p.get("in"), p.get("name")) for p in operation.get("parameters", [])}
            operation.setdefault("parameters", []).extend(
                dict(p) for p in PAGE_PARAMETERS if (p["in"], p["name"]) not in present
            )
    return result
