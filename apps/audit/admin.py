"""Compliance review in the admin site: a read-only list of audit records with filters, and a
detail page with the query, the answer, every retrieved chunk's exact text (from the immutable
version) with its scores, and a form to mark the record reviewed or flagged.

Only superusers and staff members holding the compliance role see it, and only for their tenants."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.text import Truncator

from apps.core.params import MAX_BIGINT, is_ascii_digits
from apps.documents.models import Document
from apps.tenants.admin import ReadOnlyAdminMixin, TenantScopedAdmin, admin_user, scope_queryset
from apps.tenants.models import Membership, Tenant
from apps.tenants.resolution import AUDIT_ROLES

from . import selectors, services
from .models import AuditRecord, RetrievedChunk, ReviewStatus
from .replay import record_replay


def compliance_tenant_ids(request: HttpRequest) -> list[int] | None:
    """Tenants whose audit trail this staff user reviews; None means all (superuser)."""
    if request.user.is_superuser:
        return None
    return list(
        Membership.objects.of_user(admin_user(request))
        .filter(is_active=True, role__in=AUDIT_ROLES, tenant__is_active=True)  # a suspension closes it too
        .values_list("tenant_id", flat=True)
    )


class AuditTenantFilter(admin.SimpleListFilter):
    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        ids = compliance_tenant_ids(request)
        tenants = Tenant.objects.all() if ids is None else Tenant.objects.filter(pk__in=ids)
        return [(str(t.pk), t.slug) for t in tenants]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if not is_ascii_digits(self.value()) or int(self.value()) > MAX_BIGINT:
            return queryset.none()  # no tenant has that id (a typed URL); never a 500
        return queryset.filter(tenant_id=int(self.value()))


class ReviewStatusFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [*ReviewStatus.choices, ("unreviewed", "Not reviewed")]

    def queryset(self, request, queryset):
        if self.value() == "unreviewed":
            return queryset.filter(review_status__isnull=True)
        return queryset.filter(review_status=self.value()) if self.value() else queryset


class UserFilter(admin.SimpleListFilter):
    title = "user"
    parameter_name = "username"

    def lookups(self, request, model_admin):
        names = (
            model_admin.get_queryset(request)
            .exclude(username="")
            .order_by()
            .values_list("username", flat=True)
            .distinct()
        )
        return [(name, name) for name in sorted(set(names))[:100]]

    def queryset(self, request, queryset):
        return queryset.filter(username=self.value()) if self.value() else queryset


class DocumentFilter(admin.SimpleListFilter):
    """Reverse look-up: the records whose retrieval touched this document."""

    title = "document"
    parameter_name = "document"

    def lookups(self, request, model_admin):
        records = model_admin.get_queryset(request)
        ids = (
            scope_queryset(RetrievedChunk.objects.all(), model_admin.scoped_tenant_ids(request))
            .filter(record__in=records)
            .order_by()
            .values_list("document_id", flat=True)
            .distinct()[:200]
        )
        documents = scope_queryset(Document.objects.filter(pk__in=list(ids)), model_admin.scoped_tenant_ids(request))
        return [(str(d.pk), f"{d.title} (#{d.pk})") for d in documents.order_by("title")]

    def queryset(self, request, queryset):
        if not self.value() or not is_ascii_digits(self.value()) or int(self.value()) > MAX_BIGINT:
            return queryset
        # Bound to each listed record (so to its tenant), not a list of every tenant's record ids.
        return queryset.filter(
            Exists(RetrievedChunk.objects.filter(record=OuterRef("pk"), document_id=int(self.value())))
        )


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    list_display = ("sequence", "created_at", "tenant", "kind", "who", "short_query", "outcome", "review")
    list_display_links = ("sequence", "short_query")
    list_filter = (AuditTenantFilter, "kind", "outcome", ReviewStatusFilter, UserFilter, DocumentFilter, "created_at")
    search_fields = ("query", "username", "answer")
    date_hierarchy = "created_at"
    list_per_page = 50
    change_list_template = "admin/audit/auditrecord/change_list.html"  # adds "Export these records"

    # ------------------------------------------------------------- read-only, compliance only
    def scoped_tenant_ids(self, request):
        return compliance_tenant_ids(request)  # the trail is the compliance team's, not the admins'

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and compliance_tenant_ids(request) != []

    def has_view_permission(self, request, obj=None):
        if not self.has_module_permission(request):
            return False
        ids = compliance_tenant_ids(request)
        return obj is None or ids is None or obj.tenant_id in ids

    def get_queryset(self, request):
        return selectors._with_review_status(super().get_queryset(request).select_related("tenant"))

    # ------------------------------------------------------------- columns
    @admin.display(description="user")
    def who(self, record):
        key = f" via key {record.api_key_prefix}" if record.api_key_prefix else ""
        return f"{record.username or '—'}{key}"

    @admin.display(description="query")
    def short_query(self, record):
        return Truncator(record.query).chars(80)

    @admin.display(description="review")
    def review(self, record):
        return record.review_status or "—"

    # ------------------------------------------------------------- export
    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="audit_auditrecord_export")
        return [export, *super().get_urls()]

    def export_view(self, request):
        """The records the list shows, every page of them, with its filters, search and dates, as the
        API's CSV export (selectors.export_csv: structured cells as JSON, spreadsheet-safe)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            records = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:  # what the list itself answers with a redirect
            return HttpResponseRedirect("../?e=1")
        response = StreamingHttpResponse(selectors.export_csv(records), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="audit-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        return response

    # ------------------------------------------------------------- the detail page
    def change_view(self, request, object_id, form_url="", extra_context=None):
        record = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, record):
            return HttpResponseRedirect("../")
        if request.method == "POST":
            status = request.POST.get("status")
            if status not in ReviewStatus.values:
                self.message_user(request, "Choose reviewed or flagged.", messages.ERROR)
            else:
                membership = Membership.objects.filter(user=request.user, tenant=record.tenant).first()
                services.review_add(
                    record=record,
                    status=status,
                    comment=request.POST.get("comment", "")[:5000],
                    reviewer_id=request.user.pk,
                    reviewer_name=membership.username if membership else request.user.get_username(),
                )
                self.message_user(request, f"Record {record.tenant.slug}#{record.sequence} marked {status}.")
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Audit record {record.tenant.slug}#{record.sequence}",
            "record": record,
            "evidence": selectors.record_evidence(record=record),
            "replay": record_replay(record=record) if request.GET.get("replay") else None,
            "reviews": record.reviews.filter(tenant=record.tenant),
            "statuses": ReviewStatus.choices,
            "has_view_permission": True,
        }
        return TemplateResponse(request, "admin/audit/auditrecord/detail.html", context)
