"""Property-based ACL leak test: no search ever returns a chunk its caller may not read.

Hypothesis draws a small world — two tenants, members with random roles (some in both tenants), API
keys with random scopes, groups, collections, documents with one or two versions, grants on
collections (inherited by their documents) and on documents (overrides, possibly empty: a deny) —
then a random history of changes: grants replaced (revocations), overrides set and dropped, group
members added and removed, groups deleted, roles changed, members deactivated, keys revoked,
documents published, rolled forward, archived, unarchived, deleted and purged, new versions. Each
change runs through the platform's services and its after-commit index sync, as a committed request
would. Then every caller — each member, each key as itself, each key acting for a member, members of
the other tenant — runs a search (they take turns over the example's random queries: BM25 with any
text, dense and hybrid from a fixed query pool, random k, fusion, per-document cap, collection and
document filters that may name another tenant's ids) through `pipeline_run`, the function the
search API runs. Deactivated members and revoked keys are checked to be refused instead.

Two layers are checked for every run:

* the engine's own candidates (`run.bm25`, `run.dense`: filtered *inside* the search query, before
  any re-check) hold only chunks the caller may read, and the dense side holds *all* of them (the
  pool is far smaller than the candidate depth), so the filter neither leaks nor over-filters;
* the chunks the pipeline shows (after `RecheckPermissions`) are readable too, and with the index
  in sync the re-check drops nothing and a dense or hybrid search without a per-document cap shows
  min(k, readable) chunks.

In about half of the examples, further changes follow whose after-commit index tasks never run
(grants, lifecycle, versions, and revocations aimed at documents that are live at that moment): the
index lags, as it does between a commit and its task. Then only the shown chunks are held to the
rule — closing that window is the re-check's job — and the run counts the stale candidates the
engine offered, which the leak check on the engine would have caught had the index been in sync.

"May read" comes from an oracle that shares no code with the filter: the tenant and published state
of the document from the database, the member's role (owner, admin and editor read everything) or
the key's documents:write scope, and otherwise django-guardian's own `ObjectPermissionChecker` on
the document when it has grants of its own, else on its collection. It never calls
`apps/access/principals.py` or `apps/access/checks.py`.

Speed: chunk rows get vectors of a fixed text pool, embedded once per process by the real model;
query vectors come from the same once-per-process cache (encoding one query costs ~0.5 s on this
machine). Versions are created with their chunks directly (what ingestion stores), then go through
the real index writer (`search.services.index_versions`), the real publish and the real syncs. Each
example runs in a savepoint that is rolled back, and the chunks it indexed are deleted from the
index afterwards, so examples never see each other.

Two explicit examples run first, every time: a reader's grant revoked (on the document, then on
its collection) while the index lags. Drawn examples reach that window rarely, and there only the
re-check stands between the reader and the chunks the index still lets through.

Not vacuous: at the end, a share of the searches must have shown chunks, a share must have come
from callers denied some of their tenant's live chunks, and the lagging index must have produced
stale engine candidates that the re-check dropped, live chunks whose grant was revoked among them.

Deterministic in CI (derandomize); `ACL_FUZZ_EXAMPLES=n` runs more (or fewer) examples,
`ACL_FUZZ_RANDOM=1` draws new ones each run, for exploring locally, and `ACL_FUZZ_REPRODUCE=<blob>`
replays the failing example whose blob a failure prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.db import transaction
from guardian.core import ObjectPermissionChecker
from hypothesis import HealthCheck, example, given, note, reproduce_failure
from hypothesis import __version__ as hypothesis_version
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from apps.access.grants import Grant, grants_list
from apps.access.levels import Level
from apps.access.principals import context_principals, tenant_wide
from apps.answers import steps as answer_steps
from apps.answers.services import pipeline_run
from apps.answers.types import RetrievalRequest
from apps.audit.models import Kind
from apps.core.exceptions import ApplicationError, NotAuthenticated, NotFound, PermissionDenied
from apps.corpus.embedding import get_embedder
from apps.corpus.models import Chunk, chunk_id
from apps.documents import services as document_services
from apps.documents import services as documents
from apps.documents.models import Collection, Document, DocumentState, DocumentVersion, IngestionStatus
from apps.search import services as search_services
from apps.search.backends import get_search_backend, reset_search_backends
from apps.search.types import ChunkRef, Fusion, Mode, SearchFilters
from apps.tenants import services as tenants
from apps.tenants.actors import Actor
from apps.tenants.models import ApiKey, Membership, Role, Scope, TenantGroup
from apps.tenants.resolution import act_for_user, resolve_tenant_context

SYSTEM = Actor(user=None)

# ------------------------------------------------------------------------------------ text pools
# Chunk texts share words, so BM25 queries match across documents of different access.
CHUNK_TEXTS = [
    "Travel policy: economy flights, hotel receipts and travel budget approvals.",
    "Security policy: passwords, remote access and multi-factor authentication for every employee.",
    "Salary bands for engineers and the annual bonus paid every March.",
    "Hotel and flight bookings go through the travel desk; receipts within thirty days.",
    "Incident response: report security incidents and lost laptops to the service desk at once.",
    "Merger plans: confidential budget figures for the acquisition of a competitor.",
    "Holiday calendar and leave requests; managers approve leave within a week.",
    "Customer contracts renew every year; the legal team reviews contract changes.",
    "Performance reviews happen twice a year with salary adjustments and bonus targets.",
    "Office access badges, visitor registration and security at the reception desk.",
]
VOCABULARY = sorted({w.strip(".,:;").lower() for text in CHUNK_TEXTS for w in text.split()} - {""})
# Dense and hybrid queries come from this pool (embedded once); BM25 takes any text at all.
QUERY_POOL = [
    "travel receipts",
    "security passwords",
    "salary bonus",
    "merger budget",
    "leave requests",
    "contract changes",
    "desk",
    "What is the policy?",
    "zzzz qqqq",
    "économie 旅行",
]

_vectors: dict[str, np.ndarray] = {}


def vectors() -> dict[str, np.ndarray]:
    """The real model's vectors of both pools, computed once per process: the chunks' as ingestion
    embeds them, the queries' on the query runtime a search uses."""
    if not _vectors:
        embedder = get_embedder()
        _vectors.update(zip(CHUNK_TEXTS, embedder.encode(CHUNK_TEXTS), strict=True))
        _vectors.update(zip(QUERY_POOL, embedder.encode_queries(QUERY_POOL), strict=True))
    return _vectors


class PooledEmbedder:
    """The real embedder behind a cache of the pools: the pipeline's EmbedQuery gets the model's
    own vector for a pooled query without a 0.5 s forward pass; anything else is encoded for real."""

    @property
    def identity(self) -> str:
        return get_embedder().identity

    @property
    def query_runtime(self) -> str:
        return get_embedder().query_runtime

    def encode(self, texts: list[str], **kwargs) -> np.ndarray:
        pooled = self._pooled(texts)
        return pooled if pooled is not None else get_embedder().encode(texts, **kwargs)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        pooled = self._pooled(texts)
        return pooled if pooled is not None else get_embedder().encode_queries(texts)

    @staticmethod
    def _pooled(texts: list[str]) -> np.ndarray | None:
        cache = vectors()
        return np.stack([cache[t] for t in texts]) if all(t in cache for t in texts) else None


# ------------------------------------------------------------------------------------ strategies
ROLES = st.sampled_from([Role.OWNER, Role.ADMIN, Role.EDITOR, Role.READER, Role.READER, Role.READER, Role.COMPLIANCE])
MAX_PEOPLE, MAX_KEYS, MAX_GROUPS, MAX_COLLECTIONS, MAX_DOCUMENTS = 5, 2, 3, 3, 5

# Who a grant goes to: a member, a key's service user, a tenant group, or the tenant's 'everyone'.
PRINCIPAL = st.one_of(
    st.tuples(st.just("person"), st.integers(0, MAX_PEOPLE - 1)),
    st.tuples(st.just("key"), st.integers(0, MAX_KEYS - 1)),
    st.tuples(st.just("group"), st.integers(0, MAX_GROUPS - 1)),
    st.just(("everyone",)),
)
GRANTS = st.lists(st.tuples(PRINCIPAL, st.sampled_from(list(Level))), max_size=3)
TEXTS = st.lists(st.integers(0, len(CHUNK_TEXTS) - 1), min_size=1, max_size=3)
VERSION = st.fixed_dictionaries({"texts": TEXTS, "ready": st.integers(0, 5).map(bool)})  # 1 in 6 not ready
DOCUMENT = st.fixed_dictionaries(
    {
        "collection": st.integers(0, MAX_COLLECTIONS - 1),
        "versions": st.lists(VERSION, min_size=1, max_size=2),
        # Which version to publish (mostly one: drafts find nothing); None: the document stays a draft.
        "publish": st.integers(0, 5).map(lambda n: None if n == 0 else n % 2),
        "override": st.one_of(st.none(), st.none(), GRANTS),  # grants of its own (an empty list denies all)
    }
)
PERSON = st.fixed_dictionaries({"role": ROLES, "other_tenant_role": st.one_of(st.none(), ROLES)})
KEY_SCOPES = st.sets(st.sampled_from([Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE, Scope.ACT_AS_USER])).map(
    lambda scopes: sorted(scopes | {Scope.SEARCH})
)
DOC = st.integers(0, MAX_DOCUMENTS - 1)
PERSON_INDEX = st.integers(0, MAX_PEOPLE - 1)
GROUP_INDEX = st.integers(0, MAX_GROUPS - 1)
# Changes the index must follow (grants, lifecycle, versions)…
INDEX_OPERATION = st.one_of(
    st.tuples(st.just("collection_grants"), st.integers(0, MAX_COLLECTIONS - 1), GRANTS),
    st.tuples(st.just("document_grants"), DOC, GRANTS),
    st.tuples(st.just("document_inherit"), DOC),
    st.tuples(st.sampled_from(["archive", "unarchive", "delete", "purge"]), DOC),
    st.tuples(st.just("publish"), DOC, st.integers(0, 2)),
    st.tuples(st.just("new_version"), DOC, TEXTS, st.booleans()),
)
# Changes that take something away from a document that is live (published) when they happen;
# drawn for the lagging index, where they leave the index with chunks nobody may read any more.
REVOCATION = st.tuples(
    st.just("revoke_live"),
    DOC,
    st.sampled_from(["deny", "revoke_collection", "archive", "delete", "purge", "new_version"]),
)
# …and changes that apply at query time (memberships, roles, keys), which it never stores.
OPERATION = st.one_of(
    INDEX_OPERATION,
    st.tuples(st.just("group_add"), GROUP_INDEX, PERSON_INDEX),
    st.tuples(st.just("group_remove"), GROUP_INDEX, PERSON_INDEX),
    st.tuples(st.just("group_delete"), GROUP_INDEX),
    st.tuples(st.just("set_role"), PERSON_INDEX, ROLES),
    st.tuples(st.just("set_active"), PERSON_INDEX, st.booleans()),
    st.tuples(st.just("revoke_key"), st.integers(0, MAX_KEYS - 1)),
)
FILTER = st.one_of(
    st.just(None),
    st.just(None),
    st.just(None),
    st.just(None),
    st.tuples(st.just("collections"), st.sets(st.integers(0, MAX_COLLECTIONS + 1), min_size=1, max_size=3)),
    st.tuples(st.just("documents"), st.sets(st.integers(0, MAX_DOCUMENTS + 2), min_size=1, max_size=4)),
)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40).filter(str.strip)


@st.composite
def queries(draw) -> dict:
    # Dense and hybrid searches reach every chunk the filter lets through; BM25 only those that
    # share a word with the query, so it is drawn less often and mostly from the vocabulary.
    mode = draw(st.sampled_from([Mode.BM25, Mode.DENSE, Mode.HYBRID, Mode.HYBRID]))
    if mode == Mode.BM25:
        words = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=4).map(" ".join)
        text = draw(st.one_of(words, words, st.sampled_from(QUERY_POOL), ANY_TEXT))
    else:
        text = draw(st.sampled_from(QUERY_POOL))
    return {
        # k up to past the pool (every candidate then goes through fusion and the re-check).
        "mode": mode,
        "text": text,
        "k": draw(st.one_of(st.integers(1, 10), st.sampled_from([20, 50]))),
        "fusion": draw(st.sampled_from(list(Fusion))),
        "max_per_document": draw(st.one_of(st.none(), st.none(), st.integers(1, 2))),
        "filter": draw(FILTER),
    }


@st.composite
def worlds(draw) -> dict:
    return {
        "people": draw(st.lists(PERSON, min_size=2, max_size=MAX_PEOPLE)),
        "keys": draw(st.lists(KEY_SCOPES, max_size=MAX_KEYS)),
        "groups": draw(st.lists(st.sets(PERSON_INDEX, max_size=4), max_size=MAX_GROUPS)),
        "collections": draw(st.lists(GRANTS, min_size=1, max_size=MAX_COLLECTIONS)),
        "documents": draw(st.lists(DOCUMENT, min_size=2, max_size=MAX_DOCUMENTS)),
        "other_tenant_documents": draw(st.lists(DOCUMENT, min_size=1, max_size=1)),
        "operations": draw(st.lists(OPERATION, max_size=5)),
        # In about half of the examples, more changes follow that are committed but never reach
        # the index: it lags behind the database.
        # They open with a revocation, so every lagging index holds something taken away.
        "lagging_operations": draw(
            st.integers(0, 2).flatmap(
                lambda n: (
                    st.tuples(REVOCATION, st.lists(st.one_of(REVOCATION, INDEX_OPERATION), max_size=2)).map(
                        lambda first_and_rest: [first_and_rest[0], *first_and_rest[1]]
                    )
                    if n == 0
                    else st.just([])
                )
            )
        ),
        "act_as": draw(PERSON_INDEX),
        "queries": draw(st.lists(queries(), min_size=2, max_size=4)),  # the callers take turns
    }


# ------------------------------------------------------------------------------------ the world
@dataclass
class Built:
    """The database objects of one example, by the spec's indices."""

    tenant: object
    other: object
    people: list[Membership]
    other_memberships: list[Membership]
    keys: list[tuple[ApiKey, str]]
    groups: list[TenantGroup | None]  # None once deleted
    collections: list[Collection]
    other_collections: list[Collection]
    documents: list[Document]
    other_documents: list[Document]
    indexed: list[ChunkRef] = field(default_factory=list)  # everything written to the index, for cleanup

    def principal(self, ref, tenant):
        """A grantee of `tenant` only, as the grants API and admin allow. The other tenant has its
        members and its 'everyone' group, no keys or groups of its own."""
        kind = ref[0]
        if kind == "everyone":
            return TenantGroup.objects.get(tenant=tenant, is_everyone=True).auth_group
        if tenant != self.tenant:
            members = self.other_memberships
            return members[ref[1] % len(members)].user if kind == "person" and members else None
        if kind == "person":
            return self.people[ref[1] % len(self.people)].user
        if kind == "key":
            return self.keys[ref[1] % len(self.keys)][0].service_user if self.keys else None
        group = self.groups[ref[1] % len(self.groups)] if self.groups else None
        return group.auth_group if group else None

    def grants(self, spec, tenant) -> list[Grant]:
        return [Grant(p, level) for ref, level in spec if (p := self.principal(ref, tenant)) is not None]


def add_version(built: Built, document: Document, texts: list[int]) -> DocumentVersion:
    """What ingestion stores for a version: a version row, its chunk rows with their vectors. The
    caller then indexes it (`search.services.index_versions`, the real index writer) and marks it
    ready, as ingestion's last steps do."""
    number = (document.versions.count() or 0) + 1
    content = "\n\n".join(CHUNK_TEXTS[i] for i in texts).encode()
    version = DocumentVersion.objects.create(
        document=document,
        number=number,
        original_filename=f"v{number}.txt",
        media_type="text/plain",
        size=len(content),
        sha256=hashlib.sha256(content + bytes([number])).hexdigest(),
    )
    offset, rows = 0, []
    for ordinal, i in enumerate(texts):
        text = CHUNK_TEXTS[i]
        rows.append(
            Chunk(
                id=chunk_id(version.pk, ordinal),
                version=version,
                ordinal=ordinal,
                text=text,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                start_offset=offset,
                end_offset=offset + len(text),
                embedding=vectors()[text].tobytes(),
                embedding_model="pooled:all-MiniLM-L6-v2",
            )
        )
        offset += len(text) + 2
    Chunk.objects.bulk_create(rows)
    built.indexed += [ChunkRef(row.id, document.tenant_id) for row in rows]
    return version


def create_documents(built: Built, tenant, collections, specs, commit) -> list[tuple[Document, dict, list]]:
    """Documents (with their own grants, if any) and their versions' chunk rows, not yet indexed."""
    made = []
    for n, spec in enumerate(specs):
        document = documents.document_create(
            tenant=tenant,
            collection=collections[spec["collection"] % len(collections)],
            title=f"{tenant.slug} doc {n}",
            actor=SYSTEM,
        )
        if spec["override"] is not None:
            commit(
                document_services.grants_replace,
                obj=document,
                grants=built.grants(spec["override"], tenant),
                actor=SYSTEM,
            )
        made.append((document, spec, [add_version(built, document, v["texts"]) for v in spec["versions"]]))
    return made


def finish_ingestion(made: list[tuple[Document, dict, list]], commit) -> None:
    """Ingestion's last steps for every version at once: one index write (as ingestion indexes a
    batch), ready unless the spec says ingestion has not finished; then publish as the spec says."""
    search_services.index_versions(version_ids=[v.pk for _, _, versions in made for v in versions])
    for _document, spec, versions in made:
        for version, version_spec in zip(versions, spec["versions"], strict=True):
            if version_spec["ready"]:
                documents.version_set_status(version=version, status=IngestionStatus.READY)
        if spec["publish"] is not None:
            version = versions[spec["publish"] % len(versions)]
            if version.status == IngestionStatus.READY:
                commit(documents.version_publish, version=version, actor=SYSTEM)


def build(spec: dict, commit) -> Built:
    """The world of `spec`, each write committed on its own (`commit` runs its index syncs), in
    the order a tenant would set it up: people, groups, collections and their grants, documents."""
    tenant = tenants.tenant_create(slug="fuzz-a", name="Fuzz A")
    other = tenants.tenant_create(slug="fuzz-b", name="Fuzz B")
    people = [
        tenants.member_create(tenant=tenant, username=f"p{i}", role=p["role"]) for i, p in enumerate(spec["people"])
    ]
    other_memberships = [
        tenants.membership_add(tenant=other, user=m.user, username=f"p{i}", role=p["other_tenant_role"])
        for i, (m, p) in enumerate(zip(people, spec["people"], strict=True))
        if p["other_tenant_role"] is not None
    ]
    keys = [
        tenants.api_key_create(tenant=tenant, name=f"key{i}", scopes=scopes) for i, scopes in enumerate(spec["keys"])
    ]
    groups = []
    for i, members in enumerate(spec["groups"]):
        group = tenants.group_create(tenant=tenant, name=f"g{i}")
        for person in members:
            tenants.group_member_add(group=group, membership=people[person % len(people)])
        groups.append(group)
    built = Built(tenant, other, people, other_memberships, keys, groups, [], [], [], [])
    for i, grants in enumerate(spec["collections"]):
        collection = documents.collection_create(tenant=tenant, name=f"c{i}")
        commit(document_services.grants_replace, obj=collection, grants=built.grants(grants, tenant), actor=SYSTEM)
        built.collections.append(collection)
    # The other tenant: one collection its 'everyone' group reads, so its members find something.
    their_collection = documents.collection_create(tenant=other, name="theirs")
    their_everyone = TenantGroup.objects.get(tenant=other, is_everyone=True).auth_group
    commit(
        document_services.grants_replace, obj=their_collection, grants=[Grant(their_everyone, Level.VIEW)], actor=SYSTEM
    )
    built.other_collections.append(their_collection)
    ours = create_documents(built, tenant, built.collections, spec["documents"], commit)
    theirs = create_documents(built, other, built.other_collections, spec["other_tenant_documents"], commit)
    finish_ingestion(ours + theirs, commit)
    built.documents = [document for document, _, _ in ours]
    built.other_documents = [document for document, _, _ in theirs]
    return built


def apply(built: Built, operation: tuple) -> None:
    """One change through its service. Changes the lifecycle refuses (archiving a deleted document,
    publishing a version that is not ready…) are refused here too, and simply change nothing."""
    kind, *args = operation

    def fresh(i: int) -> Document:  # services decide on the row as it is now
        return Document.objects.across_tenants().get(pk=built.documents[i % len(built.documents)].pk)

    def person(i: int) -> Membership:
        return Membership.objects.across_tenants().get(pk=built.people[i % len(built.people)].pk)

    def group(i: int) -> TenantGroup | None:
        return built.groups[i % len(built.groups)] if built.groups else None

    if kind == "revoke_live":
        live = list(
            Document.objects.filter(tenant=built.tenant, state=DocumentState.PUBLISHED)
            .select_related("collection")
            .order_by("pk")
        )
        if not live:
            return
        if args[1] in ("deny", "revoke_collection"):
            # Aim at a document somebody reads by a grant: only then does revoking it leave the
            # index with chunks a reader may no longer see (owners, admins and editors keep them).
            live = [d for d in live if grants_list(d if d.has_own_grants else d.collection)] or live
        document, action = live[args[0] % len(live)], args[1]
        if action == "deny":  # grants of its own, to nobody
            kind, args = "document_grants", [built.documents.index(document), []]
        elif action == "revoke_collection":
            kind, args = "collection_grants", [built.collections.index(document.collection), []]
        elif action == "new_version":
            kind, args = "new_version", [built.documents.index(document), [0], True]
        else:
            kind, args = action, [built.documents.index(document)]

    try:
        if kind == "collection_grants":
            collection = built.collections[args[0] % len(built.collections)]
            document_services.grants_replace(obj=collection, grants=built.grants(args[1], built.tenant), actor=SYSTEM)
        elif kind == "document_grants":
            document_services.grants_replace(
                obj=fresh(args[0]), grants=built.grants(args[1], built.tenant), actor=SYSTEM
            )
        elif kind == "document_inherit":
            document_services.document_grants_inherit(document=fresh(args[0]), actor=SYSTEM)
        elif kind in ("group_add", "group_remove") and group(args[0]) is not None:
            change = tenants.group_member_add if kind == "group_add" else tenants.group_member_remove
            change(group=group(args[0]), membership=person(args[1]))
        elif kind == "group_delete" and group(args[0]) is not None:
            tenants.group_delete(group=group(args[0]))
            built.groups[args[0] % len(built.groups)] = None
        elif kind == "set_role":
            tenants.member_set_role(membership=person(args[0]), role=args[1])
        elif kind == "set_active":
            tenants.member_set_active(membership=person(args[0]), active=args[1])
        elif kind == "revoke_key" and built.keys:
            tenants.api_key_revoke(api_key=built.keys[args[0] % len(built.keys)][0])
        elif kind == "purge":  # delete first if need be, as an editor would
            if fresh(args[0]).state != DocumentState.DELETED:
                documents.document_delete(document=fresh(args[0]), actor=SYSTEM)
            documents.document_purge(document=fresh(args[0]), actor=SYSTEM)
        elif kind in ("archive", "unarchive", "delete"):
            service = {
                "archive": documents.document_archive,
                "unarchive": documents.document_unarchive,
                "delete": documents.document_delete,
            }[kind]
            service(document=fresh(args[0]), actor=SYSTEM)
        elif kind == "publish":
            document = fresh(args[0])
            versions = list(document.versions.order_by("number"))
            version = versions[args[1] % len(versions)]
            if document.published_version_id is None:
                documents.version_publish(version=version, actor=SYSTEM)
            else:
                documents.document_rollback(document=document, version=version, actor=SYSTEM)
        elif kind == "new_version":
            document = fresh(args[0])
            if document.state != DocumentState.DELETED:
                version = add_version(built, document, args[1])
                search_services.index_versions(version_ids=[version.pk])
                documents.version_set_status(version=version, status=IngestionStatus.READY)
                if args[2]:
                    documents.version_publish(version=version, actor=SYSTEM)
    except ApplicationError:
        pass


# ------------------------------------------------------------------------------------ the oracle
TENANT_READERS = (Role.OWNER, Role.ADMIN, Role.EDITOR)


def oracle_readable(*, tenant, user, role: str | None, key_scopes: list[str] | None, docs: list[Document]) -> set[int]:
    """The documents of `tenant` this caller may read: published, and read by role (owner, admin,
    editor), by a key's documents:write, or by guardian's own check of a view grant on the document
    when it has grants of its own, else on its collection. Independent of apps/access."""
    published = [
        d for d in docs if d.tenant_id == tenant.pk and d.state == DocumentState.PUBLISHED and d.published_version_id
    ]
    if role in TENANT_READERS or (role is None and Scope.DOCUMENTS_WRITE in key_scopes):
        return {d.pk for d in published}
    checker = ObjectPermissionChecker(user)
    own = [d for d in published if d.has_own_grants]
    if own:
        checker.prefetch_perms(own)
    collections = list({d.collection_id: d.collection for d in published if not d.has_own_grants}.values())
    if collections:
        checker.prefetch_perms(collections)
    return {
        d.pk
        for d in published
        if (
            checker.has_perm("view_document", d)
            if d.has_own_grants
            else checker.has_perm("view_collection", d.collection)
        )
    }


@dataclass
class Caller:
    label: str
    context: object
    user: object
    role: str | None
    key_scopes: list[str] | None


def callers(built: Built, spec: dict) -> list[Caller]:
    """Everyone who can still search, each resolved the way a request is. Those who cannot
    (deactivated members, revoked keys) are checked to be refused."""
    found = []
    memberships = Membership.objects.across_tenants().filter(
        pk__in=[m.pk for m in built.people + built.other_memberships]
    )
    for membership in memberships.select_related("user", "tenant"):
        if not membership.is_active:
            with pytest.raises(PermissionDenied):
                resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=membership.tenant.slug)
            continue
        context = resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=membership.tenant.slug)
        label = f"{membership.username}@{membership.tenant.slug} ({membership.role})"
        found.append(Caller(label, context, membership.user, membership.role, None))
    target = built.people[spec["act_as"] % len(built.people)]
    for api_key, raw in built.keys:
        api_key.refresh_from_db()
        if api_key.revoked_at is not None:
            with pytest.raises(NotAuthenticated):
                tenants.api_key_authenticate(raw_key=raw)
            continue
        context = resolve_tenant_context(user=None, api_key=tenants.api_key_authenticate(raw_key=raw), tenant_slug=None)
        found.append(
            Caller(f"key {api_key.name} {api_key.scopes}", context, api_key.service_user, None, api_key.scopes)
        )
        if Scope.ACT_AS_USER in api_key.scopes:
            member = Membership.objects.across_tenants().get(pk=target.pk)
            if not member.is_active:
                with pytest.raises(NotFound):
                    act_for_user(context, member.username)
                continue
            found.append(
                Caller(
                    f"key {api_key.name} as {member.username} ({member.role})",
                    act_for_user(context, member.username),
                    member.user,
                    member.role,
                    None,
                )
            )
    return found


# ------------------------------------------------------------------------------------ checking
@dataclass
class Stats:
    examples: int = 0
    runs: int = 0
    runs_with_results: int = 0
    runs_with_denied_chunks: int = 0  # the caller's tenant had published chunks the caller may not read
    lagging_examples: int = 0
    stale_engine_candidates: int = 0  # lagging index: the engine offered what the caller may no longer read…
    stale_revoked: int = 0  # …of which live chunks whose grant was revoked (the rest: lifecycle changes)
    dropped_by_recheck: int = 0  # …and the re-check dropped it
    step_ms: Counter = field(default_factory=Counter)  # the pipeline's own step timings, summed
    phase_s: Counter = field(default_factory=Counter)  # build / changes / checks, summed

    def summary(self) -> str:
        steps = ", ".join(f"{name} {ms / max(self.runs, 1):.1f}" for name, ms in self.step_ms.most_common(3))
        phases = ", ".join(f"{name} {s:.0f}s" for name, s in self.phase_s.items())
        return (
            f"{self.examples} examples, {self.runs} searches ({self.runs_with_results} with results, "
            f"{self.runs_with_denied_chunks} by callers denied some of their tenant's chunks); "
            f"{self.lagging_examples} with a lagging index: {self.stale_engine_candidates} stale candidates from the "
            f"engine ({self.stale_revoked} live ones whose grant was revoked), {self.dropped_by_recheck} "
            f"dropped by the re-check. Per search, ms: {steps}. Time: {phases}"
        )


def request_of(query: dict, built: Built) -> RetrievalRequest:
    filters = SearchFilters()
    if query["filter"] is not None:
        kind, picks = query["filter"]
        if kind == "collections":
            pool = [c.pk for c in built.collections + built.other_collections]
            filters = SearchFilters(collection_ids=tuple(sorted({pool[i % len(pool)] for i in picks})))
        else:
            pool = [d.pk for d in built.documents + built.other_documents]
            filters = SearchFilters(document_ids=tuple(sorted({pool[i % len(pool)] for i in picks})))
    return RetrievalRequest(
        query=query["text"],
        mode=query["mode"],
        k=query["k"],
        fusion=query["fusion"],
        max_per_document=query["max_per_document"],
        filters=filters,
    )


def check(built: Built, spec: dict, lagging: bool, stats: Stats) -> None:
    docs = list(
        Document.objects.across_tenants().filter(tenant__in=[built.tenant, built.other]).select_related("collection")
    )
    by_id = {d.pk: d for d in docs}
    # Every chunk in the database, with its document; a chunk is live when its version is the
    # published one of a published document.
    chunks = {
        cid: (doc_id, version_id)
        for cid, doc_id, version_id in Chunk.objects.across_tenants()
        .filter(version__document__in=docs)
        .values_list("id", "version__document_id", "version_id")
    }

    def live(cid: str) -> bool:
        doc_id, version_id = chunks[cid]
        document = by_id[doc_id]
        return document.state == DocumentState.PUBLISHED and document.published_version_id == version_id

    # The completeness check needs every live chunk within one retriever's depth (at least 50).
    assert sum(map(live, chunks)) < 50

    for n, caller in enumerate(callers(built, spec)):
        tenant = caller.context.tenant
        readable_docs = oracle_readable(
            tenant=tenant, user=caller.user, role=caller.role, key_scopes=caller.key_scopes, docs=docs
        )
        readable = {cid for cid in chunks if live(cid) and chunks[cid][0] in readable_docs}
        tenant_live = {cid for cid in chunks if live(cid) and by_id[chunks[cid][0]].tenant_id == tenant.pk}
        # Each caller runs one of the example's queries (all of them would mostly repeat the
        # same check at the cost of the re-check's ~40 ms per search).
        for query in [spec["queries"][n % len(spec["queries"])]]:
            request = request_of(query, built)
            try:
                run = pipeline_run(context=caller.context, request=request, kind=Kind.SEARCH)
            except PermissionDenied as exc:
                # Weighted fusion is for callers who read everything (answers.services.fusion_check):
                # refused for anyone else, whose search then runs with reciprocal rank fusion.
                assert exc.code == "weighted_fusion_not_allowed", exc
                assert request.mode == Mode.HYBRID and request.fusion == Fusion.WEIGHTED, (caller.label, query)
                assert tenant_wide(tenant.pk) not in context_principals(caller.context), caller.label
                request = dataclasses.replace(request, fusion=Fusion.RRF)
                run = pipeline_run(context=caller.context, request=request, kind=Kind.SEARCH)
            stats.runs += 1
            stats.step_ms.update(run.timings)
            stats.runs_with_results += bool(run.shown)
            stats.runs_with_denied_chunks += bool(tenant_live - readable)
            where = f"{caller.label} searching {query}"
            shown = [r.hit.chunk_id for r in run.shown]
            leaked = [describe(cid, chunks, by_id) for cid in shown if cid not in readable]
            assert not leaked, f"LEAK through the pipeline: {where} was shown {leaked}"
            engine = {c.chunk_id for c in (*run.bm25, *run.dense)}
            if lagging:
                stale = engine - readable
                stats.stale_engine_candidates += len(stale)
                stats.stale_revoked += sum(
                    1 for cid in stale if cid in chunks and live(cid) and by_id[chunks[cid][0]].tenant_id == tenant.pk
                )
                stats.dropped_by_recheck += sum(1 for r in run.ranked if not r.passed_recheck)
                continue
            leaked = [describe(cid, chunks, by_id) for cid in sorted(engine - readable)]
            assert not leaked, f"LEAK inside the search engine's filter: {where} got candidates {leaked}"
            dropped = [(r.hit.chunk_id, r.recheck_reason) for r in run.ranked if not r.passed_recheck]
            assert not dropped, f"index in sync, yet the re-check dropped {dropped} for {where}"
            if request.mode != Mode.BM25:
                expected = {cid for cid in readable if matches(request.filters, by_id[chunks[cid][0]])}
                dense = {c.chunk_id for c in run.dense}
                assert dense == expected, (
                    f"{where}: the dense retriever found {sorted(dense)}, but the caller may read {sorted(expected)} "
                    f"(missing {sorted(expected - dense)})"
                )
                if request.max_per_document is None:
                    assert len(shown) == min(request.k, len(expected)), (
                        f"{where}: shown {shown}, readable {sorted(expected)}"
                    )


def matches(filters: SearchFilters, document: Document) -> bool:
    if filters.collection_ids and document.collection_id not in filters.collection_ids:
        return False
    return not filters.document_ids or document.pk in filters.document_ids


def describe(cid: str, chunks: dict, by_id: dict) -> str:
    if cid not in chunks:
        return f"{cid} (not in the database: purged)"
    doc_id, version_id = chunks[cid]
    d = by_id[doc_id]
    return (
        f"{cid} of document {doc_id} '{d.title}' (tenant {d.tenant_id}, {d.state}, published version "
        f"{d.published_version_id}, chunk's version {version_id}, own grants {d.has_own_grants}, collection "
        f"{d.collection_id})"
    )


def hypothesis_examples(specs: list[dict]):
    """`@example(spec=...)` for each of `specs`."""

    def decorate(test):
        for spec in reversed(specs):
            test = example(spec=spec)(test)
        return test

    return decorate


# The explicit examples (see the module's docstring). A drawn example reaches this window only when
# a reader holds a grant on a live document that a lagging revocation then hits, and searches for it:
# at 100 examples, a re-check that ignored grants went unnoticed.
def _revoked_while_lagging(revocation: str) -> dict:
    document = {"collection": 0, "versions": [{"texts": [0, 1], "ready": True}], "publish": 0, "override": None}
    return {
        "people": [{"role": Role.READER, "other_tenant_role": None}, {"role": Role.OWNER, "other_tenant_role": None}],
        "keys": [],
        "groups": [],
        "collections": [[(("person", 0), Level.VIEW)]],
        "documents": [document, {**document, "versions": [{"texts": [2], "ready": True}]}],
        "other_tenant_documents": [{**document, "versions": [{"texts": [3], "ready": True}]}],
        "operations": [],
        "lagging_operations": [("revoke_live", 0, revocation)],
        "act_as": 0,
        "queries": [
            {
                "mode": Mode.DENSE,
                "text": QUERY_POOL[0],
                "k": 10,
                "fusion": Fusion.RRF,
                "max_per_document": None,
                "filter": None,
            }
        ],
    }


EXPLICIT_EXAMPLES = [_revoked_while_lagging("deny"), _revoked_while_lagging("revoke_collection")]


# ------------------------------------------------------------------------------------ the tests
class _Rollback(Exception):
    """Raised at the end of every example: its savepoint rolls back, the next starts clean."""


def fuzz(*, max_examples: int, capture, monkeypatch) -> Stats:
    monkeypatch.setattr(answer_steps, "get_embedder", PooledEmbedder)  # get_embedder() → a PooledEmbedder
    vectors()  # load the model before timing starts
    backend = get_search_backend()
    stats = Stats()
    max_examples = int(os.environ.get("ACL_FUZZ_EXAMPLES", max_examples))

    # An example takes about a second (a whole world is built), and specs are large: neither is a
    # problem here. No example database, a fixed seed: CI runs the same examples every time.
    @hypothesis_settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=not os.environ.get("ACL_FUZZ_RANDOM"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )
    @given(spec=worlds())
    @hypothesis_examples(EXPLICIT_EXAMPLES)
    def example(spec):
        note(f"spec = {spec!r}")  # in full: hypothesis's own printout abbreviates it
        built = None
        try:
            with transaction.atomic():
                t0 = time.perf_counter()

                def commit(service, **kwargs):
                    """A committed request: the after-commit index syncs it queued run now."""
                    with capture(execute=True):
                        return service(**kwargs)

                built = build(spec, commit)
                t1 = time.perf_counter()
                stats.phase_s["build"] += t1 - t0
                for operation in spec["operations"]:
                    with capture(execute=True):  # each change is a committed request of its own
                        apply(built, operation)
                for operation in spec["lagging_operations"]:
                    with capture(execute=False):  # committed, but their index tasks never run
                        apply(built, operation)
                backend.refresh()
                # Each example deletes what it indexed; after this refresh the deletions of earlier
                # examples are visible too, so the index must hold this example's chunks only
                # (SQLite reuses the ids of rolled-back rows: a leftover could pose as ours).
                leftovers = set(backend.fingerprints()) - {ref.chunk_id for ref in built.indexed}
                assert not leftovers, f"earlier examples left chunks in the index: {sorted(leftovers)}"
                t2 = time.perf_counter()
                stats.phase_s["changes"] += t2 - t1
                lagging = bool(spec["lagging_operations"])
                stats.lagging_examples += lagging
                check(built, spec, lagging, stats)
                stats.phase_s["check"] += time.perf_counter() - t2
                stats.examples += 1
                raise _Rollback
        except _Rollback:
            pass
        finally:
            if built is not None:
                backend.delete_chunks(built.indexed)

    if blob := os.environ.get("ACL_FUZZ_REPRODUCE"):  # the blob hypothesis prints with a failure
        example = reproduce_failure(hypothesis_version, blob)(example)
    started = time.perf_counter()
    example()
    print(f"\nACL fuzz on {backend.name} in {time.perf_counter() - started:.0f}s: {stats.summary()}")
    # Not vacuous: searches found things, callers were denied things, and with a lagging index the
    # engine did offer chunks the caller could no longer read (which the leak check on the engine
    # would have caught had the index been in sync) and the re-check dropped them.
    assert stats.examples == max_examples + len(EXPLICIT_EXAMPLES), stats
    assert stats.runs_with_results > stats.runs // 10, stats
    assert stats.runs_with_denied_chunks > stats.runs // 10, stats
    assert stats.lagging_examples and stats.stale_engine_candidates and stats.dropped_by_recheck, stats
    assert stats.stale_revoked, stats  # a revoked grant the index still holds, met by the re-check alone
    return stats


@pytest.fixture
def embedded_index_in_memory(settings, tmp_path):
    """The embedded backend, its SQLite file on tmpfs when there is one: every index write commits
    and closes its own connection, and on disk the fsyncs alone would take most of the run."""
    folder = Path(tempfile.mkdtemp(dir="/dev/shm")) if Path("/dev/shm").is_dir() else tmp_path
    settings.SEARCH_BACKEND = "embedded"
    settings.SEARCH = {**settings.SEARCH, "EMBEDDED": {"PATH": str(folder / "search.sqlite3")}}
    reset_search_backends()
    yield
    reset_search_backends()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.embedded_only  # the embedded profile's run covers this backend (bin/test runs both)
@pytest.mark.django_db
def test_no_search_returns_a_chunk_the_caller_may_not_read_embedded(
    embedded_index_in_memory, django_capture_on_commit_callbacks, monkeypatch
):
    fuzz(max_examples=100, capture=django_capture_on_commit_callbacks, monkeypatch=monkeypatch)


@pytest.mark.full_profile
@pytest.mark.django_db
def test_no_search_returns_a_chunk_the_caller_may_not_read_elasticsearch(
    django_capture_on_commit_callbacks, monkeypatch
):
    assert django_settings.SEARCH_BACKEND == "elasticsearch"
    fuzz(max_examples=300, capture=django_capture_on_commit_callbacks, monkeypatch=monkeypatch)
