"""The two principal functions (for the index and for queries) agree with django-guardian's own
object-permission checks, over every user × document of a small world with grants of every kind."""

import itertools

import pytest
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from apps.access.checks import granted, holds, role_level
from apps.access.grants import Grant
from apps.access.levels import Level, codename, model_name_of
from apps.access.principals import context_principals, document_reader_principals
from apps.documents import services as document_services
from apps.documents.models import Collection, Document, DocumentState
from apps.documents.selectors import visible_documents
from apps.tenants import services as tenant_services
from apps.tenants.actors import Actor
from apps.tenants.models import Role
from apps.tenants.resolution import resolve_tenant_context


def guardian_can_read(membership, document) -> bool:
    """The oracle: tenant roles, then guardian on the document or, without own grants, its collection."""
    if membership.role in (Role.OWNER, Role.ADMIN, Role.EDITOR):
        return True
    checker = ObjectPermissionChecker(membership.user)
    if document.has_own_grants:
        return checker.has_perm("view_document", document)
    return checker.has_perm("view_collection", document.collection)


def guardian_granted(context, model, level) -> set[int]:
    """The oracle for access.checks.granted: the tenant's rows by role, else guardian's own
    `get_objects_for_user` (no global permissions) on the row, or on its collection for a document
    without grants of its own."""
    tenant = context.tenant

    def guardians(model, **where):
        rows = get_objects_for_user(
            context.user,
            codename(level, model_name_of(model)),
            klass=model.objects.filter(tenant=tenant, **where),
            accept_global_perms=False,
        )
        return set(rows.values_list("pk", flat=True))

    if role_level(context) >= level:
        return set(model.objects.filter(tenant=tenant).values_list("pk", flat=True))
    if model is Collection:
        return guardians(Collection)
    inheriting = Document.objects.filter(tenant=tenant, has_own_grants=False, collection__in=guardians(Collection))
    return guardians(Document, has_own_grants=True) | set(inheriting.values_list("pk", flat=True))


def _world(acme):
    """Seven people (every role), two groups, three collections and six documents with grants of
    every kind (a user's, groups', an empty own set, inherited), and another tenant's document."""
    tenant = acme.tenant
    people = [acme.owner, acme.reader] + [
        tenant_services.member_create(tenant=tenant, username=f"u{i}", role=role)
        for i, role in enumerate([Role.READER, Role.READER, Role.EDITOR, Role.COMPLIANCE, Role.READER])
    ]
    hr = tenant_services.group_create(tenant=tenant, name="hr")
    ops = tenant_services.group_create(tenant=tenant, name="ops")
    tenant_services.group_member_add(group=hr, membership=people[2])
    tenant_services.group_member_add(group=ops, membership=people[3])
    tenant_services.group_member_add(group=ops, membership=people[6])

    open_col = document_services.collection_create(tenant=tenant, name="open")
    hr_col = document_services.collection_create(tenant=tenant, name="hr")
    bare_col = document_services.collection_create(tenant=tenant, name="bare")
    actor = Actor(None)
    document_services.grants_replace(
        obj=open_col, grants=[Grant(hr.auth_group, Level.VIEW), Grant(ops.auth_group, Level.VIEW)], actor=actor
    )
    document_services.grants_replace(
        obj=hr_col, grants=[Grant(hr.auth_group, Level.MANAGE), Grant(people[1].user, Level.VIEW)], actor=actor
    )

    documents = [
        document_services.document_create(tenant=tenant, collection=c, title=f"{c.name}-{i}", actor=actor)
        for c in (open_col, hr_col, bare_col)
        for i in range(2)
    ]
    # overrides: one document readable by one user only, one with an empty own grant set
    document_services.grants_replace(obj=documents[0], grants=[Grant(people[6].user, Level.CHANGE)], actor=actor)
    document_services.grants_replace(obj=documents[2], grants=[], actor=actor)
    document_services.grants_replace(obj=documents[4], grants=[Grant(ops.auth_group, Level.VIEW)], actor=actor)

    # The same world in another tenant must never match: principals are tenant-qualified.
    globex = tenant_services.tenant_create(slug="globex", name="Globex")
    their_collection = document_services.collection_create(tenant=globex, name="theirs")
    theirs = document_services.document_create(tenant=globex, collection=their_collection, title="theirs", actor=actor)
    tenant_services.membership_add(tenant=globex, user=people[1].user, username="visitor")

    return people, documents, theirs


@pytest.mark.django_db
def test_principals_match_guardian(acme):
    people, documents, theirs = _world(acme)
    tenant = acme.tenant
    Document.objects.filter(tenant=tenant).update(state=DocumentState.PUBLISHED)
    checked = 0
    for membership, document in itertools.product(people, documents):
        document.refresh_from_db()
        context = resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=tenant.slug)
        oracle = guardian_can_read(membership, document)
        by_principals = bool(set(context_principals(context)) & set(document_reader_principals(document)))
        assert by_principals == oracle, (membership.username, document.title)
        assert holds(context, document, Level.VIEW) == oracle  # what the API uses agrees too
        assert (document in visible_documents(context)) == oracle
        assert not set(context_principals(context)) & set(document_reader_principals(theirs))
        checked += 1
    assert checked == len(people) * len(documents) == 42


@pytest.mark.django_db
def test_api_keys_principals(acme):
    from apps.tenants.models import Scope

    collection = document_services.collection_create(tenant=acme.tenant, name="c")
    document = document_services.document_create(
        tenant=acme.tenant, collection=collection, title="d", actor=Actor(None)
    )
    reader_key = services_key(acme, [Scope.DOCUMENTS_READ])
    writer_key = services_key(acme, [Scope.DOCUMENTS_READ, Scope.DOCUMENTS_WRITE])
    readers = set(document_reader_principals(document))
    assert not set(context_principals(reader_key)) & readers  # a key reads only what is granted to it
    assert set(context_principals(writer_key)) & readers  # documents:write reads the whole tenant
    document_services.grants_replace(obj=document, grants=[Grant(reader_key.user, Level.VIEW)], actor=Actor(None))
    assert set(context_principals(reader_key)) & set(document_reader_principals(document))


def services_key(world, scopes):
    from apps.tenants.services import api_key_authenticate

    raw = world.key(scopes=scopes)
    return resolve_tenant_context(user=None, api_key=api_key_authenticate(raw_key=raw), tenant_slug=None)


def guardian_level(membership, document) -> int:
    """The oracle for levels: a role's default, else the highest guardian permission on the
    document or, without own grants, its collection."""
    role = {Role.OWNER: Level.MANAGE, Role.ADMIN: Level.MANAGE, Role.EDITOR: Level.CHANGE}.get(membership.role, 0)
    checker = ObjectPermissionChecker(membership.user)
    source = document if document.has_own_grants else document.collection
    granted = [lvl for lvl in Level if checker.has_perm(f"{lvl.label}_{source._meta.model_name}", source)]
    return max([role, *granted])


# What the docs promise (architecture.md, "Access"): `view` shows published documents only, drafts
# and archived ones need `change`, deleted ones `manage`.
FLOOR = {
    DocumentState.PUBLISHED: Level.VIEW,
    DocumentState.DRAFT: Level.CHANGE,
    DocumentState.ARCHIVED: Level.CHANGE,
    DocumentState.DELETED: Level.MANAGE,
}


@pytest.mark.django_db
def test_object_checks_and_querysets_agree_in_every_state_and_level(acme):
    """`holds` (one object) and `visible_documents` (a queryset) are built from the same two
    declarations on the model (apps/access/checks.py); here they meet guardian and each other for
    every person × document × state × level, so a state added without a level, or a branch of
    one that drifts from the other, fails."""
    people, documents, _ = _world(acme)
    assert set(Document.level_to_see) == set(DocumentState), "every state needs a level to see it"
    checked = 0
    for state in DocumentState:
        Document.objects.filter(tenant=acme.tenant).update(state=state)
        contexts = [
            (m, resolve_tenant_context(user=m.user, api_key=None, tenant_slug=acme.tenant.slug)) for m in people
        ]
        for (membership, context), document in itertools.product(contexts, documents):
            document.refresh_from_db()
            held = guardian_level(membership, document)
            for level in Level:
                expected = held >= max(level, FLOOR[state])
                assert holds(context, document, level) == expected, (state, level, membership.username, document.title)
                checked += 1
            assert (document in visible_documents(context)) == holds(context, document, Level.VIEW), (
                state,
                membership.username,
            )
    assert checked == len(DocumentState) * len(people) * len(documents) * len(Level) == 504


@pytest.mark.django_db
def test_granted_reads_guardians_tables_as_get_objects_for_user_does(acme):
    """apps/access/checks._object_grants reads guardian's two tables itself (guardian's own
    queryset cost a reader's re-check 7 ms to build); guardian's `get_objects_for_user` is the
    oracle here, for every person × level, over collections and documents (their own grants, or
    their collection's), with a grant in another tenant to one of them and a Django superuser among
    them (guardian gives a superuser every row)."""
    people, _, theirs = _world(acme)
    document_services.grants_replace(obj=theirs, grants=[Grant(people[1].user, Level.MANAGE)], actor=Actor(None))
    operator = tenant_services.member_create(tenant=acme.tenant, username="operator", role=Role.READER)
    operator.user.is_superuser = True
    operator.user.save(update_fields=["is_superuser"])
    tenant = acme.tenant
    checked = 0
    for membership in [*people, operator]:
        context = resolve_tenant_context(user=membership.user, api_key=None, tenant_slug=tenant.slug)
        for level in Level:
            for model in (Collection, Document):
                got = set(granted(context, model.objects.all(), level).values_list("pk", flat=True))
                assert got == guardian_granted(context, model, level), (membership.username, model.__name__, level)
            checked += 1
    assert checked == (len(people) + 1) * len(Level)
    reader_of_theirs = resolve_tenant_context(user=people[1].user, api_key=None, tenant_slug=tenant.slug)
    assert theirs.pk not in set(
        granted(reader_of_theirs, Document.objects.all(), Level.VIEW).values_list("pk", flat=True)
    )
    assert set(Document.objects.filter(tenant=tenant).values_list("pk", flat=True)) == set(
        granted(
            resolve_tenant_context(user=operator.user, api_key=None, tenant_slug=tenant.slug),
            Document.objects.all(),
            Level.MANAGE,
        ).values_list("pk", flat=True)
    )
