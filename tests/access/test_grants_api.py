"""Per-object permissions through the API: user grant, group grant, inherited from the collection,
document override, revocation — and what each level allows."""

import pytest

from apps.documents import services as document_services
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import Role, Scope
from tests.conftest import key_client, user_client
from tests.documents.conftest import make_ready, text_file


@pytest.fixture
def setup(acme):
    admin = key_client(acme.key(scopes=[Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE]))
    handbook = document_services.collection_create(tenant=acme.tenant, name="Handbook")
    policy = document_services.document_create(
        tenant=acme.tenant, collection=handbook, title="Leave policy", actor=Actor(None), file=text_file()
    )
    make_ready(policy.pk, 1)
    document_services.version_publish(version=policy.versions.get(), actor=Actor(None))
    reader = user_client(acme.reader, "acme")
    return admin, handbook, policy, reader


def visible_ids(client) -> set[int]:
    return {d["id"] for d in client.get("/api/v1/documents").json()["results"]}


@pytest.mark.django_db
def test_a_reader_sees_nothing_ungranted(setup):
    _admin, handbook, policy, reader = setup
    assert visible_ids(reader) == set()
    assert reader.get(f"/api/v1/documents/{policy.pk}").status_code == 404
    assert reader.get(f"/api/v1/collections/{handbook.pk}").status_code == 404


@pytest.mark.django_db
def test_user_grant_on_the_collection_is_inherited_by_its_documents(setup):
    admin, handbook, policy, reader = setup
    response = admin.put(
        f"/api/v1/collections/{handbook.pk}/grants", {"grants": [{"user": "reader", "level": "view"}]}, format="json"
    )
    assert response.status_code == 200 and response.json() == [{"user": "reader", "level": "view"}]
    assert visible_ids(reader) == {policy.pk}
    grants = admin.get(f"/api/v1/documents/{policy.pk}/grants").json()
    assert grants == {"inherited": True, "grants": [{"user": "reader", "level": "view"}]}


@pytest.mark.django_db
def test_group_grant_and_membership_change(setup, acme):
    admin, handbook, policy, reader = setup
    group = tenant_services.group_create(tenant=acme.tenant, name="hr")
    admin.put(
        f"/api/v1/collections/{handbook.pk}/grants", {"grants": [{"group": group.pk, "level": "view"}]}, format="json"
    )
    assert visible_ids(reader) == set()
    tenant_services.group_member_add(group=group, membership=acme.reader)
    assert visible_ids(reader) == {policy.pk}
    tenant_services.group_member_remove(group=group, membership=acme.reader)
    assert visible_ids(reader) == set()


@pytest.mark.django_db
def test_document_grants_override_the_collection(setup, acme):
    admin, handbook, policy, reader = setup
    other = tenant_services.member_create(tenant=acme.tenant, username="other", role=Role.READER)
    admin.put(
        f"/api/v1/collections/{handbook.pk}/grants", {"grants": [{"user": "reader", "level": "view"}]}, format="json"
    )
    response = admin.put(
        f"/api/v1/documents/{policy.pk}/grants", {"grants": [{"user": "other", "level": "view"}]}, format="json"
    )
    assert response.json() == {"inherited": False, "grants": [{"user": "other", "level": "view"}]}
    assert visible_ids(reader) == set()
    assert visible_ids(user_client(other, "acme")) == {policy.pk}
    # back to inheriting
    assert admin.delete(f"/api/v1/documents/{policy.pk}/grants").json()["inherited"] is True
    assert visible_ids(reader) == {policy.pk}
    assert visible_ids(user_client(other, "acme")) == set()
    actions = [e["action"] for e in admin.get(f"/api/v1/documents/{policy.pk}/history").json()["results"]]
    assert actions.count("grants_changed") == 2


@pytest.mark.django_db
def test_revoking_takes_effect_at_once(setup):
    admin, handbook, policy, reader = setup
    admin.put(
        f"/api/v1/collections/{handbook.pk}/grants", {"grants": [{"user": "reader", "level": "view"}]}, format="json"
    )
    assert visible_ids(reader) == {policy.pk}
    admin.put(f"/api/v1/collections/{handbook.pk}/grants", {"grants": []}, format="json")
    assert visible_ids(reader) == set()
    assert reader.get(f"/api/v1/documents/{policy.pk}/versions/1/content").status_code == 404


@pytest.mark.django_db
def test_levels_view_change_manage(setup):
    admin, _handbook, policy, reader = setup
    url = f"/api/v1/documents/{policy.pk}"
    upload = lambda content: reader.post(f"{url}/versions", {"file": text_file(content)}, format="multipart")  # noqa: E731

    admin.put(f"/api/v1/documents/{policy.pk}/grants", {"grants": [{"user": "reader", "level": "view"}]}, format="json")
    assert reader.get(url).status_code == 200
    refused = upload(b"# changed by a reader\n")
    assert refused.status_code == 403 and refused.json()["code"] == "access_denied"
    assert reader.patch(url, {"title": "mine"}, format="json").status_code == 403

    admin.put(
        f"/api/v1/documents/{policy.pk}/grants", {"grants": [{"user": "reader", "level": "change"}]}, format="json"
    )
    assert upload(b"# changed by a granted reader\n").status_code == 201
    assert reader.post(f"{url}/archive").status_code == 403  # lifecycle needs manage
    assert reader.get(f"{url}/grants").status_code == 403

    admin.put(
        f"/api/v1/documents/{policy.pk}/grants", {"grants": [{"user": "reader", "level": "manage"}]}, format="json"
    )
    assert reader.post(f"{url}/archive").status_code == 200


@pytest.mark.django_db
def test_roles_give_tenant_wide_defaults(setup, acme):
    _admin, _handbook, policy, _reader = setup
    editor = tenant_services.member_create(tenant=acme.tenant, username="ed", role=Role.EDITOR)
    compliance = tenant_services.member_create(tenant=acme.tenant, username="cc", role=Role.COMPLIANCE)
    owner = user_client(acme.owner, "acme")
    assert visible_ids(owner) == visible_ids(user_client(editor, "acme")) == {policy.pk}
    assert user_client(editor, "acme").post(f"/api/v1/documents/{policy.pk}/archive").status_code == 403
    assert owner.post(f"/api/v1/documents/{policy.pk}/archive").status_code == 200
    assert user_client(compliance, "acme").get("/api/v1/documents").status_code == 403  # no documents:read scope


@pytest.mark.django_db
def test_grants_name_only_this_tenants_people(setup, globex):
    admin, handbook, _policy, _reader = setup
    gus = tenant_services.member_create(tenant=globex.tenant, username="gus")
    group = tenant_services.group_create(tenant=globex.tenant, name="theirs")
    for grant in ({"user": "gus", "level": "view"}, {"group": group.pk, "level": "view"}):
        response = admin.put(f"/api/v1/collections/{handbook.pk}/grants", {"grants": [grant]}, format="json")
        assert response.status_code == 404
    assert visible_ids(user_client(gus, "globex")) == set()
    bad = admin.put(
        f"/api/v1/collections/{handbook.pk}/grants",
        {"grants": [{"user": "reader", "group": 1, "level": "view"}]},
        format="json",
    )
    assert bad.status_code == 400
    bad = admin.put(
        f"/api/v1/collections/{handbook.pk}/grants", {"grants": [{"user": "reader", "level": "own"}]}, format="json"
    )
    assert bad.status_code == 400


@pytest.mark.django_db
def test_an_api_key_reads_what_is_granted_to_it(setup, acme):
    admin, _handbook, policy, _reader = setup
    raw = acme.key(scopes=[Scope.DOCUMENTS_READ])
    bot = key_client(raw)
    assert visible_ids(bot) == set()
    admin.put(
        f"/api/v1/documents/{policy.pk}/grants", {"grants": [{"api_key": raw[3:15], "level": "view"}]}, format="json"
    )
    assert visible_ids(bot) == {policy.pk}


@pytest.mark.django_db
def test_a_grant_to_everyone_is_tenant_wide(setup, acme):
    from apps.tenants.models import TenantGroup

    admin, handbook, policy, reader = setup
    everyone = TenantGroup.objects.get(tenant=acme.tenant, is_everyone=True)
    admin.put(
        f"/api/v1/collections/{handbook.pk}/grants",
        {"grants": [{"group": everyone.pk, "level": "view"}]},
        format="json",
    )
    assert visible_ids(reader) == {policy.pk}
    newcomer = tenant_services.member_create(tenant=acme.tenant, username="newcomer")
    assert visible_ids(user_client(newcomer, "acme")) == {policy.pk}
    assert visible_ids(key_client(acme.key(scopes=[Scope.DOCUMENTS_READ]))) == set()  # keys are not people


@pytest.mark.django_db
def test_state_raises_the_bar_view_sees_published_only(setup, acme):
    admin, _handbook, policy, reader = setup
    url = f"/api/v1/documents/{policy.pk}"
    admin.put(f"{url}/grants", {"grants": [{"user": "reader", "level": "view"}]}, format="json")
    # a new draft version is for those who may change the document
    admin.post(f"{url}/versions", {"file": text_file(b"# draft v2\n")}, format="multipart")
    assert [v["number"] for v in reader.get(f"{url}/versions").json()["results"]] == [1]
    assert reader.get(f"{url}/versions/2").status_code == 404
    assert reader.get(f"{url}/versions/2/content").status_code == 404
    assert reader.get(f"{url}/history").status_code == 403
    assert [v["number"] for v in admin.get(f"{url}/versions").json()["results"]] == [2, 1]

    admin.post(f"{url}/archive")
    assert visible_ids(reader) == set() and reader.get(url).status_code == 404
    admin.put(f"{url}/grants", {"grants": [{"user": "reader", "level": "change"}]}, format="json")
    assert visible_ids(reader) == {policy.pk}  # change sees archived documents

    admin.delete(url)
    assert visible_ids(reader) == set() and reader.get(f"{url}/versions/1/content").status_code == 404
    admin.put(f"{url}/grants", {"grants": [{"user": "reader", "level": "manage"}]}, format="json")
    assert visible_ids(reader) == {policy.pk}  # manage sees deleted documents (to purge them)


@pytest.mark.django_db
def test_head_and_options_need_the_scope_of_get(acme):
    compliance = tenant_services.member_create(tenant=acme.tenant, username="cc", role=Role.COMPLIANCE)
    client = user_client(compliance, "acme")
    for method in (client.get, client.head, client.options):
        assert method("/api/v1/documents").status_code == 403
