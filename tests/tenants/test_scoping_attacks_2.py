"""Attacks on fail-closed tenant scoping (apps/tenants/scoping.py), second review, of the stricter
rewrite: ways a query through a tenant-owned model's default manager could still read, compare with
or change another tenant's rows without a named way across tenants, each refused now ("before:"
says what it returned before the fix). At the end, honest queries the review found refused, and
how they run now."""

from __future__ import annotations

from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    Subquery,
    Value,
    Window,
    prefetch_related_objects,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import FirstValue, Lag

from apps.corpus.models import Chunk, Section
from apps.documents.models import Collection, Document, DocumentVersion
from apps.tenants.models import Membership, Tenant, TenantGroup
from tests.tenants.conftest import refused

# Window functions: a filter on a window moves the whole OR it sits in to an outer query (QUALIFY),
# so the tenant "pin" is applied after the window ran over every tenant's rows.


def test_a_window_under_an_or_pinned_filter_runs_over_every_tenant(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    first = Window(FirstValue("title"), order_by=F("title").desc())
    # Today: [("acme doc", "globex doc")], another tenant's title.
    refused(Document.objects.annotate(leak=first).filter(Q(tenant=a) | Q(tenant=a, leak="")).values_list("leak"))
    # Today: [("globex doc", "acme doc")], the neighbour row of another tenant.
    previous = Window(Lag("title"), order_by=F("title").asc())
    refused(Document.objects.annotate(prev=previous).filter(Q(tenant=g) | Q(tenant=g, prev="")).values_list("prev"))
    # Today: 2, the platform's document count; also through .alias() and an aggregate over it.
    total = Window(Count("pk"))
    refused(Document.objects.annotate(n=total).filter(Q(tenant=a) | Q(tenant=a, n__gte=0)).values_list("n"))
    refused(Document.objects.alias(n=total).filter(Q(tenant=a, n__gt=1) | Q(tenant=a, n__lt=0)))
    refused(lambda: Document.objects.annotate(n=total).filter(Q(tenant=a) | Q(tenant=a, n=0)).aggregate(m=Count("n")))


# Intersection and difference: one pinned part decides which rows come back, but the other part
# is still compared with them, and it is never checked at all.


def test_an_intersection_or_difference_compares_with_an_unpinned_part(acme, globex, two):
    guess = Document.objects.filter(tenant=acme.tenant).order_by().annotate(g=Value("globex doc")).values_list("g")
    every = Document.objects.order_by().values_list("title")
    refused(guess.intersection(every))  # before: [("globex doc",)]: that title exists somewhere
    refused(guess.difference(every))  # before: []: the same answer, negated
    # Another model's table: is there a collection named "c" in any tenant?
    named = Document.objects.filter(tenant=acme.tenant).order_by().annotate(g=Value("c")).values_list("g")
    refused(named.intersection(Collection.objects.order_by().values_list("name")))


def test_the_other_part_of_an_intersection_is_not_checked_at_all(acme, globex, two):
    mine = Document.objects.filter(tenant=acme.tenant).order_by().values_list("title")
    every = Document.objects.order_by()
    # An unpinned subquery as a yes/no oracle: before, [("acme doc",)] when globex has the title.
    refused(mine.intersection(every.filter(Exists(Document.objects.filter(title="globex doc"))).values_list("title")))
    refused(mine.difference(every.filter(Exists(Document.objects.filter(title="globex doc"))).values_list("title")))
    # Raw SQL, run unread.
    raw = RawSQL("(SELECT max(title) FROM documents_document)", [])
    refused(mine.intersection(every.annotate(x=raw).values_list("x")))


# The Tenant model is a hub: its querysets are not checked and the join check lets joins out of it
# into tenant data, so a Tenant query inside a pinned one reads every tenant.


def test_a_tenant_query_inside_a_pinned_one_reads_every_tenant(acme, globex, two):
    mine = Document.objects.filter(tenant=acme.tenant)
    theirs = Tenant.objects.filter(slug="globex").values("documents__title")[:1]
    refused(mine.annotate(leak=Subquery(theirs)).values_list("leak"))  # before: ["globex doc"]
    refused(mine.filter(title__in=Tenant.objects.values("documents__title")))
    refused(mine.order_by().values_list("title").union(Tenant.objects.order_by().values_list("documents__title")))
    # A query assigned to a pinned queryset is checked as the query it is: a Tenant query.
    assigned = Document.objects.filter(tenant=acme.tenant)
    assigned.query = Tenant.objects.values("documents__title").query
    refused(assigned.values_list("documents__title", flat=True))


def test_a_prefetch_from_several_tenants_reads_all_of_them(acme, globex, two):
    # (test_scoping_attacks.test_a_prefetch_from_tenants_is_several_tenants fails on this branch too.)
    refused(Tenant.objects.prefetch_related("documents"))
    refused(Tenant.objects.prefetch_related("documents__versions__chunks"))
    tenants = [Tenant.objects.get(pk=acme.tenant.pk), Tenant.objects.get(pk=globex.tenant.pk)]
    refused(lambda: prefetch_related_objects(tenants, "documents"))


# A related manager trusts its row, even one made up from an id: the same as filter(version_id=…),
# which is refused.


def test_a_related_manager_of_a_row_made_from_an_id_is_not_a_held_row(acme, globex, two):
    g_document, g_version = two["globex"][2], two["globex"][3]
    refused(DocumentVersion(pk=g_version.pk).chunks.values_list("text"))  # before: ["one", "two"]
    refused(Document(pk=g_document.pk).versions.all())
    refused(lambda: DocumentVersion(pk=g_version.pk).chunks.update(text="changed"))
    refused(lambda: DocumentVersion(pk=g_version.pk).chunks.all().delete())


# Raw SQL by other spellings.


def test_extra_order_by_is_raw_sql(acme, globex, two):
    # The part after the table's dot is pasted verbatim: the order of the rows answers the subquery.
    oracle = (
        "corpus_chunk.ordinal * (CASE WHEN (SELECT count(*) FROM documents_document"
        " WHERE title = 'globex doc') > 0 THEN -1 ELSE 1 END)"
    )
    refused(Chunk.objects.for_tenant(acme.tenant).extra(order_by=[oracle]).values_list("text"))


def test_a_func_with_a_template_is_raw_sql(acme, globex, two):
    leak = Func(template="(SELECT max(title) FROM documents_document)", output_field=CharField())
    # before: ["globex doc"]
    refused(Document.objects.filter(tenant=acme.tenant).annotate(leak=leak).values_list("leak"))


# Writes from a pinned queryset: the pin limits the rows read, not the rows written.


def test_create_and_get_or_create_on_a_pinned_queryset_write_into_another_tenant(acme, globex, two):
    g_tenant, g_collection, _, g_version = two["globex"]
    refused(
        lambda: Document.objects.for_tenant(acme.tenant).create(tenant=g_tenant, collection=g_collection, title="x")
    )
    refused(
        lambda: Section.objects.for_tenant(acme.tenant).get_or_create(
            version=g_version, ordinal=5, defaults={"text": "x", "start_offset": 0, "end_offset": 1}
        )
    )


def test_an_update_moves_rows_into_another_tenant(acme, globex, two):
    g_version = two["globex"][3]
    # Today 1: an acme chunk now hangs off globex's version, and globex reads it.
    refused(lambda: Chunk.objects.for_tenant(acme.tenant).filter(ordinal=0).update(version=g_version, ordinal=9))
    refused(lambda: Document.objects.for_tenant(acme.tenant).update(collection=two["globex"][1]))


def test_an_upsert_by_key_overwrites_another_tenants_row(acme, globex, two):
    _, a_collection, _, a_version = two["acme"]
    g_document, g_version = two["globex"][2], two["globex"][3]
    mine = Document(pk=g_document.pk, tenant=acme.tenant, collection=a_collection, title="overwritten")
    refused(
        lambda: Document.objects.bulk_create(
            [mine], update_conflicts=True, unique_fields=["id"], update_fields=["title"]
        )
    )
    chunk = Chunk(
        id=f"v{g_version.pk}-c0", version=a_version, ordinal=50, text="x", text_sha256="0",
        start_offset=0, end_offset=0, embedding=b"", embedding_model="m",
    )  # fmt: skip
    refused(
        lambda: Chunk.objects.bulk_create([chunk], update_conflicts=True, unique_fields=["id"], update_fields=["text"])
    )


# False refusals: honest, pinned code that should run.


def test_a_held_rows_related_manager_through_a_key_off_the_path_names_the_tenant(acme, globex, two):
    section = Section.objects.for_tenant(acme.tenant).get()
    # Chunk.section is not on Chunk's tenant path (nothing makes a chunk's section its version's).
    refused(section.chunks.all())
    assert section.chunks.for_tenant(acme.tenant).count() == 0


def test_a_subquery_bound_to_the_outer_rows_parent_runs(acme, globex, two):
    same_version = Section.objects.filter(version=OuterRef("version")).values("text")[:1]
    chunks = Chunk.objects.for_tenant(acme.tenant)
    assert set(chunks.annotate(s=Subquery(same_version)).values_list("s", flat=True)) == {"s"}
    assert chunks.update(text=Subquery(same_version)) == 2


def test_members_of_a_tenant_group_run_through_its_auth_group(acme, globex, two):
    everyone = TenantGroup.objects.for_tenant(acme.tenant).get(is_everyone=True)
    assert Membership.objects.filter(tenant=acme.tenant, user__groups=everyone.auth_group).count() == 2
    # Through auth.Group (everybody's table) back into tenant groups: any tenant's.
    refused(Membership.objects.filter(tenant=acme.tenant, user__groups__tenant_group=everyone))


def test_rows_of_a_pinned_subquery_run(acme, globex, two):
    # The common Django idiom: a key on the path into a subquery pinned to one tenant.
    assert DocumentVersion.objects.filter(document__in=Document.objects.filter(tenant=acme.tenant)).count() == 1
