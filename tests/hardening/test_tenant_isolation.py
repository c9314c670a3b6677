"""Tenant isolation, swept over the whole API as the OpenAPI schema describes it.

Two tenants, acme and globex, each hold real objects of every kind the API exposes (members,
groups, API keys, collections with grants, documents with versions and their own grants, audit
records with a review, golden sets with questions, evaluation runs). Then, for every operation of
the schema:

* **path sweep** — operations with path parameters are called by acme (its all-scope API key, its
  signed-in owner and its compliance member, through real sessions) with globex's ids in the
  path: all of them, and one at a time beside acme's own. The answer must be 403 or 404, the same
  status and error code as for an id that does not exist (so ids cannot be probed), and carry none
  of globex's data.
* **reference sweep** — every operation is also called with acme's own path ids and a valid body;
  then each id the body or the query refers to (a collection to create in, a group to grant to, a
  document to judge, a member to act as…) is swapped for globex's. Nothing of globex may come back
  and nothing may be created pointing at it: only search and ask may answer 200 (their references
  only narrow what the caller already reads).
* **list sweep** — the operations without path parameters that read (lists, search, ask, the
  audit export) show acme's callers acme's data — checked, so "nothing of globex" is not vacuous —
  and never globex's.
* **header sweep** — globex's API key sent with ``X-Tenant: acme`` gets 403, and globex's signed-in
  owner naming acme gets 404, on every tenant-scoped operation, with nothing of acme's data.

After each sweep the victim tenant's data is compared with what it was: nothing changed.

New endpoints are covered automatically: operations come from the schema, and every path
parameter, query parameter and request-body field must be classified below (which kind of object
it names, if any). An unclassified one fails with a message saying where to add it; a body this
module cannot make valid (a 400 where it expects the id check to answer) fails asking for a probe
body in PROBE_BODIES.

The two tenants are built once per module, inside a transaction rolled back at the end (each test
runs in a savepoint of it, as usual), with a search index of the module's own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import TestCase, override_settings
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from apps.access.grants import Grant, grants_list
from apps.access.levels import Level
from apps.audit.models import AuditRecord, Review
from apps.documents import services as document_services
from apps.documents import services as documents
from apps.documents.models import Collection, Document, DocumentEvent, DocumentVersion
from apps.evaluation.models import EvaluationRun, GoldenQuestion, GoldenSet
from apps.search.backends import _built, get_search_backend, reset_search_backends
from apps.tenants import services as tenants
from apps.tenants.actors import Actor
from apps.tenants.models import ApiKey, Membership, Role, Scope, Tenant, TenantGroup
from tests.answers.conftest import add_document
from tests.conftest import key_client

pytestmark = pytest.mark.django_db

HTTP_METHODS = ("get", "put", "post", "patch", "delete")


# =========================================================================== the schema
@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    path: str  # the template, e.g. /api/v1/documents/{document_id}
    spec: dict = field(compare=False, repr=False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_parameters(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "path"]

    @property
    def query_parameters(self) -> list[str]:
        return [p["name"] for p in self.spec.get("parameters", []) if p["in"] == "query"]

    @property
    def is_public(self) -> bool:
        """drf-spectacular writes `security: [{}]` for views that need no authentication."""
        return {} in self.spec.get("security", [])

    @property
    def is_read(self) -> bool:
        return self.method == "GET" or self.key in FILTERING_OPERATIONS


def _load_schema() -> dict:
    # The same generator that serves /api/schema/; no request, no database: safe at collection.
    return SchemaGenerator().get_schema(request=None, public=True)


SCHEMA = _load_schema()
OPERATIONS = [
    Operation(method.upper(), path, spec)
    for path, methods in SCHEMA["paths"].items()
    for method, spec in methods.items()
    if method in HTTP_METHODS
]


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = SCHEMA["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def body_fields(op: Operation) -> set[str]:
    """Every property name of the operation's request bodies, nested ones included."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        node = _resolve(node)
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                found.add(name)
                walk(sub)
            for key in ("items", "allOf", "oneOf", "anyOf"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for media in op.spec.get("requestBody", {}).get("content", {}).values():
        walk(media.get("schema"))
    return found


# =========================================================================== classification
# The kinds of object a parameter may name. A new kind needs a value in World.values() below.
KINDS = (
    "collection",
    "document",
    "version",
    "group",
    "member",
    "api_key",
    "audit_record",
    "golden_set",
    "question",
    "run",
)

# Path parameter → the kind of object it names. A new path parameter must be added here, or the
# sweep of its operations fails: that is how new endpoints stay covered.
PATH_PARAMETERS: dict[str, str] = {
    "collection_id": "collection",
    "document_id": "document",
    "group_id": "group",
    "username": "member",
    "prefix": "api_key",
    "record_id": "audit_record",
    "golden_set_id": "golden_set",
    "question_id": "question",
    "run_id": "run",
    "other_id": "run",
}
# Path parameters that only mean something under another one (a version number of *that*
# document): they take the same tenant's value as their parent and are never swapped alone.
SCOPED_PATH_PARAMETERS: dict[str, tuple[str, str]] = {
    "number": ("document_id", "version_number"),
}

# Query parameters: the ones naming objects, and the ones that do not (filters, formats).
QUERY_REFERENCES: dict[str, str] = {
    "collection": "collection",
    "document": "document",
    "version": "version",  # the audit filter takes a version *id*
    "golden_set": "golden_set",
    "user": "member",
    "member": "member",  # the directory history's filter: a username, as recorded
}
QUERY_PLAIN = {
    "category",
    "group",  # the directory history's filter: a group's name as recorded, compared within the tenant
    "date_from",
    "date_to",
    "effective_from",
    "effective_to",
    "kind",
    "measure",
    "outcome",
    "output",
    "q",
    "review",
    "state",
    "tag",
    "limit",
    "offset",
}

# Request-body fields: the ones that name objects (the probe bodies must fill them, so they get
# swapped for the other tenant's), and the ones that do not.
BODY_REFERENCES: dict[str, str] = {
    "collection": "collection",
    "collections": "collection",
    "document": "document",
    "documents": "document",
    "version_id": "version",
    "golden_set": "golden_set",
    "as_user": "member",
    "user": "member",
    "username": "member",
    "group": "group",
    "api_key": "api_key",
}
BODY_PLAIN = {
    "answers",
    "author",
    "categories",
    "category",
    "change_note",
    "chunk_overlap",
    "chunk_size",
    "chunk_strategy",
    "comment",
    "context_tokens",
    "date_from",
    "date_to",
    "dense_weight",
    "description",
    "effective_date",
    "email",
    "expires_at",
    "external_id",
    "feedback",
    "file",
    "filters",
    "first_name",
    "fusion",
    "grade",
    "grants",
    "hyde",
    "judgements",
    "k",
    "label",
    "last_name",
    "legal_hold",
    "level",
    "limit",
    "max_per_document",
    "mode",
    "name",
    "publish_when_ready",
    "query",
    "reason",
    "reference_answer",
    "rerank",
    "retention_until",
    "role",
    "rrf_k",
    "scopes",
    "source_url",
    "status",
    "tags",
    "text",
    "title",
}
# Body reference fields an operation does not use as a reference (it names a new object).
NOT_A_REFERENCE_HERE = {
    ("POST /api/v1/users", "username"),  # the new user's name
}

# Operations whose references only narrow what the caller reads: they may answer 200 with another
# tenant's id in the body (and must then show none of its data).
FILTERING_OPERATIONS = {"POST /api/v1/search", "POST /api/v1/ask"}

MISSING: dict[str, Any] = dict.fromkeys(KINDS, 2147483000) | {
    "member": "nobody-by-this-name",
    "api_key": "kp_0000deadbeef",
}

# Operations that need no authentication, reviewed: they serve no tenant's data. A new public
# operation fails the coverage test until it is reviewed and listed here.
PUBLIC_OPERATIONS = {"GET /health/live", "GET /health/ready"}

# The sweeps' operations (REFERENCE_OPERATIONS is computed beside its sweep).
TENANT_OPERATIONS = [op for op in OPERATIONS if not op.is_public]
PATH_OPERATIONS = [op for op in TENANT_OPERATIONS if op.path_parameters]
LIST_OPERATIONS = [op for op in TENANT_OPERATIONS if not op.path_parameters and op.is_read]


# =========================================================================== the two tenants
@dataclass
class World:
    """One tenant with an object of every kind, and the words that mark its data."""

    tenant: Tenant
    word: str  # in every name, title and text of this tenant: finding it elsewhere is a leak
    owner: Membership
    compliance: Membership
    member: Membership
    group: TenantGroup
    caller_key: str  # raw, all scopes: how the tenant's app calls
    probe_key: ApiKey
    collection: Collection
    document: Document
    versions: list[DocumentVersion]
    record: AuditRecord
    golden_set: GoldenSet
    question: GoldenQuestion
    runs: list[EvaluationRun]

    @property
    def slug(self) -> str:
        return self.tenant.slug

    def values(self) -> dict[str, Any]:
        return {
            "collection": self.collection.pk,
            "document": self.document.pk,
            "version": self.versions[0].pk,
            "version_number": self.versions[-1].number,  # ready, not published: publishing it would succeed
            "group": self.group.pk,
            "member": self.member.username,
            "api_key": self.probe_key.prefix,
            "audit_record": self.record.pk,
            "golden_set": self.golden_set.pk,
            "question": self.question.pk,
            "run": self.runs[0].pk,
            "run#2": self.runs[1].pk,
        }

    def markers(self) -> list[str]:
        """Strings only this tenant's data contains."""
        keys = ApiKey.objects.filter(tenant=self.tenant).values_list("prefix", flat=True)
        return [self.word, self.slug, *keys, *(v.sha256 for v in self.versions)]

    def ids(self) -> dict[str, set[int]]:
        """This tenant's ids by the response keys that carry them."""
        documents_ = set(Document.objects.filter(tenant=self.tenant).values_list("pk", flat=True))
        collections = set(Collection.objects.filter(tenant=self.tenant).values_list("pk", flat=True))
        versions = set(DocumentVersion.objects.filter(document__tenant=self.tenant).values_list("pk", flat=True))
        return {
            "document_id": documents_,
            "document": documents_,
            "collection_id": collections,
            "collection": collections,
            "version_id": versions,
            "golden_set": {self.golden_set.pk},
        }


def _session(membership: Membership, slug: str | None = None) -> APIClient:
    """A real session cookie (SessionMiddleware + DRF's SessionAuthentication), as a browser has."""
    client = APIClient()
    client.force_login(membership.user)
    if slug:
        client.credentials(HTTP_X_TENANT=slug)
    return client


def build_world(slug: str, word: str) -> World:
    capture = TestCase.captureOnCommitCallbacks
    tenant = tenants.tenant_create(slug=slug, name=f"{slug.title()} {word.title()} Works")
    owner = tenants.member_create(tenant=tenant, username="owner", role=Role.OWNER)
    compliance = tenants.member_create(tenant=tenant, username="auditor", role=Role.COMPLIANCE)
    member = tenants.member_create(
        tenant=tenant, username=f"{slug}-{word}-member", role=Role.READER, email=f"{word}@{slug}.example"
    )
    group = tenants.group_create(tenant=tenant, name=f"{word} crew")
    tenants.group_member_add(group=group, membership=member)
    _, caller_key = tenants.api_key_create(tenant=tenant, name=f"{word} app", scopes=Scope.values)
    probe_key, _ = tenants.api_key_create(tenant=tenant, name=f"{word} integration", scopes=[Scope.SEARCH])

    collection = documents.collection_create(
        tenant=tenant, name=f"{word.title()} vault", description=f"Everything about the {word}."
    )
    actor = Actor(user=None)
    with capture(execute=True):
        document_services.grants_replace(
            obj=collection,
            actor=actor,
            grants=[
                Grant(group.auth_group, Level.VIEW),
                Grant(member.user, Level.CHANGE),
                Grant(probe_key.service_user, Level.VIEW),
            ],
        )
    text = (
        f"# {word.title()} manual\n\n## Hangar\n\nThe {word} hangar is inspected every Tuesday by the "
        f"{slug} {word} crew, who log each {word} inspection.\n"
    ).encode()
    document = add_document(tenant, collection, f"{word.title()} manual", text, capture)
    with capture(execute=True):
        documents.version_upload(
            document=document,
            actor=actor,
            change_note=f"{word} revision",
            file=SimpleUploadedFile(f"{word}-v2.md", text + f"\nThe {word} also flies on Fridays.\n".encode()),
        )
        document_services.grants_replace(obj=document, actor=actor, grants=[Grant(member.user, Level.VIEW)])
    document.refresh_from_db()
    versions = list(document.versions.order_by("number"))
    assert [v.status for v in versions] == ["ready", "ready"], [v.status_reason for v in versions]
    get_search_backend().refresh()

    app = key_client(caller_key)
    searched = app.post("/api/v1/search", {"query": f"when is the {word} hangar inspected"}, format="json")
    assert searched.status_code == 200 and searched.json()["results"], searched.content
    record = AuditRecord.objects.across_tenants().get(pk=searched.json()["audit_id"])
    reviewed = _session(compliance, slug).post(
        f"/api/v1/audit/records/{record.pk}/reviews",
        {"status": "flagged", "comment": f"{word} answer checked"},
        format="json",
    )
    assert reviewed.status_code == 201, reviewed.content

    owner_client = _session(owner, slug)
    golden = owner_client.post(
        "/api/v1/evaluation/golden-sets", {"name": f"{word} golden", "description": f"{word} questions"}, format="json"
    )
    assert golden.status_code == 201, golden.content
    golden_set = GoldenSet.objects.across_tenants().get(pk=golden.json()["id"])
    asked = owner_client.post(
        f"/api/v1/evaluation/golden-sets/{golden_set.pk}/questions",
        format="json",
        data={
            "text": f"When is the {word} hangar inspected?",
            "reference_answer": f"Every Tuesday, by the {word} crew.",
            "judgements": [{"document": document.pk, "grade": 2}],
        },
    )
    assert asked.status_code == 201, asked.content
    runs = []
    for mode in ("bm25", "dense"):
        with capture(execute=True):
            started = owner_client.post(
                "/api/v1/evaluation/runs",
                {"golden_set": golden_set.pk, "mode": mode, "k": 10, "label": f"{word} {mode}"},
                format="json",
            )
        assert started.status_code == 202, started.content
        runs.append(EvaluationRun.objects.across_tenants().get(pk=started.json()["id"]))
    assert all(
        run.status == "done" for run in EvaluationRun.objects.across_tenants().filter(pk__in=[r.pk for r in runs])
    ), "evaluation runs failed"
    return World(
        tenant=tenant,
        word=word,
        owner=owner,
        compliance=compliance,
        member=member,
        group=group,
        caller_key=caller_key,
        probe_key=probe_key,
        collection=collection,
        document=document,
        versions=versions,
        record=record,
        golden_set=golden_set,
        question=GoldenQuestion.objects.across_tenants().get(pk=asked.json()["id"]),
        runs=runs,
    )


@dataclass
class Worlds:
    acme: World
    globex: World


@pytest.fixture(autouse=True)
def _fresh_search_index():
    """Replaces tests/conftest.py's per-test index: this module's index is built once, in `worlds`."""
    yield


@contextmanager
def data_built_once(django_db_blocker, tmp_path_factory, name: str):
    """A module's data, built once: inside this block, the database is open and in a transaction
    that is rolled back when the block ends; every test of the module runs in a savepoint inside it
    (pytest-django's `db`), so what one test changes the next never sees. The search index is the
    module's own (an SQLite file, or an Elasticsearch prefix dropped at the end), and tasks run
    in-process on both profiles (the full profile's conftest only does that per test).
    The module must replace tests/conftest.py's per-test `_fresh_search_index` with a no-op."""
    from celery import current_app

    search = {
        "EMBEDDED": {"PATH": str(tmp_path_factory.mktemp(name) / "search.sqlite3")},
        "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": f"kp-test-{uuid.uuid4().hex[:10]}"},
    }
    eager = current_app.conf.task_always_eager
    current_app.conf.task_always_eager = True
    try:
        with django_db_blocker.unblock(), override_settings(SEARCH=search), transaction.atomic():
            reset_search_backends()
            try:
                yield
            finally:
                transaction.set_rollback(True)
                elasticsearch = _built.get("elasticsearch")
                if elasticsearch is not None:
                    elasticsearch.drop()
                reset_search_backends()
    finally:
        current_app.conf.task_always_eager = eager


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker, tmp_path_factory):
    """acme and globex, built once for the module (see data_built_once)."""
    with data_built_once(django_db_blocker, tmp_path_factory, "isolation"):
        yield Worlds(acme=build_world("acme", "anvil"), globex=build_world("globex", "zeppelin"))


def snapshot(world: World) -> dict:
    """What a tenant would notice changed: its people, groups, keys, content, grants, trail, sets."""
    tenant = world.tenant
    docs = Document.objects.filter(tenant=tenant)
    return {
        "members": sorted(Membership.objects.filter(tenant=tenant).values_list("username", "role", "is_active")),
        "groups": sorted(
            (g.pk, g.name, tuple(sorted(g.auth_group.user_set.values_list("pk", flat=True))))
            for g in TenantGroup.objects.filter(tenant=tenant)
        ),
        "keys": sorted(ApiKey.objects.filter(tenant=tenant).values_list("prefix", "name", "revoked_at")),
        "collections": sorted(Collection.objects.filter(tenant=tenant).values_list("pk", "name", "description")),
        "documents": sorted(
            docs.values_list(
                "pk",
                "title",
                "state",
                "published_version_id",
                "has_own_grants",
                "legal_hold",
                "retention_until",
                "purged_at",
            )
        ),
        "versions": sorted(
            DocumentVersion.objects.filter(document__tenant=tenant).values_list("pk", "status", "purged_at")
        ),
        "events": DocumentEvent.objects.filter(document__tenant=tenant).count(),
        "grants": sorted(
            (type(obj).__name__, obj.pk, str(g.principal.pk), g.level.label)
            for obj in [*Collection.objects.filter(tenant=tenant), *docs]
            for g in grants_list(obj)
        ),
        "audit": (
            AuditRecord.objects.filter(tenant=tenant).count(),
            Review.objects.across_tenants().filter(record__tenant=tenant).count(),
        ),
        "golden": sorted(GoldenSet.objects.filter(tenant=tenant).values_list("pk", "name")),
        "questions": GoldenQuestion.objects.filter(golden_set__tenant=tenant).count(),
        "runs": EvaluationRun.objects.filter(tenant=tenant).count(),
    }


# =========================================================================== requests
class Refs:
    """What a probe body puts where it names an object: the caller's own object, except the kinds
    being swapped, which get the victim tenant's value (or a value that names nothing)."""

    def __init__(
        self,
        own: World,
        *,
        victim: World | None = None,
        swap: frozenset[str] = frozenset(),
        missing: bool = False,
        is_key: bool = True,
    ):
        self.own, self.victim, self.swap, self.missing, self.is_key = own, victim, swap, missing, is_key
        self.used: set[str] = set()

    def __call__(self, kind: str) -> Any:
        self.used.add(kind)
        if kind in self.swap:
            return MISSING[kind] if self.missing else self.victim.values()[kind]
        return self.own.values()[kind]


def _upload(name: str = "probe.md") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, f"# Probe\n\nA probe upload {uuid.uuid4().hex}.\n".encode())


def _grants(r: Refs) -> dict:
    return {
        "grants": [
            {"user": r("member"), "level": "view"},
            {"group": r("group"), "level": "view"},
            {"api_key": r("api_key"), "level": "view"},
        ]
    }


def _search(r: Refs) -> dict:
    body = {
        "query": "when is the zeppelin hangar inspected",
        "k": 10,
        "filters": {"collections": [r("collection")], "documents": [r("document")]},
    }
    if r.is_key:  # acting for a member is for API keys only
        body["as_user"] = r("member")
    return body


# A valid body for each operation that takes one, naming objects through `r`, so the sweep can swap
# them. (A body, format) pair sends multipart. Operations missing here get a body synthesized from
# the schema; if that is refused with a 400, the sweep fails asking for an entry here.
PROBE_BODIES: dict[str, Callable[[Refs], Any]] = {
    "POST /api/v1/api-keys": lambda r: {"name": "probe key", "scopes": ["search"]},
    "POST /api/v1/ask": _search,
    "POST /api/v1/search": _search,
    "POST /api/v1/audit/records/{record_id}/reviews": lambda r: {"status": "reviewed", "comment": "probe"},
    "POST /api/v1/collections": lambda r: {"name": "probe collection"},
    "PATCH /api/v1/collections/{collection_id}": lambda r: {"name": "probe rename"},
    "PUT /api/v1/collections/{collection_id}/grants": _grants,
    "POST /api/v1/documents": lambda r: (
        {"collection": r("collection"), "title": "probe", "file": _upload()},
        "multipart",
    ),
    "PATCH /api/v1/documents/{document_id}": lambda r: {"title": "probe title"},
    "PUT /api/v1/documents/{document_id}/grants": _grants,
    "POST /api/v1/documents/{document_id}/rollback": lambda r: {"version_id": r("version"), "reason": "probe"},
    "POST /api/v1/documents/{document_id}/versions": lambda r: (
        {"file": _upload(), "change_note": "probe"},
        "multipart",
    ),
    "POST /api/v1/evaluation/golden-sets": lambda r: {"name": "probe set"},
    "POST /api/v1/evaluation/golden-sets/{golden_set_id}/questions": lambda r: {
        "text": "probe?",
        "judgements": [{"document": r("document"), "grade": 1}],
    },
    "POST /api/v1/evaluation/runs": lambda r: (
        {"golden_set": r("golden_set"), "mode": "bm25", "k": 10} | ({"as_user": r("member")} if r.is_key else {})
    ),
    "POST /api/v1/groups": lambda r: {"name": "probe group"},
    "PATCH /api/v1/groups/{group_id}": lambda r: {"name": "probe rename"},
    "POST /api/v1/groups/{group_id}/members": lambda r: {"username": r("member")},
    "POST /api/v1/users": lambda r: {"username": "probe-user"},
    "PATCH /api/v1/users/{username}": lambda r: {"role": "reader"},
}


def _synthesize(node: Any, r: Refs, name: str | None = None) -> Any:
    """A minimal body from the schema: required fields, references filled through `r`."""
    node = _resolve(node)
    if name in BODY_REFERENCES:
        value = r(BODY_REFERENCES[name])
        return [value] if node.get("type") == "array" else value
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        required = set(node.get("required", []))
        return {
            k: _synthesize(v, r, k)
            for k, v in node.get("properties", {}).items()
            if k in required or k in BODY_REFERENCES
        }
    if kind == "array":
        return [_synthesize(node.get("items", {}), r)]
    if kind == "integer":
        return max(node.get("minimum", 1), 1)
    if kind == "number":
        return node.get("minimum", 0)
    if kind == "boolean":
        return False
    return "probe"


def probe_body(op: Operation, r: Refs) -> tuple[Any, str] | None:
    if "requestBody" not in op.spec:
        return None
    if op.key in PROBE_BODIES:
        body = PROBE_BODIES[op.key](r)
    else:
        content = op.spec["requestBody"]["content"]
        body = _synthesize(next(iter(content.values()))["schema"], r)
    return body if isinstance(body, tuple) else (body, "json")


@dataclass
class Call:
    """One request of a sweep, and everything needed to judge its answer."""

    op: Operation
    caller: str
    path_values: dict[str, Any]
    query: dict[str, Any]
    body: tuple[Any, str] | None
    tenant_header: str | None = None  # sent by the client's credentials; listed for echo removal

    @property
    def url(self) -> str:
        url = self.op.path
        for name, value in self.path_values.items():
            url = url.replace("{" + name + "}", str(value))
        return url

    def sent_strings(self) -> list[str]:
        """What the request itself carried: an answer may echo it ("No user 'x'") without leaking."""
        strings: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    walk(v)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    walk(v)
            elif isinstance(value, str):
                strings.append(value)

        walk(self.path_values)
        walk(self.query)
        walk(self.body[0] if self.body else None)
        walk(self.tenant_header)
        return sorted({s for s in strings if len(s) >= 3}, key=len, reverse=True)

    def send(self, client: APIClient):
        method = getattr(client, self.op.method.lower())
        if self.body is None:
            return method(self.url, self.query or None) if self.op.method == "GET" else method(self.url)
        data, fmt = self.body
        url = self.url + ("?" + "&".join(f"{k}={v}" for k, v in self.query.items()) if self.query else "")
        return method(url, data, format=fmt)

    def describe(self) -> str:
        return f"{self.op.method} {self.url}{'?' + str(self.query) if self.query else ''} as {self.caller}"


def response_text(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


def error_code(text: str) -> str | None:
    try:
        return json.loads(text).get("code")
    except (ValueError, AttributeError):
        return None


@dataclass
class Evidence:
    """What marks a tenant's data in an answer: its marker words, key prefixes and file hashes, and
    its ids under the keys that carry ids of documents, collections, versions and golden sets."""

    markers: list[str]
    ids: dict[str, set[int]]

    @classmethod
    def of(cls, world: World) -> Evidence:
        return cls(markers=world.markers(), ids=world.ids())

    def found_in(self, call: Call, status: int, text: str) -> list[str]:
        found = []
        cleaned = text
        for sent in call.sent_strings():
            cleaned = cleaned.replace(sent, "")
        lowered = cleaned.lower()
        found += [f"text {m!r}" for m in self.markers if m.lower() in lowered]
        if not 200 <= status < 300:
            return found  # an error may echo the id asked for; only answers that succeeded carry ids
        try:
            data = json.loads(text)
        except ValueError:
            return found

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if (
                        key in self.ids
                        and isinstance(value, int)
                        and not isinstance(value, bool)
                        and value in self.ids[key]
                    ):
                        found.append(f"{key}={value}")
                    walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(data)
        return found


def classification_problems(op: Operation) -> list[str]:
    problems = []
    for name in op.path_parameters:
        if name not in PATH_PARAMETERS and name not in SCOPED_PATH_PARAMETERS:
            problems.append(
                f"path parameter {{{name}}} of {op.key} names no known kind of object: add it to PATH_PARAMETERS "
                f"(or SCOPED_PATH_PARAMETERS) in {__name__}, with a way to get each tenant's value in World.values()"
            )
    for name in op.query_parameters:
        if name not in QUERY_REFERENCES and name not in QUERY_PLAIN:
            problems.append(
                f"query parameter {name!r} of {op.key} is unclassified: add it to QUERY_REFERENCES (if it "
                f"names an object) or QUERY_PLAIN in {__name__}"
            )
    for name in sorted(body_fields(op)):
        if name not in BODY_REFERENCES and name not in BODY_PLAIN:
            problems.append(
                f"body field {name!r} of {op.key} is unclassified: add it to BODY_REFERENCES (if it names "
                f"an object) or BODY_PLAIN in {__name__}"
            )
    return problems


def callers(worlds: Worlds) -> dict[str, tuple[APIClient, bool]]:
    """acme's callers: its app's key, and two of its people through real sessions (the owner, and
    the compliance member, who alone reads the audit trail among members)."""
    acme = worlds.acme
    return {
        "acme key": (key_client(acme.caller_key), True),
        "acme owner (session)": (_session(acme.owner, acme.slug), False),
        "acme compliance (session)": (_session(acme.compliance, acme.slug), False),
    }


def _send(call: Call, client: APIClient):
    response = call.send(client)
    return response, response_text(response)


# =========================================================================== the sweeps
def own_path_values(world: World, op: Operation) -> dict[str, Any]:
    values = {}
    for name in op.path_parameters:
        if name in SCOPED_PATH_PARAMETERS:
            values[name] = world.values()[SCOPED_PATH_PARAMETERS[name][1]]
        else:
            values[name] = world.values()[PATH_VALUE_KEYS.get(name, PATH_PARAMETERS[name])]
    return values


# A second object of the same kind where a path names two (a run compared with another run).
PATH_VALUE_KEYS = {"other_id": "run#2"}


def _require_classified(op: Operation) -> None:
    problems = classification_problems(op)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def _with_body_references(op: Operation) -> bool:
    fields = {f for f in body_fields(op) if f in BODY_REFERENCES and (op.key, f) not in NOT_A_REFERENCE_HERE}
    return bool(fields) or any(q in QUERY_REFERENCES for q in op.query_parameters)


def test_the_sweep_covers_the_schema(capsys):
    """The schema yields operations, each classified; the numbers are reported in the test output."""
    assert len(PATH_OPERATIONS) > 0 and len(LIST_OPERATIONS) > 0 and len(REFERENCE_OPERATIONS) > 0
    public = {op.key for op in OPERATIONS if op.is_public}
    assert public == PUBLIC_OPERATIONS, (
        f"operations without authentication changed: {sorted(public ^ PUBLIC_OPERATIONS)}; a public operation "
        "is outside "
        f"every tenant sweep: make sure it serves no tenant data, then update PUBLIC_OPERATIONS in {__name__}"
    )
    problems = [p for op in OPERATIONS for p in classification_problems(op)]
    assert not problems, "\n".join(problems)
    with capsys.disabled():
        print(
            f"\n[tenant isolation] {len(OPERATIONS)} operations in the schema "
            f"({len(OPERATIONS) - len(TENANT_OPERATIONS)} "
            f"public); swept: {len(PATH_OPERATIONS)} with foreign path ids, {len(REFERENCE_OPERATIONS)} with foreign "
            f"ids in bodies/queries, {len(LIST_OPERATIONS)} reads, {len(TENANT_OPERATIONS)} with another "
            "tenant's header"
        )


@pytest.mark.parametrize("op", PATH_OPERATIONS, ids=lambda op: op.key)
def test_foreign_ids_in_the_path_are_not_found(worlds, op):
    _require_classified(op)
    acme, globex = worlds.acme, worlds.globex
    before, evidence = snapshot(globex), Evidence.of(globex)
    swappable = [p for p in op.path_parameters if p in PATH_PARAMETERS]
    # All parameters foreign; then, where there are several, each alone beside acme's own (acme's
    # group with globex's member). A scoped parameter (a version number) follows its parent.
    combos = [frozenset(swappable)] + ([frozenset({p}) for p in swappable] if len(swappable) > 1 else [])
    failures = []
    for caller, (client, is_key) in callers(worlds).items():
        for foreign in combos:
            outcome = {}
            for variant in ("foreign", "missing"):
                values = own_path_values(acme, op)
                for name in op.path_parameters:
                    if name in SCOPED_PATH_PARAMETERS and SCOPED_PATH_PARAMETERS[name][0] in foreign:
                        values[name] = globex.values()[SCOPED_PATH_PARAMETERS[name][1]]
                    elif name in foreign:
                        kind = PATH_PARAMETERS[name]
                        values[name] = (
                            MISSING[kind] if variant == "missing" else globex.values()[PATH_VALUE_KEYS.get(name, kind)]
                        )
                call = Call(op, caller, values, {}, probe_body(op, Refs(acme, is_key=is_key)))
                response, text = _send(call, client)
                outcome[variant] = (response.status_code, error_code(text))
                if variant == "missing":
                    continue
                if response.status_code == 400:
                    failures.append(
                        f"{call.describe()}: 400 {text[:300]} — the probe body was refused before the ids "
                        f"were checked: give {op.key} a valid body in PROBE_BODIES"
                    )
                elif response.status_code not in (403, 404):
                    failures.append(f"{call.describe()}: {response.status_code}, expected 403/404: {text[:300]}")
                found = evidence.found_in(call, response.status_code, text)
                if found:
                    failures.append(f"{call.describe()}: globex's data in the answer: {found}: {text[:300]}")
            if outcome["foreign"] != outcome["missing"]:
                failures.append(
                    f"{op.key} as {caller}, globex's {sorted(foreign)}: answered {outcome['foreign']}, but "
                    f"{outcome['missing']} for ids that do not exist: another tenant's ids can be probed"
                )
    assert not failures, "\n".join(failures)
    assert snapshot(globex) == before, "acme's requests changed globex's data"


REFERENCE_OPERATIONS = [op for op in TENANT_OPERATIONS if _with_body_references(op)]


@pytest.mark.parametrize("op", REFERENCE_OPERATIONS, ids=lambda op: op.key)
def test_foreign_ids_in_bodies_and_queries_reach_nothing(worlds, op):
    """acme names its own objects in the path and a valid body, then globex's in one reference of the
    body or query at a time: globex's objects must be neither reached nor referred to."""
    _require_classified(op)
    acme, globex = worlds.acme, worlds.globex
    before, evidence = snapshot(globex), Evidence.of(globex)
    path = own_path_values(acme, op)
    failures = []
    exercised = 0
    for caller, (client, is_key) in callers(worlds).items():
        probe = Refs(acme, is_key=is_key)
        own_body = probe_body(op, probe)
        if own_body is not None and is_key:
            filled = json.dumps(own_body[0], default=str)
            unfilled = sorted(
                name
                for name in body_fields(op)
                if name in BODY_REFERENCES and (op.key, name) not in NOT_A_REFERENCE_HERE and f'"{name}"' not in filled
            )
            if unfilled:
                failures.append(
                    f"{op.key}: the probe body leaves the reference field(s) {unfilled} out: fill them in "
                    f"PROBE_BODIES (or list them in NOT_A_REFERENCE_HERE if they name a new object)"
                )
        variants = [("body", kind) for kind in sorted(probe.used)]
        variants += [("query", name) for name in op.query_parameters if name in QUERY_REFERENCES]
        for where, what in variants:
            outcome = {}
            for variant in ("foreign", "missing"):
                if where == "body":
                    refs = Refs(
                        acme, victim=globex, swap=frozenset({what}), missing=variant == "missing", is_key=is_key
                    )
                    body, query = probe_body(op, refs), {}
                else:
                    kind = QUERY_REFERENCES[what]
                    body = probe_body(op, Refs(acme, is_key=is_key))
                    query = {what: MISSING[kind] if variant == "missing" else globex.values()[kind]}
                call = Call(op, caller, path, query, body)
                response, text = _send(call, client)
                exercised += 1
                status = response.status_code
                outcome[variant] = (status, error_code(text))
                if variant == "missing":
                    continue
                # Only reads may succeed (the reference narrows what acme reads); a write that
                # succeeds has just pointed acme's data at globex's object.
                allowed = {400, 403, 404} | ({200} if op.is_read else set())
                if status not in allowed:
                    failures.append(f"{call.describe()} with globex's {what}: {status}: {text[:300]}")
                found = evidence.found_in(call, status, text)
                if found:
                    failures.append(
                        f"{call.describe()} with globex's {what}: globex's data in the answer: {found}: {text[:300]}"
                    )
            if outcome["foreign"] != outcome["missing"]:
                failures.append(
                    f"{op.key} as {caller}: globex's {what} in the {where} answered {outcome['foreign']}, "
                    f"one that does not exist {outcome['missing']}: another tenant's ids can be probed"
                )
    assert exercised > 0, f"{op.key}: no reference was swapped"
    assert not failures, "\n".join(failures)
    assert snapshot(globex) == before, "acme's requests changed globex's data"


@pytest.mark.parametrize("op", LIST_OPERATIONS, ids=lambda op: op.key)
def test_reads_show_only_the_callers_tenant(worlds, op):
    """Lists, search, ask and the export, with acme's own references: acme's data, never globex's."""
    _require_classified(op)
    acme, globex = worlds.acme, worlds.globex
    evidence = Evidence.of(globex)
    failures = []
    for caller, (client, is_key) in callers(worlds).items():
        call = Call(op, caller, {}, {}, probe_body(op, Refs(acme, is_key=is_key)))
        response, text = _send(call, client)
        if is_key:
            # The all-scope key reads everything: its answer must show acme's own data, or the
            # absence of globex's would prove nothing.
            if response.status_code != 200:
                failures.append(f"{call.describe()}: {response.status_code}: {text[:300]}")
            elif acme.word not in text.lower():
                failures.append(f"{call.describe()}: the answer shows none of acme's own data: {text[:300]}")
        elif response.status_code not in (200, 403):  # members see what their role allows
            failures.append(f"{call.describe()}: {response.status_code}: {text[:300]}")
        found = evidence.found_in(call, response.status_code, text)
        if found:
            failures.append(f"{call.describe()}: globex's data in the answer: {found}: {text[:300]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("op", TENANT_OPERATIONS, ids=lambda op: op.key)
def test_a_key_or_member_naming_another_tenant_is_refused(worlds, op):
    """globex's app key with `X-Tenant: acme` is a 403, globex's signed-in owner naming acme a 404
    (acme is not among their tenants): with acme's own ids and a valid body, nothing of acme's."""
    _require_classified(op)
    acme, globex = worlds.acme, worlds.globex
    before, evidence = snapshot(acme), Evidence.of(acme)
    failures = []
    intruders = {
        "globex key + X-Tenant: acme": (key_client(globex.caller_key), True, 403, "tenant_mismatch"),
        "globex owner (session) + X-Tenant: acme": (_session(globex.owner), False, 404, "tenant_not_found"),
    }
    for caller, (client, is_key, status, code) in intruders.items():
        client.credentials(
            **({"HTTP_AUTHORIZATION": f"Api-Key {globex.caller_key}"} if is_key else {}), HTTP_X_TENANT=acme.slug
        )
        call = Call(
            op,
            caller,
            own_path_values(acme, op),
            {},
            probe_body(op, Refs(acme, is_key=is_key)),
            tenant_header=acme.slug,
        )
        response, text = _send(call, client)
        if (response.status_code, error_code(text)) != (status, code):
            failures.append(f"{call.describe()}: {response.status_code} {text[:300]}, expected {status} {code}")
        found = evidence.found_in(call, response.status_code, text)
        if found:
            failures.append(f"{call.describe()}: acme's data in the answer: {found}: {text[:300]}")
    assert not failures, "\n".join(failures)
    assert snapshot(acme) == before, "globex's requests changed acme's data"
