"""Attacks on the search re-check (apps/answers/steps.py `recheck`): the database's final say on
whether each hit may be shown. The response and the audit record show the hit's own document id,
collection and title (apps/answers/api.py, apps/answers/services.py), so the re-check must vouch
for the document the hit names, not only for the chunk's real one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.access.principals import context_principals
from apps.answers.steps import recheck
from apps.answers.types import RankedChunk
from apps.audit.models import AuditRecord
from apps.corpus.models import Chunk
from apps.documents import services as documents
from apps.documents.models import Document, DocumentState
from apps.search.backends import get_search_backend
from apps.search.projection import project, searchable_chunks_of
from apps.search.types import Mode, SearchQuery
from apps.tenants.actors import Actor
from apps.tenants.resolution import act_for, member_context
from tests.answers.conftest import _hit_of

NOT_READABLE = "the caller may not read the document (now), or it is not published"
SUPERSEDED = "the version is no longer the published one"
GONE = "the chunk is no longer in the database"
MISLABELLED = "the index names another document than the chunk's"


def _ranked(tenant, document: Document, rank: int = 1, **changes) -> RankedChunk:
    version = document.published_version
    chunk = Chunk.objects.for_tenant(tenant).filter(version=version).order_by("ordinal").first()
    return RankedChunk(hit=replace(_hit_of(chunk, version, rank), **changes), fused_rank=rank)


def _verdicts(checked):
    return [(r.passed_recheck, r.recheck_reason) for r in checked]


@pytest.mark.django_db
def test_a_hit_naming_an_unreadable_document_is_refused_even_when_its_chunk_is_readable(library):
    """The index says a travel chunk belongs to the salary bands (which alice may not read): the
    response would show alice `document_id`/`collection_id`/`title` of the salary bands. A second,
    honest travel hit puts travel in the batch's document ids."""
    tenant = library.world.tenant
    alice = member_context(library.alice)
    honest = _ranked(tenant, library.travel, 1)
    mislabelled = _ranked(
        tenant,
        library.travel,
        2,
        document_id=library.salaries.pk,
        collection_id=library.salaries.collection_id,
        title=library.salaries.title,
    )
    checked = recheck(alice, [honest, mislabelled])
    assert checked[0].passed_recheck
    assert _verdicts(checked)[1] == (False, MISLABELLED), "a hit naming a document alice may not read was shown"


@pytest.mark.django_db
def test_a_hit_naming_another_readable_document_than_its_chunks_is_refused(library):
    tenant = library.world.tenant
    alice = member_context(library.alice)
    honest = _ranked(tenant, library.travel, 1)
    wrong = _ranked(tenant, library.travel, 2, document_id=library.security.pk)  # readable, but not its document
    checked = recheck(alice, [honest, wrong])
    assert checked[0].passed_recheck and _verdicts(checked)[1] == (False, MISLABELLED)
    assert _verdicts(recheck(alice, [wrong])) == [(False, MISLABELLED)]


@pytest.mark.django_db
def test_a_hit_naming_a_missing_document_is_refused(library):
    alice = member_context(library.alice)
    checked = recheck(alice, [_ranked(library.world.tenant, library.travel, document_id=10**9)])
    assert not checked[0].passed_recheck


@pytest.mark.django_db
def test_readable_hits_pass_with_sections_and_vectors_and_duplicates(library):
    tenant = library.world.tenant
    alice = member_context(library.alice)
    hit = _ranked(tenant, library.travel)
    ranked = [hit, replace(hit, fused_rank=2), _ranked(tenant, library.security, 3)]
    for flags in ({}, {"sections": True}, {"vectors": True}, {"sections": True, "vectors": True}):
        checked = recheck(alice, ranked, **flags)
        assert _verdicts(checked) == [(True, "")] * 3, flags
        assert all(r.facts is not None for r in checked)
        if flags.get("sections"):
            assert all(r.facts.section is not None and r.facts.section.text for r in checked)
        if flags.get("vectors"):
            assert all(r.facts.vector is not None and len(r.facts.vector) for r in checked)


@pytest.mark.django_db
def test_the_owner_reads_by_role_and_a_grantless_reader_reads_nothing(library):
    tenant = library.world.tenant
    ranked = [_ranked(tenant, d, n) for n, d in enumerate((library.travel, library.salaries), start=1)]
    assert _verdicts(recheck(member_context(library.world.owner), ranked)) == [(True, "")] * 2
    assert _verdicts(recheck(member_context(library.world.reader), ranked)) == [(False, NOT_READABLE)] * 2
    assert _verdicts(recheck(member_context(library.bob), ranked)) == [(False, NOT_READABLE), (True, "")]


@pytest.mark.django_db
def test_empty_ranked_list(library):
    assert recheck(member_context(library.alice), []) == []


@pytest.mark.django_db
def test_a_superseded_version_is_refused_with_its_own_reason(library, django_capture_on_commit_callbacks):
    tenant = library.world.tenant
    old = _ranked(tenant, library.travel)
    with django_capture_on_commit_callbacks(execute=True):
        documents.version_upload(
            document=library.travel,
            file=SimpleUploadedFile("travel.md", b"# Travel policy\n\nEveryone now travels by train only.\n"),
            actor=Actor(user=None),
            publish_when_ready=True,
        )
    library.travel.refresh_from_db()
    assert library.travel.published_version_id != old.hit.version_id
    checked = recheck(member_context(library.alice), [old, _ranked(tenant, library.travel, 2)])
    assert _verdicts(checked) == [(False, SUPERSEDED), (True, "")]


@pytest.mark.django_db
def test_a_document_made_unreadable_after_indexing_is_refused(library):
    """Archived, or published-version cleared, straight in the database (the index never hears of it)."""
    tenant = library.world.tenant
    alice = member_context(library.alice)
    travel, security = _ranked(tenant, library.travel, 1), _ranked(tenant, library.security, 2)
    Document.objects.filter(tenant=tenant, pk=library.travel.pk).update(state=DocumentState.ARCHIVED)
    assert _verdicts(recheck(alice, [travel, security])) == [(False, NOT_READABLE), (True, "")]
    # published with no published version: refused either way (the old code said "superseded")
    Document.objects.filter(tenant=tenant, pk=library.security.pk).update(published_version=None)
    assert not recheck(alice, [security])[0].passed_recheck


@pytest.mark.django_db
def test_a_chunk_of_another_tenant_is_gone_even_if_the_index_names_it(
    library, globex, django_capture_on_commit_callbacks
):
    from tests.answers.conftest import add_document

    collection = documents.collection_create(tenant=globex.tenant, name="Secret")
    theirs = add_document(
        globex.tenant,
        collection,
        "Travel policy",
        b"# Travel\n\nGlobex flies first class.\n",
        django_capture_on_commit_callbacks,
    )
    owner = member_context(library.world.owner)  # reads everything of acme by role
    foreign = _ranked(globex.tenant, theirs, 1)
    also = replace(foreign, hit=replace(foreign.hit, document_id=library.travel.pk))  # names an acme document
    checked = recheck(owner, [foreign, also, _ranked(library.world.tenant, library.travel, 3)])
    assert _verdicts(checked) == [(False, GONE), (False, GONE), (True, "")]
    assert checked[0].facts is None and checked[1].facts is None


@pytest.mark.django_db
def test_a_hit_whose_version_differs_from_its_chunks_is_gone(library):
    tenant = library.world.tenant
    alice = member_context(library.alice)
    lying = _ranked(
        tenant, library.travel, version_id=library.security.published_version_id, document_id=library.security.pk
    )
    assert _verdicts(recheck(alice, [lying])) == [(False, GONE)]


@pytest.mark.django_db
def test_act_for_picks_the_member_of_the_keys_tenant_only(library, globex):
    from apps.tenants import services as tenants
    from apps.tenants.models import ApiKey, Role, Scope
    from apps.tenants.resolution import ROLE_SCOPES, TenantContext

    tenants.member_create(tenant=globex.tenant, username="alice", role=Role.OWNER)  # same name, another tenant
    api_key, _ = tenants.api_key_create(tenant=library.world.tenant, name="t", scopes=[Scope.SEARCH, Scope.ACT_AS_USER])
    key_context = TenantContext(
        tenant=library.world.tenant,
        user=api_key.service_user,
        api_key=api_key,
        membership=None,
        scopes=frozenset(api_key.scopes),
    )
    acting = act_for(key_context, as_user="alice", require=[Scope.SEARCH])
    assert acting.membership.pk == library.alice.pk and acting.membership.tenant_id == library.world.tenant.pk
    assert acting.membership.tenant is key_context.tenant and acting.user == library.alice.user
    assert acting.scopes == frozenset({Scope.SEARCH, Scope.ACT_AS_USER}) & ROLE_SCOPES[Role.READER]
    assert isinstance(api_key, ApiKey)


@pytest.mark.django_db
def test_through_the_api_a_mislabelled_index_entry_does_not_show_an_unreadable_documents_title(library):
    """The same attack end to end, on the real index (Elasticsearch on the full profile): one of
    the travel policy's chunks is written back to it labelled as the salary bands (document id,
    collection, title), with the travel policy's principals so that alice's filter lets it
    through, as a stale or tampered index would hand it back. alice's search must not show the
    salary bands' id, collection or title, and the audit record must say the hit was refused."""
    tenant = library.world.tenant
    entries = list(project(searchable_chunks_of(version=library.travel.published_version)))
    assert len(entries) >= 2, "the travel policy needs two chunks: one stays true, one is relabelled"
    tampered = replace(
        entries[-1],
        document_id=library.salaries.pk,
        collection_id=library.salaries.collection_id,
        title=library.salaries.title,
    )
    backend = get_search_backend()
    backend.index_chunks([tampered])
    backend.refresh()
    # The relabelled chunk by its own words, and the travel policy's true chunks by its title.
    words = " ".join(tampered.text.split()[:12]) + " travel policy"
    # The attack reaches the re-check: the index does hand the relabelled entry to alice.
    alice = act_for(member_context(library.alice))
    bm25, _ = backend.retrieve(
        SearchQuery(tenant_id=tenant.pk, principals=tuple(context_principals(alice)), text=words, mode=Mode.BM25, k=20)
    )
    assert library.salaries.pk in {c.document_id for c in bm25}, bm25

    response = library.client(library.alice).post("/api/v1/search", {"query": words, "mode": "bm25"}, format="json")
    assert response.status_code == 200, response.content
    shown = response.json()["results"]
    assert library.travel.pk in {r["document_id"] for r in shown}, shown  # the true chunks still show
    assert library.salaries.pk not in {r["document_id"] for r in shown}, shown
    assert library.salaries.title not in {r["title"] for r in shown}
    assert library.salaries.collection_id not in {r["collection_id"] for r in shown}
    record = AuditRecord.objects.for_tenant(tenant).order_by("-sequence").first()
    refused = [c for c in record.chunks.all() if c.document_id == library.salaries.pk]
    assert refused and not any(c.shown or c.passed_recheck for c in refused), refused
    assert {c.recheck_reason for c in refused} == {MISLABELLED}
