"""Every user sees only what they may read: filtered inside the engine, re-checked against the
database; API keys read by their own grants, or act for a named user."""

import pytest

from apps.access.grants import Grant
from apps.access.levels import Level
from apps.access.principals import user_principals
from apps.audit.models import AuditRecord, Outcome
from apps.documents import services as document_services
from apps.search.backends import get_search_backend
from apps.search.types import Mode, SearchQuery
from apps.tenants import services as tenants
from apps.tenants.actors import Actor
from apps.tenants.models import Role, Scope
from tests.conftest import key_client

QUERY = {"query": "company policy salary password travel bonus", "k": 20}


def documents_seen(client, body=QUERY, endpoint="/api/v1/search"):
    response = client.post(endpoint, body, format="json")
    assert response.status_code == 200, response.content
    return {r["document_id"] for r in response.json()["results" if endpoint.endswith("search") else "sources"]}


@pytest.mark.django_db
def test_the_same_query_gives_each_user_what_they_may_read(library):
    handbook = {library.travel.pk, library.security.pk}
    assert documents_seen(library.client(library.alice)) == handbook
    assert documents_seen(library.client(library.bob)) == {library.salaries.pk}
    assert documents_seen(library.client(library.world.owner)) == handbook | {library.salaries.pk}
    assert documents_seen(library.client(library.world.reader)) == set()  # a reader with no grants
    assert documents_seen(library.client(library.bob), endpoint="/api/v1/ask") == {library.salaries.pk}


@pytest.mark.django_db
def test_an_api_key_reads_by_its_own_grants(library):
    key = library.app()
    assert documents_seen(key) == set()
    prefix = key._credentials["HTTP_AUTHORIZATION"].split()[1].split("_")[1]
    from apps.tenants.models import ApiKey

    api_key = ApiKey.objects.across_tenants().get(prefix=prefix)
    document_services.grants_replace(
        obj=library.salaries, grants=[Grant(api_key.service_user, Level.VIEW)], actor=Actor(user=None)
    )
    from apps.search import services as search_services

    search_services.sync_document(document_id=library.salaries.pk)
    get_search_backend().refresh()
    assert documents_seen(key) == {library.salaries.pk}


@pytest.mark.django_db
def test_a_key_with_act_as_user_gets_that_users_access_and_the_audit_names_both(library):
    key = library.app(scopes=[Scope.SEARCH, Scope.ASK, Scope.ACT_AS_USER])
    assert documents_seen(key, {**QUERY, "as_user": "bob"}) == {library.salaries.pk}
    assert documents_seen(key, {**QUERY, "as_user": "alice"}) == {library.travel.pk, library.security.pk}
    record = AuditRecord.objects.across_tenants().order_by("-pk").first()
    assert record.username == "alice" and record.api_key_prefix and record.acting_for_user


@pytest.mark.django_db
def test_acting_for_a_user_needs_the_scope_an_active_member_and_a_role_that_may_search(library):
    plain = library.app(scopes=[Scope.SEARCH])
    response = plain.post("/api/v1/search", {**QUERY, "as_user": "bob"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "scope_missing"
    actor = library.app(scopes=[Scope.SEARCH, Scope.ACT_AS_USER])
    assert actor.post("/api/v1/search", {**QUERY, "as_user": "nobody"}, format="json").status_code == 404
    tenants.member_create(tenant=library.world.tenant, username="carol", role=Role.COMPLIANCE)
    assert actor.post("/api/v1/search", {**QUERY, "as_user": "carol"}, format="json").status_code == 403
    tenants.member_set_active(membership=library.bob, active=False)
    assert actor.post("/api/v1/search", {**QUERY, "as_user": "bob"}, format="json").status_code == 404
    # members act as themselves only
    response = library.client(library.world.owner).post("/api/v1/search", {**QUERY, "as_user": "bob"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "act_as_user_denied"


@pytest.mark.django_db
def test_a_revoked_grant_is_gone_on_the_next_query_before_the_index_catches_up(
    library, django_capture_on_commit_callbacks
):
    bob = library.client(library.bob)
    assert documents_seen(bob) == {library.salaries.pk}
    finance = library.salaries.collection
    # The index update is queued after commit; we do not run it: the index still says bob may read.
    with django_capture_on_commit_callbacks(execute=False) as queued:
        document_services.grants_replace(obj=finance, grants=[], actor=Actor(user=None))
    assert queued, "the grant change should queue an index update"
    backend = get_search_backend()
    backend.refresh()
    stale = SearchQuery(
        tenant_id=library.world.tenant.pk,
        text="salary bands bonuses",
        mode=Mode.BM25,
        k=5,
        principals=tuple(user_principals(user=library.bob.user, tenant=library.world.tenant, reads_everything=False)),
    )
    assert backend.search(stale).hits, "the index should still let bob in: its update has not run"
    assert documents_seen(bob) == set()
    record = AuditRecord.objects.across_tenants().order_by("-pk").first()
    dropped = list(record.chunks.all())
    assert dropped and all(not c.passed_recheck and not c.shown for c in dropped)
    assert "may not read" in dropped[0].recheck_reason and record.outcome == Outcome.NO_RESULTS


@pytest.mark.django_db
def test_archived_document_is_dropped_even_if_the_index_lags(library, django_capture_on_commit_callbacks):
    from apps.documents import services as documents

    with django_capture_on_commit_callbacks(execute=False):
        documents.document_archive(document=library.travel, actor=Actor(user=None))
    assert library.travel.pk not in documents_seen(library.client(library.alice))


@pytest.mark.django_db
def test_another_tenants_key_sees_nothing_of_this_tenant(library, globex):
    other = key_client(globex.key(scopes=[Scope.SEARCH, Scope.ASK, Scope.DOCUMENTS_WRITE]))  # reads all of globex
    assert documents_seen(other) == set()
    body = other.post("/api/v1/ask", {"query": "How long must a password be?"}, format="json").json()
    assert body["grounded"] is False and body["sources"] == []
    response = other.post("/api/v1/search", {**QUERY, "filters": {"documents": [library.salaries.pk]}}, format="json")
    assert response.status_code == 200 and response.json()["results"] == []
    assert not AuditRecord.objects.filter(tenant=library.world.tenant, api_key_id__isnull=False).exists()


@pytest.mark.django_db
def test_search_engine_down_is_a_503_and_still_audited(library, settings):
    from apps.search.backends import reset_search_backends

    if settings.SEARCH_BACKEND == "elasticsearch":
        settings.SEARCH = {
            **settings.SEARCH,
            "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "URL": "https://127.0.0.1:1", "REQUEST_TIMEOUT": 2},
        }
    else:
        import tempfile

        settings.SEARCH = {
            **settings.SEARCH,
            "EMBEDDED": {"PATH": tempfile.mkdtemp()},
        }  # a folder: SQLite cannot open it
    reset_search_backends()
    for endpoint in ("/api/v1/search", "/api/v1/ask"):
        response = library.client(library.alice).post(endpoint, {"query": "passwords"}, format="json")
        assert response.status_code == 503, response.content
        assert response.json()["code"] == "search_unavailable" and "try again" in response.json()["message"]
        record = AuditRecord.objects.across_tenants().order_by("-pk").first()
        assert record.outcome == Outcome.FAILED and record.query == "passwords" and "search_unavailable" in record.error
        assert record.username == "alice" and "search" in record.timings
