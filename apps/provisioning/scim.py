"""SCIM 2.0 (RFC 7643 resources, RFC 7644 protocol) translated to and from the tenant's members and
groups. No writes here: `resources.py` decides and calls the tenant services; this module only
knows what the protocol's JSON means.

What a User and a Group are here:

=================================  ===============================================================
SCIM                               the platform
=================================  ===============================================================
User ``id``                        the membership's primary key (one person in one tenant)
``userName``                       the member's tenant-local username (case-insensitive on filter)
``externalId``                     Membership.external_id: the directory's own id
``name.givenName`` / ``familyName`` the user's first and last name
``emails`` (primary, else first)   the user's email
``active``                         Membership.is_active: false refuses the person's next request
Group ``id``, ``displayName``      the TenantGroup's primary key and name (not 'everyone': that
                                   group is the platform's own, so SCIM neither sees nor edits it)
``members[].value``                User ids of the same tenant
=================================  ===============================================================

Attributes the platform does not keep (``title``, ``phoneNumbers``, the enterprise extension, …)
are accepted and not stored, so a directory that sends its full profile is not refused over them;
reads do not return them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q
from scim2_filter_parser import ast
from scim2_filter_parser.lexer import SCIMLexer
from scim2_filter_parser.parser import SCIMParser, SCIMParserError

from apps.core.exceptions import ApplicationError
from apps.core.params import MAX_BIGINT

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

MAX_PAGE = 200  # ServiceProviderConfig's filter.maxResults

# What /Schemas describes: name -> (type, required, mutability). The mapping is in the module's docstring.
USER_ATTRIBUTES = {
    "id": ("string", False, "readOnly"),
    "userName": ("string", True, "readWrite"),
    "externalId": ("string", False, "readWrite"),
    "name": ("complex", False, "readWrite"),
    "emails": ("complex", False, "readWrite"),
    "active": ("boolean", False, "readWrite"),
    "groups": ("complex", False, "readOnly"),
}
GROUP_ATTRIBUTES = {
    "id": ("string", False, "readOnly"),
    "displayName": ("string", True, "readWrite"),
    "externalId": ("string", False, "readWrite"),
    "members": ("complex", False, "readWrite"),
}


class ScimError(ApplicationError):
    """An error in SCIM's own shape (RFC 7644 §3.12): `scim_type` is its `scimType`, when one fits."""

    def __init__(self, message: str, *, status: int = 400, scim_type: str | None = None, code: str | None = None):
        super().__init__(message, code=code or scim_type or "invalid")
        self.status_code = status
        self.scim_type = scim_type


def error_body(message: str, status: int, scim_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": message}
    if scim_type:
        body["scimType"] = scim_type
    return body


# --------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class Filterable:
    """An attribute a filter may name: the ORM field it reads, and whether it compares exactly."""

    lookup: str
    case_exact: bool


USER_FILTERS = {
    "id": Filterable("pk", True),
    "username": Filterable("username", False),  # RFC 7643 §4.1.1: userName is caseExact false
    "externalid": Filterable("external_id", True),
}
GROUP_FILTERS = {
    "id": Filterable("pk", True),
    "displayname": Filterable("name", False),
    "externalid": Filterable("external_id", True),
}


MAX_FILTER_LENGTH = 1000  # far more than a directory sends; a bound on the parser's and _to_q's work
MAX_FILTER_DEPTH = 8


def parse_filter(text: str) -> ast.Filter:
    """A filter's syntax tree, refused (400 invalidFilter) unless it means one thing only: a literal
    other than a string or a number (`eq null`, `eq true` would be compared as text), `and` and `or`
    mixed at one level without parentheses (the library gives them one precedence, RFC 7644 binds
    `and` tighter: the two would answer differently), nesting beyond MAX_FILTER_DEPTH."""
    if len(text) > MAX_FILTER_LENGTH:
        raise ScimError(f"A filter has at most {MAX_FILTER_LENGTH} characters.", scim_type="invalidFilter")
    try:
        tokens = list(SCIMLexer().tokenize(text))
    except ValueError as exc:  # the lexer's "Illegal character"
        raise ScimError(f"The filter {text!r} is not a SCIM filter: {exc}.", scim_type="invalidFilter") from None
    operators: list[set[str]] = [set()]  # the logical operators met at each open level of nesting
    for token in tokens:
        if token.type in ("LPAREN", "LBRACKET"):
            operators.append(set())
            if len(operators) > MAX_FILTER_DEPTH:
                raise ScimError(f"A filter nests at most {MAX_FILTER_DEPTH} levels.", scim_type="invalidFilter")
        elif token.type in ("RPAREN", "RBRACKET") and len(operators) > 1:
            operators.pop()
        elif token.type in ("AND", "OR"):
            operators[-1].add(token.type)
            if len(operators[-1]) > 1:
                raise ScimError(
                    "Put parentheses around the 'and' or the 'or' parts: mixed at one level they are ambiguous.",
                    scim_type="invalidFilter",
                )
        elif token.type in ("TRUE", "FALSE", "NULL"):
            raise ScimError(
                f"Filters compare with a quoted string: {token.value} is not one.", scim_type="invalidFilter"
            )
    try:
        return SCIMParser().parse(iter(tokens))
    except SCIMParserError as exc:
        raise ScimError(f"The filter {text!r} is not a SCIM filter: {exc}.", scim_type="invalidFilter") from None


def filter_q(text: str, attributes: dict[str, Filterable], *, schema: str) -> Q:
    """A SCIM filter as a Django Q: `eq` on the attributes given, of the resource's own `schema`,
    combined with and, or, not. Anything else is a 400 invalidFilter naming what is supported,
    never a silently wider list."""
    return _to_q(parse_filter(text), attributes, schema.lower())


def _to_q(node: Any, attributes: dict[str, Filterable], schema: str) -> Q:
    if isinstance(node, ast.Filter):
        if node.namespace is not None:
            raise _unsupported_filter(attributes)
        inner = _to_q(node.expr, attributes, schema)
        return ~inner if node.negated else inner
    if isinstance(node, ast.LogExpr):
        left, right = _to_q(node.expr1, attributes, schema), _to_q(node.expr2, attributes, schema)
        return left & right if node.op.lower() == "and" else left | right
    if isinstance(node, ast.AttrExpr):
        path = node.attr_path
        attribute = attributes.get(str(path.attr_name).lower())
        if (
            node.value.lower() != "eq"
            or attribute is None
            or path.sub_attr is not None
            or (
                path.uri is not None and str(path.uri).lower() != schema
            )  # the enterprise extension's userName is not ours
            or node.comp_value is None
        ):
            raise _unsupported_filter(attributes)
        value = str(node.comp_value.value)
        if attribute.lookup == "pk":
            pk = as_id(value)
            return Q(pk=pk) if pk is not None else Q(pk__in=[])  # no such id: an empty list, as for any unknown id
        if len(value) > 255:  # longer than any stored value: nothing matches (and SQLite's LIKE would refuse it)
            return Q(pk__in=[])
        return Q(**{f"{attribute.lookup}{'' if attribute.case_exact else '__iexact'}": value})
    raise _unsupported_filter(attributes)


def as_id(value: str) -> int | None:
    """A resource id from a URL or a filter, or None when it cannot be one."""
    if not value.isascii() or not value.isdigit() or len(value) > 19 or int(value) > MAX_BIGINT:
        return None
    return int(value)


def _unsupported_filter(attributes: dict[str, Filterable]) -> ScimError:
    names = {"id": "id", "username": "userName", "externalid": "externalId", "displayname": "displayName"}
    supported = " or ".join(names[name] for name in attributes)
    return ScimError(
        f"Filters support 'eq' on {supported}, joined by and, or, not.", status=400, scim_type="invalidFilter"
    )


# --------------------------------------------------------------------------- PATCH
@dataclass
class PatchOperation:
    op: str  # add, replace, remove (lower case: Entra ID sends "Add", "Replace", "Remove")
    path: str | None
    value: Any


def patch_operations(body: Any) -> list[PatchOperation]:
    """The operations of a PatchOp request (RFC 7644 §3.5.2), checked for shape only."""
    if not isinstance(body, dict) or not isinstance(body.get("schemas"), list) or PATCH_OP not in body["schemas"]:
        raise ScimError(f"A PATCH body is a PatchOp message: schemas must hold {PATCH_OP}.", scim_type="invalidSyntax")
    operations = body.get("Operations") or body.get("operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError("A PatchOp message needs a non-empty 'Operations' list.", scim_type="invalidSyntax")
    parsed = []
    for operation in operations:
        if not isinstance(operation, dict):
            raise ScimError("Each operation is an object with 'op', 'path', 'value'.", scim_type="invalidSyntax")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise ScimError(
                f"Unknown operation {operation.get('op')!r}: add, replace or remove.", scim_type="invalidSyntax"
            )
        path = operation.get("path")
        if path is not None and (not isinstance(path, str) or not path.strip()):
            raise ScimError("An operation's 'path' is a non-empty string.", scim_type="invalidPath")
        if op != "remove" and "value" not in operation:
            raise ScimError(f"An '{op}' operation needs a 'value'.", scim_type="invalidValue")
        if op == "remove" and path is None:
            raise ScimError("A 'remove' operation needs a 'path'.", scim_type="noTarget")
        parsed.append(PatchOperation(op=op, path=path.strip() if path else None, value=operation.get("value")))
    return parsed


def as_bool(value: Any, attribute: str) -> bool:
    """SCIM booleans, and the strings Entra ID sends for them ("True", "False")."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ScimError(f"'{attribute}' is a boolean, not {value!r}.", scim_type="invalidValue")


def as_string(value: Any, attribute: str) -> str:
    if value is None:  # RFC 7643 §2.5: null is "unassigned"
        return ""
    if not isinstance(value, str):
        raise ScimError(f"'{attribute}' is a string, not {value!r}.", scim_type="invalidValue")
    return value


_VALUE_FILTER = re.compile(r"^(?P<attribute>[A-Za-z][\w.:-]*)\[(?P<filter>.+)\](?:\.(?P<sub>\w+))?$", re.DOTALL)


@dataclass(frozen=True)
class Path:
    """A PATCH path (RFC 7644 §3.5.2): `attribute`, `attribute.sub`, or `attribute[filter].sub`;
    URN-prefixed attributes keep their URN in `attribute`, lower-cased for comparison."""

    attribute: str
    sub: str | None = None
    value_filter: ast.Filter | None = field(default=None, compare=False)


def parse_path(text: str) -> Path:
    match = _VALUE_FILTER.match(text)
    if match:
        return Path(
            attribute=match["attribute"].lower(),
            sub=match["sub"].lower() if match["sub"] else None,
            value_filter=parse_filter(match["filter"]),
        )
    if text.lower().startswith("urn:"):
        # urn:…:User:manager: the extension's URN, then the attribute; the platform keeps none of them.
        return Path(attribute=text.lower())
    attribute, _, sub = text.partition(".")
    if not attribute or not re.fullmatch(r"[A-Za-z][\w-]*", attribute) or (sub and not re.fullmatch(r"\w+", sub)):
        raise ScimError(f"{text!r} is not a SCIM attribute path.", scim_type="invalidPath")
    return Path(attribute=attribute.lower(), sub=sub.lower() or None)


def value_filter_eq(path: Path, attribute: str) -> str | None:
    """The value of a `[attribute eq "x"]` filter on `path` (members[value eq "42"], emails[type eq
    "work"]), or None when it has none. Other filters there are refused."""
    if path.value_filter is None:
        return None
    node = path.value_filter.expr
    if (
        isinstance(node, ast.AttrExpr)
        and not path.value_filter.negated
        and node.value.lower() == "eq"
        and str(node.attr_path.attr_name).lower() == attribute
        and node.comp_value is not None
    ):
        return str(node.comp_value.value)
    raise ScimError(f'Only [{attribute} eq "…"] is supported in this path.', scim_type="invalidFilter")


def primary_email(emails: Any) -> str | None:
    """The email a User resource gives: the primary one, else the first; None when it gives none."""
    if emails is None:
        return None
    if not isinstance(emails, list) or not all(isinstance(email, dict) for email in emails):
        raise ScimError("'emails' is a list of {value, type, primary} objects.", scim_type="invalidValue")
    if not emails:
        return ""
    chosen = next((email for email in emails if email.get("primary") in (True, "true", "True")), emails[0])
    return as_string(chosen.get("value", ""), "emails.value")


def member_ids(value: Any) -> list[str]:
    """The User ids of a `members` value: a list of {"value": id} (a single object is accepted too)."""
    items = value if isinstance(value, list) else [value]
    ids = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str | int):
            raise ScimError("'members' holds objects with a 'value': the User's id.", scim_type="invalidValue")
        ids.append(str(item["value"]))
    return ids
