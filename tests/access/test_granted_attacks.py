"""Attacks on apps/access/checks._object_grants (written by the review of the change): every case
held to guardian's own `get_objects_for_user(..., accept_global_perms=False)` plus the inheritance
rule, per level and (for `visible`) per state."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from guardian.models import UserObjectPermission

from apps.access.checks import _granted_q, granted, visible
from apps.access.grants import Grant
from apps.access.levels import Level, codename, model_name_of
from apps.documents import services as document_services
from apps.documents.models import Collection, Document, DocumentState
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import Role, Scope
from apps.tenants.resolution import TenantContext, resolve_tenant_context
from apps.tenants.scoping import TenantScopeMissing
from tests.access.test_principals import guardian_granted

ACTOR = Actor(None)


def _assert_same(context, label=""):
    for model in (Collection, Document):
        for level in Level:
            got = set(granted(context, model.objects.all(), level).values_list("pk", flat=True))
            assert got == guardian_granted(context, model, level), (label, model.__name__, level)
    # visible(): per state, the level the state needs
    want = set()
    for document in Document.objects.filter(tenant=context.tenant):
        if document.pk in guardian_granted(context, Document, Document.level_to_see[document.state]):
            want.add(document.pk)
    assert set(visible(context, Document.objects.all()).values_list("pk", flat=True)) == want, label


def _ctx(membership):
    return resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=membership.tenant.slug)


def _reader(acme, name):
    return tenant_services.member_create(tenant=acme.tenant, username=name, role=Role.READER)


@pytest.mark.django_db
def test_ids_shared_by_a_collection_and_a_document_do_not_cross(acme):
    tenant, u = acme.tenant, _reader(acme, "u")
    top = max([*Collection.objects.filter(tenant=tenant).values_list("pk", flat=True), 0]) + 5000
    granted_col = Collection.objects.create(pk=top, tenant=tenant, name="granted")
    other_col = Collection.objects.create(pk=top + 1, tenant=tenant, name="other")
    document_services.grants_replace(obj=granted_col, grants=[Grant(u.user, Level.MANAGE)], actor=ACTOR)
    # a document whose id is the granted collection's, in a collection u holds nothing on,
    # with own (empty) grants: no grant may reach it through the collection's id
    clash = Document.objects.create(pk=top, tenant=tenant, collection=other_col, title="clash")
    document_services.grants_replace(obj=clash, grants=[], actor=ACTOR)
    # a document u holds, whose id is other_col's: must not open other_col's inheriting documents
    held = Document.objects.create(pk=top + 1, tenant=tenant, collection=granted_col, title="held")
    document_services.grants_replace(obj=held, grants=[Grant(u.user, Level.VIEW)], actor=ACTOR)
    inheriting = Document.objects.create(pk=top + 2, tenant=tenant, collection=other_col, title="inheriting")
    for state in DocumentState:
        Document.objects.filter(tenant=tenant).update(state=state)
        context = _ctx(u)
        _assert_same(context, state)
        view = set(granted(context, Document.objects.all(), Level.VIEW).values_list("pk", flat=True))
        assert clash.pk not in view and inheriting.pk not in view and held.pk in view
        assert set(granted(context, Collection.objects.all(), Level.VIEW).values_list("pk", flat=True)) == {top}


@pytest.mark.django_db
def test_same_codename_other_content_type_and_mislabelled_rows(acme):
    tenant, u = acme.tenant, _reader(acme, "u")
    col = document_services.collection_create(tenant=tenant, name="c")
    doc = document_services.document_create(tenant=tenant, collection=col, title="d", actor=ACTOR)
    document_services.grants_replace(obj=doc, grants=[], actor=ACTOR)
    group_ct = ContentType.objects.get_for_model(Permission)
    doc_ct = ContentType.objects.get_for_model(Document)
    fake = Permission.objects.create(codename="view_document", content_type=group_ct, name="fake")
    # bulk_create skips guardian's save() check that the permission's type is the object's
    UserObjectPermission.objects.bulk_create(
        [UserObjectPermission(user=u.user, permission=fake, content_type=doc_ct, object_pk=str(doc.pk))]
    )
    _assert_same(_ctx(u), "fake perm")
    assert doc.pk not in set(granted(_ctx(u), Document.objects.all(), Level.VIEW).values_list("pk", flat=True))
    # the real permission, on a row whose own content_type says Collection: guardian reads only
    # the permission's type, so both include it
    real = Permission.objects.get(codename="view_document", content_type=doc_ct)
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(
                user=u.user,
                permission=real,
                content_type=ContentType.objects.get_for_model(Collection),
                object_pk=str(doc.pk),
            )
        ]
    )
    _assert_same(_ctx(u), "mislabelled row")


@pytest.mark.django_db
def test_global_permissions_are_ignored(acme):
    tenant, u, v = acme.tenant, _reader(acme, "u"), _reader(acme, "v")
    group = tenant_services.group_create(tenant=tenant, name="g")
    tenant_services.group_member_add(group=group, membership=v)
    col = document_services.collection_create(tenant=tenant, name="c")
    document_services.document_create(tenant=tenant, collection=col, title="d", actor=ACTOR)
    for model in (Collection, Document):
        ct = ContentType.objects.get_for_model(model)
        for level in Level:
            perm = Permission.objects.get(content_type=ct, codename=codename(level, model_name_of(model)))
            u.user.user_permissions.add(perm)
            group.auth_group.permissions.add(perm)
    for m in (u, v):
        _assert_same(_ctx(m), m.username)
        assert not granted(_ctx(m), Document.objects.all(), Level.VIEW).exists()


@pytest.mark.django_db
def test_inactive_user_superuser_flags_and_another_tenants_group(acme, globex):
    tenant, u = acme.tenant, _reader(acme, "u")
    col = document_services.collection_create(tenant=tenant, name="c")
    docs = [
        document_services.document_create(tenant=tenant, collection=col, title=f"d{i}", actor=ACTOR) for i in range(3)
    ]
    # a globex group holding a grant on an acme document, u a member of it (u is in both tenants)
    visitor = tenant_services.membership_add(tenant=globex.tenant, user=u.user, username="visitor")
    their_group = tenant_services.group_create(tenant=globex.tenant, name="theirs")
    tenant_services.group_member_add(group=their_group, membership=visitor)
    from apps.access.grants import grants_set

    grants_set(docs[0], [Grant(their_group.auth_group, Level.CHANGE)])
    Document.objects.filter(tenant=tenant, pk=docs[0].pk).update(has_own_grants=True)
    _assert_same(_ctx(u), "other tenant's group")
    # from globex, u sees nothing of acme
    assert not granted(_ctx(visitor), Document.objects.all(), Level.VIEW).filter(tenant=tenant).exists()
    u.user.is_active = False
    u.user.save()
    context = TenantContext(tenant=tenant, user=u.user, api_key=None, membership=u, scopes=frozenset())
    _assert_same(context, "inactive")
    u.user.is_superuser = True
    u.user.save()
    _assert_same(context, "inactive superuser")


@pytest.mark.django_db
def test_api_key_service_user(acme):
    tenant = acme.tenant
    col = document_services.collection_create(tenant=tenant, name="c")
    docs = [
        document_services.document_create(tenant=tenant, collection=col, title=f"d{i}", actor=ACTOR) for i in range(2)
    ]
    from apps.tenants.models import ApiKey

    tenant_services.api_key_create(tenant=tenant, name="k", scopes=[Scope.SEARCH])
    key = ApiKey.objects.filter(tenant=tenant).get()
    document_services.grants_replace(obj=docs[1], grants=[Grant(key.service_user, Level.VIEW)], actor=ACTOR)
    context = resolve_tenant_context(user=None, api_key=key, tenant_slug=None)
    _assert_same(context, "key")
    assert set(granted(context, Document.objects.all(), Level.VIEW).values_list("pk", flat=True)) == {docs[1].pk}


@pytest.mark.django_db
def test_scoping_guard_still_refuses_an_unpinned_query(acme):
    u = _reader(acme, "u")
    with pytest.raises(TenantScopeMissing):
        list(Document.objects.filter(_granted_q(_ctx(u), Document, Level.VIEW)))
    with pytest.raises(TenantScopeMissing):
        list(Collection.objects.filter(_granted_q(_ctx(u), Collection, Level.VIEW)))


@pytest.mark.django_db
def test_a_stale_own_grant_on_an_inheriting_document_is_ignored(acme):
    """`Q(has_own_grants=True) & own | Q(has_own_grants=False, …)`: a grant row left on a document
    that reads its collection's again must not count (Python's & binds before |)."""
    tenant, u = acme.tenant, _reader(acme, "u")
    col = document_services.collection_create(tenant=tenant, name="c")
    doc = document_services.document_create(tenant=tenant, collection=col, title="d", actor=ACTOR)
    from apps.access.grants import grants_set

    grants_set(doc, [Grant(u.user, Level.MANAGE)])  # rows written, has_own_grants left False
    assert not Document.objects.filter(tenant=tenant, pk=doc.pk, has_own_grants=True).exists()
    _assert_same(_ctx(u), "stale")
    assert not granted(_ctx(u), Document.objects.all(), Level.VIEW).exists()
