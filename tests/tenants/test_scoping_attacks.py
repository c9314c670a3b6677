"""Attacks on fail-closed tenant scoping (apps/tenants/scoping.py), from an adversarial review: ways a
query that looks pinned to one tenant could still read, compare with or change another tenant's
rows. Each is refused; beside it, the honest spelling of the same need runs and stays in its
tenant."""

from __future__ import annotations

import asyncio
import io
import json

from django.core.management import call_command
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.expressions import RawSQL

from apps.audit.models import AuditRecord, Review
from apps.corpus.models import Chunk
from apps.documents.models import Collection, Document, DocumentVersion
from apps.tenants.models import Membership, Tenant
from tests.tenants.conftest import refused

# Combining querysets: a pinned part does not vouch for an unpinned one.


def test_a_union_needs_every_part_pinned(acme, globex, two):
    a = acme.tenant
    refused(Document.objects.filter(tenant=a).union(Document.objects.all()))
    refused(Document.objects.all().union(Document.objects.filter(tenant=a)))
    refused(Document.objects.filter(tenant=a).union(Document.objects.filter(tenant=globex.tenant)).count)
    refused(Document.objects.filter(tenant=a).union(Document.objects.filter(tenant__slug="globex")))
    # (Unordered parts: SQLite refuses ORDER BY inside a compound statement.)
    both = Document.objects.filter(tenant=a).order_by().union(Document.objects.filter(tenant=a, title="x").order_by())
    assert [d.title for d in both] == ["acme doc"]


def test_an_intersection_or_a_difference_needs_every_part_pinned_too(acme, globex, two):
    a = acme.tenant
    every, mine = Document.objects.order_by(), Document.objects.filter(tenant=a).order_by()
    # Against another tenant's rows, they compare with them (is this title theirs too?).
    refused(every.intersection(mine))
    refused(mine.difference(every))
    assert [d.title for d in mine.intersection(mine.filter(title="acme doc"))] == ["acme doc"]
    assert [d.title for d in mine.difference(mine.filter(title="x"))] == ["acme doc"]


def test_an_or_of_two_tenants_is_two_tenants(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    refused(Document.objects.filter(Q(tenant=a) | Q(tenant=g)))
    refused(Document.objects.filter(tenant__in=[a, g]))
    refused(Document.objects.filter(tenant__slug__in=["acme", "globex"]))
    refused(Document.objects.filter(tenant=a) | Document.objects.filter(tenant=g))
    assert Document.objects.filter(Q(tenant=a) | Q(tenant=a, title="x")).count() == 1
    assert Document.objects.filter(tenant__in=[a]).count() == 1


# A related manager vouches only for the rows that hang off its row.


def test_a_related_manager_combined_with_anything_loses_its_parent(acme, globex, two):
    version = two["acme"][3]
    refused(version.chunks.all() | Chunk.objects.all())
    refused(version.chunks.union(Chunk.objects.all()))
    # An OR inside still sits under the manager's AND-ed key: those are the version's chunks.
    assert version.chunks.filter(Q(ordinal=0) | ~Q(version=version)).count() == 1
    assert version.chunks.count() == 2
    assert (version.chunks.filter(ordinal=0) | version.chunks.filter(ordinal=1)).count() == 2


def test_a_parent_vouches_only_for_children_whose_tenant_is_its_own(acme, globex, two):
    _, collection, document, _ = two["acme"]
    # A document names its tenant in its own column, which need not be its collection's: say it.
    refused(collection.documents.all())
    assert list(collection.documents.filter(tenant=collection.tenant)) == [document]
    # A review names its tenant in its own column too, whatever record it claims.
    refused(AuditRecord(pk=1, tenant=acme.tenant).reviews.all())
    refused(Review.objects.filter(record_id=1))
    # Chunks have no tenant column of their own: their version's is theirs.
    assert document.versions.get().chunks.count() == 2


def test_a_prefetch_from_tenants_is_several_tenants(acme, globex, two):
    refused(Tenant.objects.prefetch_related("documents"))
    refused(lambda: list(Collection.objects.filter(tenant=acme.tenant).prefetch_related("documents")))
    tenant = Tenant.objects.prefetch_related("documents").filter(pk=acme.tenant.pk).get()
    assert [d.title for d in tenant.documents.all()] == ["acme doc"]


# Ways of running SQL the check cannot read.


def test_raw_and_extra_sql_are_refused(acme, globex, two):
    a = acme.tenant
    refused(lambda: list(Document.objects.raw("SELECT * FROM documents_document")))
    refused(lambda: list(Document.objects.filter(tenant=a).raw("SELECT * FROM documents_document")))
    refused(Document.objects.filter(tenant=a).extra(where=["1=1) OR (1=1"]))
    refused(Document.objects.filter(tenant=a).extra(select={"n": "SELECT count(*) FROM documents_document"}))
    refused(Document.objects.filter(tenant=a).annotate(n=RawSQL("SELECT count(*) FROM documents_document", [])))
    refused(Document.objects.filter(tenant=a).filter(title=RawSQL("'x'", [])))
    everything = Document.objects.across_tenants().raw("SELECT * FROM documents_document")
    assert len(list(everything)) == 2


def test_async_iteration_is_checked(acme, globex, two):
    async def titles(queryset):
        return [d.title async for d in queryset.aiterator()]

    refused(lambda: asyncio.run(titles(Document.objects.all())))


# Subqueries: every one must be pinned, or bound to the row or tenant of the query around it.


def test_an_unpinned_subquery_anywhere_is_refused(acme, globex, two):
    a = acme.tenant
    others = Document.objects.values("title")[:1]
    mine = Document.objects.filter(tenant=a)
    refused(mine.annotate(leak=Subquery(others)))
    refused(mine.alias(leak=Subquery(others)).filter(leak="globex doc"))
    refused(mine.filter(Exists(Chunk.objects.filter(text="one"))))
    refused(mine.filter(title__in=Document.objects.values("title")))
    refused(mine.order_by(Subquery(others)))
    refused(lambda: mine.aggregate(n=Subquery(Chunk.objects.values("pk")[:1])))
    refused(lambda: mine.update(title=Subquery(others)))
    refused(mine.annotate(n=Count("pk")).filter(n__gt=Subquery(Chunk.objects.values("ordinal")[:1])))
    # Nested: a subquery of a subquery.
    refused(mine.filter(Exists(Collection.objects.filter(tenant=a, name__in=Collection.objects.values("name")))))


def test_a_subquery_bound_to_the_outer_row_or_tenant_runs(acme, globex, two):
    a = acme.tenant
    mine = Document.objects.filter(tenant=a)
    newest = DocumentVersion.objects.filter(document=OuterRef("pk")).order_by("-number").values("number")[:1]
    assert list(mine.annotate(newest=Subquery(newest)).values_list("newest", flat=True)) == [1]
    assert mine.filter(Exists(Chunk.objects.filter(version__document=OuterRef("pk")))).count() == 1
    same_tenant = Collection.objects.filter(tenant=OuterRef("tenant")).values("name")[:1]
    assert list(mine.annotate(c=Subquery(same_tenant)).values_list("c", flat=True)) == ["c"]
    assert mine.update(title=Subquery(same_tenant)) == 1
    pinned = Collection.objects.filter(tenant=a).values("name")[:1]
    assert list(mine.annotate(c=Subquery(pinned)).values_list("c", flat=True)) == ["c"]


def test_a_subquery_bound_to_something_else_is_refused(acme, globex, two):
    mine = Document.objects.filter(tenant=acme.tenant)
    # Bound to a column of the outer row that is not its tenant.
    refused(mine.annotate(c=Subquery(Collection.objects.filter(pk=OuterRef("collection")).values("name")[:1])))
    refused(mine.filter(Exists(Document.objects.filter(title=OuterRef("title")))))
    # Bound to a tenant row of a query that is not scoped.
    refused(mine.filter(Exists(Document.objects.filter(tenant=OuterRef("collection__tenant")))))


# Joins: the tenant column must be the one the model's own path reaches, and no join may leave the
# tenant's data through a table that is everybody's (users, groups).


def test_the_tenant_column_must_be_on_the_models_own_path(acme, globex, two):
    a = acme.tenant
    refused(Document.objects.filter(collection__documents__tenant=a))
    refused(Chunk.objects.filter(version__document__versions__document__tenant=a))
    refused(DocumentVersion.objects.filter(document__collection__tenant=a))


def test_a_join_out_through_users_or_groups_is_refused(acme, globex, two):
    a, g = acme.tenant, globex.tenant
    both = Membership.objects.create(tenant=g, user=acme.owner.user, username="visitor", role="reader")
    refused(Membership.objects.filter(tenant=a, user__memberships__tenant=g))
    refused(Membership.objects.filter(tenant=a).values("user__memberships__role"))
    refused(Membership.objects.filter(tenant=a).annotate(n=Count("user__memberships")))
    refused(Membership.objects.filter(tenant=a).filter(username=F("user__memberships__username")))
    assert Membership.objects.filter(tenant=a, user__username=acme.owner.user.username).count() == 1
    assert both.pk in set(Membership.objects.of_user(acme.owner.user).values_list("pk", flat=True))


# Django's dump of an app is an operator's, about every tenant.


def test_dumpdata_of_an_app_dumps_every_tenant(acme, globex, two):
    out = io.StringIO()
    call_command("dumpdata", "documents.document", stdout=out)
    assert sorted(row["fields"]["title"] for row in json.loads(out.getvalue())) == ["acme doc", "globex doc"]
