"""Attacks on fail-closed tenant scoping (apps/tenants/scoping.py), third review, of the rewrite
with correlated subqueries, pinned subqueries and held rows: ways a query through a tenant-owned
model's default manager could still read, compare with or change another tenant's rows without a
named way across tenants, each refused now ("before:" says what it did at f9b157f, before the
fix)."""

from __future__ import annotations

from django.db.models import (
    Exists,
    F,
    FilteredRelation,
    Max,
    OuterRef,
    Q,
    Subquery,
    Value,
    prefetch_related_objects,
)
from django.db.models.expressions import RawSQL

from apps.corpus.models import Chunk, Section
from apps.documents.models import Document, DocumentVersion
from apps.tenants import services
from apps.tenants.models import Membership, Tenant
from tests.tenants.conftest import refused


def _secret(version):
    Chunk.objects.across_tenants().filter(version=version).update(text="secret")


# Subqueries checked before Django resolves their OuterRef: update values, aggregate arguments and
# order_by expressions reach `_outer_target` as a ResolvedOuterRef, whose name the loop over the
# tenant path overwrites (`for depth, name in ...`): the first hop always "matches", so
# `tenant=OuterRef(<any column>)` passes as `tenant=OuterRef("tenant")`.


def test_a_subquery_in_an_update_bound_to_any_outer_column_reads_another_tenant(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    mine = Document.objects.filter(tenant=a)
    theirs = Document.objects.filter(tenant=OuterRef("k")).values("title")[:1]
    # Today: 1, and acme's document is now titled "globex doc".
    refused(lambda: mine.annotate(k=Value(g.pk)).update(title=Subquery(theirs)))
    # Two honest-looking updates copy another tenant's chunk text into one's own chunks.
    g_version = two["globex"][3]
    _secret(g_version)
    chunks = Chunk.objects.for_tenant(a)
    chunks.update(token_count=g_version.pk)
    other_version = Chunk.objects.filter(version=OuterRef("token_count")).values("text")[:1]
    refused(lambda: chunks.update(text=Subquery(other_version)))  # before: acme's chunks read "secret"
    assert set(chunks.values_list("text", flat=True)) == {"one", "two"}


def test_a_subquery_in_an_aggregate_or_an_ordering_bound_to_any_outer_column(acme, globex, two):
    a, g_version = acme.tenant, two["globex"][3]
    _secret(g_version)
    chunks = Chunk.objects.for_tenant(a)
    chunks.update(token_count=g_version.pk)
    other_version = Chunk.objects.filter(version=OuterRef("token_count")).values("text")[:1]
    refused(lambda: chunks.aggregate(x=Max(Subquery(other_version))))  # before: {"x": "secret"}
    # The order of one's own rows answers a question about another tenant's.
    refused(chunks.order_by(Subquery(other_version)).values_list("pk"))
    same_version = Chunk.objects.filter(version=OuterRef("version")).values("text")[:1]
    assert chunks.aggregate(x=Max(Subquery(same_version))) == {"x": "one"}


# Combinations: a part that pins nothing but is let through (empty, not tenant data, crossing)
# makes the union's tenants "unknown", and the several-tenants check is skipped.


def test_a_part_that_pins_nothing_lets_two_tenants_parts_through(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    mine = Document.objects.filter(tenant=a).order_by().values_list("title")
    theirs = Document.objects.filter(tenant=g).order_by().values_list("title")
    # Today: [("acme doc",), ("globex doc",)] each.
    refused(mine.union(theirs, Document.objects.none().order_by()))
    refused(mine.union(theirs, Tenant.objects.order_by().values_list("slug")))
    refused(mine.union(theirs, Document.objects.across_tenants().filter(pk__in=[]).order_by().values_list("title")))
    # Today: [] — "globex doc" is a title of globex's; [("nope",)] when it is not.
    guess = Document.objects.filter(tenant=a).order_by().annotate(x=Value("globex doc")).values_list("x")
    refused(guess.difference(theirs, Tenant.objects.order_by().values_list("slug")))


# `key__in=<subquery>`: only the select of the union's first part is checked to be the key.


def test_a_key_into_a_union_whose_other_part_selects_any_value(acme, globex, two):
    a, g_document, g_version = acme.tenant, two["globex"][2], two["globex"][3]
    _secret(g_version)
    mine = Document.objects.filter(tenant=a).order_by()
    rows = mine.values("pk").union(mine.annotate(x=Value(g_document.pk)).values("x"))
    refused(DocumentVersion.objects.filter(document__in=rows))  # before: both tenants' versions
    versions = DocumentVersion.objects.filter(document__tenant=a).order_by()
    rows = versions.values("pk").union(versions.annotate(x=Value(g_version.pk)).values("x"))
    refused(Chunk.objects.filter(version__in=rows).values_list("text"))  # before: ... "secret", "secret"


# Joins Django makes only when it compiles: ordering by a path (string or F) through users.


def test_an_ordering_through_users_joins_every_tenants_rows(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    Membership.objects.create(tenant=g, user=acme.owner.user, username="visitor", role="reader")
    owner = Membership.objects.filter(tenant=a, pk=acme.owner.pk)
    # Today: ["owner", "owner"]: one row per document in every tenant the user belongs to, in the
    # order of those documents' titles.
    refused(owner.order_by("user__memberships__tenant__documents__title").values_list("username"))
    refused(owner.order_by(F("user__memberships__tenant__documents__title").asc()).values_list("username"))
    refused(Membership.objects.filter(tenant=a).order_by("-user__memberships__username").values_list("username"))
    assert list(owner.order_by("user__username").values_list("username", flat=True)) == ["owner"]


# The condition of a FilteredRelation sits in a join, which the check does not read.


def test_a_filtered_relation_condition_hides_a_subquery_or_raw_sql(acme, globex, two):
    g = globex.tenant
    oracle = FilteredRelation("version", condition=Q(Exists(Document.objects.filter(title="acme doc"))))
    # Today: [(section,)] when acme has a document with that title, [] when not.
    refused(Section.objects.for_tenant(g).alias(c=oracle).filter(c__isnull=False).values_list("pk"))
    raw = FilteredRelation(
        "collection", condition=Q(collection__name=RawSQL("(SELECT max(title) FROM documents_document)", []))
    )
    refused(Document.objects.filter(tenant=g).alias(c=raw).values_list("c__name"))


# A held row vouches for whatever its primary key says now; a prefetch, only for its first row.


def test_a_held_row_whose_key_changed_vouches_for_another_tenant(acme, globex, two):
    g_version = two["globex"][3]
    _secret(g_version)
    version = DocumentVersion.objects.for_tenant(acme.tenant).get()
    version.pk = g_version.pk
    refused(version.chunks.values_list("text"))  # before: ["secret", "secret"]


def test_a_prefetch_vouches_for_every_row_by_its_first(acme, globex, two):
    g_version = two["globex"][3]
    _secret(g_version)
    made_up = DocumentVersion(pk=g_version.pk)
    held = DocumentVersion.objects.for_tenant(acme.tenant).get()
    refused(lambda: prefetch_related_objects([held, made_up], "chunks"))  # before: made_up's chunks read "secret"


# Writes through a pinned queryset: a related row made up in memory vouches for the tenant that
# its in-memory keys say, while the database gets its primary key.


def test_a_made_up_parent_writes_into_another_tenant(acme, globex, two):
    a, a_document, g_version = acme.tenant, two["acme"][2], two["globex"][3]
    made_up = DocumentVersion(pk=g_version.pk, document=a_document)  # globex's version, "acme's" document
    sections = Section.objects.for_tenant(a)
    # Today each makes or moves a row under globex's version.
    refused(lambda: sections.create(version=made_up, ordinal=7, text="x", start_offset=0, end_offset=1))
    refused(lambda: sections.bulk_create([Section(version=made_up, ordinal=8, text="x", start_offset=0, end_offset=1)]))
    refused(
        lambda: sections.get_or_create(
            version=made_up, ordinal=9, defaults={"text": "x", "start_offset": 0, "end_offset": 1}
        )
    )
    refused(lambda: Chunk.objects.for_tenant(a).filter(ordinal=0).update(version=made_up, ordinal=70))
    assert not Section.objects.for_tenant(globex.tenant).filter(ordinal__gt=0).exists()


def test_update_or_create_moves_a_row_into_another_tenant(acme, globex, two):
    a, a_document = acme.tenant, two["acme"][2]
    g_tenant, g_collection, _, g_version = two["globex"]
    # Today: the row found is saved with the defaults through the base manager, unchecked: an acme
    # chunk now hangs off globex's version; acme's document (its versions, chunks) is now globex's.
    chunk = Chunk.objects.for_tenant(a).get(ordinal=0)
    refused(
        lambda: Chunk.objects.for_tenant(a).update_or_create(
            pk=chunk.pk, defaults={"version": g_version, "ordinal": 60}
        )
    )
    refused(
        lambda: Document.objects.for_tenant(a).update_or_create(
            pk=a_document.pk, defaults={"tenant": g_tenant, "collection": g_collection}
        )
    )
    assert Document.objects.for_tenant(a).count() == 1


# A tenant pinned by slug is "the same" as the tenant whose id reads like that slug.


def test_a_slug_pin_is_not_another_tenants_id(acme, globex, two):
    g_tenant, g_collection = two["globex"][0], two["globex"][1]
    services.tenant_create(slug=str(g_tenant.pk), name="Numbers")  # a third tenant, slug "2"
    by_slug = Document.objects.filter(tenant__slug=str(g_tenant.pk))
    # Today: a document of globex (id 2) made through the queryset of tenant "2" (id 3).
    refused(lambda: by_slug.create(tenant=g_tenant, collection=g_collection, title="x"))


# Found in the final read of the diff: a path joined only part of the way.


def test_a_parents_id_part_way_along_the_path_is_not_a_tenant(acme, globex, two):
    g_document, g_version = two["globex"][2], two["globex"][3]
    # Django joins chunk -> version and stops: the version's document id is not a tenant.
    refused(Chunk.objects.filter(version__document_id=g_document.pk).values_list("text"))  # before: globex's
    refused(Chunk.objects.filter(version_id=g_version.pk))
    refused(Section.objects.filter(version__document=g_document))
    assert Chunk.objects.filter(version__document__tenant=globex.tenant, version__document=g_document).count() == 2
