"""The admin site for the document lifecycle: upload versions, see versions with their status and
the history, publish / roll back / archive / purge with confirmation, edit grants. Every change
goes through the same services as the API, so the rules and the history are the same."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apps.access.grants import Grant, grants_list
from apps.access.levels import LEVEL_NAMES, Level
from apps.core.exceptions import ApplicationError
from apps.core.params import MAX_BIGINT, is_ascii_digits
from apps.tenants.actors import Actor
from apps.tenants.admin import (
    TenantListFilter,
    TenantScopedAdmin,
    TenantScopedTabularInline,
    admin_tenant_ids,
    admin_user,
    scope_queryset,
)
from apps.tenants.models import ApiKey, Membership, TenantGroup

from . import selectors, services
from .models import Collection, Document, DocumentEvent, DocumentState, DocumentVersion, IngestionStatus

if TYPE_CHECKING:
    # What GrantsAdminMixin is mixed into (django-stubs' ModelAdmin is generic in the stubs only).
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = object


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=admin_user(request))


# --------------------------------------------------------------------------- grants editing
class GrantForm(forms.Form):
    principal = forms.ChoiceField()
    level = forms.ChoiceField(choices=[(name, name) for name in LEVEL_NAMES])

    def __init__(self, *args, principal_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["principal"].choices = [("", "---------"), *principal_choices]


def _principal_choices(tenant) -> list[tuple[str, str]]:
    choices = [(f"user:{m.user_id}", f"user {m.username}") for m in Membership.objects.filter(tenant=tenant)]
    choices += [(f"group:{g.auth_group_id}", f"group {g.name}") for g in TenantGroup.objects.filter(tenant=tenant)]
    choices += [
        (f"user:{k.service_user_id}", f"API key {k.name} ({k.prefix})") for k in ApiKey.objects.filter(tenant=tenant)
    ]
    return choices


def _principal(value: str):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    kind, pk = value.split(":")
    return (Group if kind == "group" else get_user_model()).objects.get(pk=int(pk))


def _current_rows(obj) -> list[dict]:
    from django.contrib.auth.models import Group

    return [
        {
            "principal": f"{'group' if isinstance(g.principal, Group) else 'user'}:{g.principal.pk}",
            "level": g.level.label,
        }
        for g in grants_list(obj)
    ]


class GrantsAdminMixin(_ModelAdmin):
    """An 'Edit grants' page limited to the object's own tenant's people, groups and keys."""

    grants_template = "admin/documents/grants.html"

    def grants_view(self, request: HttpRequest, object_id: str):
        obj = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        is_document = isinstance(obj, Document)
        source = obj if not is_document or obj.has_own_grants else obj.collection
        choices = _principal_choices(obj.tenant)
        GrantFormSet = forms.formset_factory(GrantForm, extra=3, can_delete=True)
        if request.method == "POST":
            formset = GrantFormSet(request.POST, form_kwargs={"principal_choices": choices})
            inherit = is_document and request.POST.get("inherit") == "on"
            if formset.is_valid():
                if inherit:
                    services.document_grants_inherit(document=obj, actor=_actor(request))
                else:
                    grants = [
                        Grant(_principal(form.cleaned_data["principal"]), Level.parse(form.cleaned_data["level"]))
                        for form in formset.forms
                        if form.cleaned_data.get("principal") and not form.cleaned_data.get("DELETE")
                    ]
                    services.grants_replace(obj=obj, grants=grants, actor=_actor(request))
                self.message_user(request, f"Grants of “{obj}” saved.", messages.SUCCESS)
                return HttpResponseRedirect(reverse(f"admin:documents_{obj._meta.model_name}_change", args=[obj.pk]))
        else:
            formset = GrantFormSet(initial=_current_rows(source), form_kwargs={"principal_choices": choices})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Grants of {obj._meta.verbose_name} “{obj}”",
            "object": obj,
            "opts": self.model._meta,
            "formset": formset,
            "is_document": is_document,
            "inherited": is_document and not obj.has_own_grants,
        }
        return TemplateResponse(request, self.grants_template, context)


# --------------------------------------------------------------------------- collections
class CollectionListFilter(admin.SimpleListFilter):
    """Lists only the collections of the staff user's tenants."""

    title = "collection"
    parameter_name = "collection"

    def lookups(self, request, model_admin):
        collections = scope_queryset(Collection.objects.all(), model_admin.scoped_tenant_ids(request))
        return [(str(c.pk), f"{c.name} ({c.tenant.slug})") for c in collections.select_related("tenant")]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if not is_ascii_digits(self.value()) or int(self.value()) > MAX_BIGINT:
            return queryset.none()  # no collection has that id (a typed URL); never a 500
        return queryset.filter(collection_id=int(self.value()))


@admin.register(Collection)
class CollectionAdmin(GrantsAdminMixin, TenantScopedAdmin):
    list_display = ["name", "tenant", "document_count", "grants_link", "created_at"]
    list_filter = [TenantListFilter]
    search_fields = ["name"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj is not None else []  # documents keep their tenant: so does the collection

    def get_urls(self):
        return [
            path(
                "<path:object_id>/grants/",
                self.admin_site.admin_view(self.grants_view),
                name="documents_collection_grants",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="documents")
    def document_count(self, obj: Collection) -> int:
        return obj.documents.filter(tenant=obj.tenant).count()

    @admin.display(description="grants")
    def grants_link(self, obj: Collection):
        return format_html('<a href="{}">Edit grants</a>', reverse("admin:documents_collection_grants", args=[obj.pk]))


# --------------------------------------------------------------------------- documents
class VersionInline(TenantScopedTabularInline):
    model = DocumentVersion
    extra = 0
    can_delete = False
    fields = (
        "number",
        "original_filename",
        "media_type",
        "size",
        "status",
        "progress",
        "status_reason",
        "created_at",
        "publish_link",
    )
    readonly_fields = fields
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="progress")
    def progress(self, version: DocumentVersion) -> str:
        return f"{version.progress_done}/{version.progress_total}" if version.progress_total else "—"

    @admin.display(description="")
    def publish_link(self, version: DocumentVersion):
        document = version.document
        if version.status != IngestionStatus.READY or document.state == DocumentState.DELETED:
            return "—"
        if document.published_version_id == version.pk:
            return "published"
        current = document.published_version
        label = "Roll back to this version" if current and current.number > version.number else "Publish"
        url = reverse("admin:documents_document_publish", args=[document.pk, version.number])
        return format_html('<a class="button" href="{}">{}</a>', url, label)


class EventInline(TenantScopedTabularInline):
    model = DocumentEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "action", "version", "who", "reason", "details")
    readonly_fields = fields
    verbose_name_plural = "history"

    def get_queryset(self, request):
        return selectors.with_actor_names(super().get_queryset(request))

    @admin.display(description="actor")
    def who(self, event):
        return selectors.event_actor_label(event)  # the tenant-local name, never `ceo@globex`

    def has_add_permission(self, request, obj=None):
        return False


class LatestVersionStatusFilter(admin.SimpleListFilter):
    title = "latest version status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return IngestionStatus.choices

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        latest = DocumentVersion.objects.filter(document=OuterRef("pk")).order_by("-number").values("status")[:1]
        return queryset.annotate(latest_status=Subquery(latest)).filter(latest_status=self.value())


class TagsField(forms.CharField):
    """Tags as comma-separated words in the admin, a JSON list in the database."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return [tag.strip() for tag in (value or "").split(",") if tag.strip()]


class DocumentAddForm(forms.ModelForm):
    tags = TagsField(required=False, help_text="Comma-separated.")
    source_url = forms.URLField(required=False, assume_scheme="https", max_length=1000)
    file = forms.FileField(required=False, help_text="The first version (optional).")
    change_note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Document
        fields = [
            "collection",
            "title",
            "author",
            "category",
            "tags",
            "effective_date",
            "source_url",
            "retention_until",
            "legal_hold",
        ]


class UploadVersionForm(forms.Form):
    file = forms.FileField()
    change_note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


@admin.register(Document)
class DocumentAdmin(GrantsAdminMixin, TenantScopedAdmin):
    list_display = ["title", "tenant", "collection", "state", "published", "latest_status", "legal_hold", "updated_at"]
    list_filter = [TenantListFilter, CollectionListFilter, "state", LatestVersionStatusFilter, "legal_hold"]
    search_fields = ["title"]
    inlines = [VersionInline, EventInline]
    actions = ["archive", "unarchive", "soft_delete", "purge"]
    change_form_template = "admin/documents/document/change_form.html"
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = [
        "tenant",
        "collection",
        "state",
        "published_version",
        "has_own_grants",
        "created_by",
        "created_at",
        "updated_at",
        "purged_at",
    ]
    fieldsets = [
        (None, {"fields": ["tenant", "collection", "title", "state", "published_version"]}),
        ("Metadata", {"fields": ["author", "category", "tags", "effective_date", "source_url"]}),
        ("Retention", {"fields": ["retention_until", "legal_hold", "purged_at"]}),
        ("Record", {"fields": ["has_own_grants", "created_by", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("tenant", "collection", "published_version")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "tags":
            return TagsField(required=False, help_text="Comma-separated.")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _add_fields(self, request) -> list[str]:
        """The add form's fields: legal hold and retention only for staff whose role sets them in a
        tenant (services.retention_authority decides again, for the collection's tenant, on save)."""
        fields = list(DocumentAddForm.Meta.fields)
        tenant_ids = admin_tenant_ids(request)
        from apps.tenants.resolution import RETENTION_ROLES

        holders = Membership.objects.of_user(request.user).filter(
            is_active=True, role__in=RETENTION_ROLES, tenant__is_active=True
        )
        if tenant_ids is not None:
            holders = holders.filter(tenant_id__in=tenant_ids)
        return fields if holders.exists() else [f for f in fields if f not in services.RETENTION_FIELDS]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentAddForm
            kwargs["fields"] = self._add_fields(request)
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": [*self._add_fields(request), "file", "change_note"]})]
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        if not services.retention_authority(tenant=obj.tenant, actor=_actor(request)):
            # Legal hold and retention are the compliance team's (owner, compliance): shown, not editable.
            return [*self.readonly_fields, *sorted(services.RETENTION_FIELDS)]
        return self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        metadata = {f: data[f] for f in DocumentAddForm.Meta.fields if f in data and f != "collection"}
        if change:
            # The form already wrote into `obj`; the service compares against the stored row so the
            # history records what really changed.
            stored = Document.objects.for_tenant(obj.tenant_id).get(pk=obj.pk)
            changes = {f: data[f] for f in form.changed_data if f in DocumentAddForm.Meta.fields and f != "collection"}
            services.document_update(document=stored, actor=_actor(request), **changes)
            return
        created = services.document_create(
            tenant=data["collection"].tenant,
            collection=data["collection"],
            actor=_actor(request),
            file=data.get("file"),
            change_note=data.get("change_note", ""),
            **metadata,
        )
        obj.pk = created.pk

    @admin.display(description="published")
    def published(self, obj: Document) -> str:
        return f"v{obj.published_version.number}" if obj.published_version else "—"

    @admin.display(description="latest version")
    def latest_status(self, obj: Document) -> str:
        latest = obj.versions.order_by("-number").first()
        return f"v{latest.number} {latest.status}" if latest else "—"

    # ---- custom pages
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/upload/", view(self.upload_view), name="documents_document_upload"),
            path("<path:object_id>/publish/<int:number>/", view(self.publish_view), name="documents_document_publish"),
            path("<path:object_id>/grants/", view(self.grants_view), name="documents_document_grants"),
            *super().get_urls(),
        ]

    def _document(self, request, object_id) -> Document:
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def _back(self, document: Document):
        return HttpResponseRedirect(reverse("admin:documents_document_change", args=[document.pk]))

    def _document_to_change(self, request, object_id) -> Document:
        document = self._document(request, object_id)
        if not self.has_change_permission(request, document):
            raise PermissionDenied
        return document

    def upload_view(self, request: HttpRequest, object_id: str):
        document = self._document_to_change(request, object_id)
        form = UploadVersionForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                version = services.version_upload(document=document, actor=_actor(request), **form.cleaned_data)
            except ApplicationError as exc:
                form.add_error("file", exc.message)
            else:
                self.message_user(
                    request,
                    f"Uploaded version {version.number}; it is {version.status} until ingested.",
                    messages.SUCCESS,
                )
                return self._back(document)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Upload a new version of “{document}”",
            "object": document,
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/documents/document/upload.html", context)

    def publish_view(self, request: HttpRequest, object_id: str, number: int):
        document = self._document_to_change(request, object_id)
        version = get_object_or_404(document.versions, number=number)
        current = document.published_version
        rollback = current is not None and current.number > version.number
        verb = "Roll back to" if rollback else "Publish"
        form = ReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                if rollback:
                    services.document_rollback(
                        document=document, version=version, actor=_actor(request), **form.cleaned_data
                    )
                else:
                    services.version_publish(version=version, actor=_actor(request), **form.cleaned_data)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{verb} version {version.number} of “{document}”: done.", messages.SUCCESS)
            return self._back(document)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} version {version.number} of “{document}”?",
            "object": document,
            "opts": self.model._meta,
            "form": form,
            "verb": verb,
            "version": version,
            "current": current,
        }
        return TemplateResponse(request, "admin/documents/document/confirm_publish.html", context)

    # ---- changelist actions, each with a confirmation page
    def _confirmed(self, request, queryset, verb: str, service) -> TemplateResponse | None:
        if request.POST.get("confirmed") == "yes":
            form = ReasonForm(request.POST)
            form.is_valid()
            done, failed = 0, []
            for document in queryset:
                try:
                    service(document=document, actor=_actor(request), reason=form.cleaned_data.get("reason", ""))
                    done += 1
                except ApplicationError as exc:
                    failed.append(f"“{document}”: {exc.message}")
            if done:
                self.message_user(request, f"{verb}: {done} document(s).", messages.SUCCESS)
            for failure in failed:
                self.message_user(request, f"{verb} refused for {failure}", messages.ERROR)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} {queryset.count()} document(s)?",
            "opts": self.model._meta,
            "queryset": queryset,
            "action": request.POST["action"],
            "verb": verb,
            "form": ReasonForm(),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/documents/document/confirm_action.html", context)

    @admin.action(description="Archive (hide from search)", permissions=["change"])
    def archive(self, request, queryset):
        return self._confirmed(request, queryset, "Archive", services.document_archive)

    @admin.action(description="Unarchive", permissions=["change"])
    def unarchive(self, request, queryset):
        return self._confirmed(request, queryset, "Unarchive", services.document_unarchive)

    @admin.action(description="Delete (soft; content kept until purged)", permissions=["change"])
    def soft_delete(self, request, queryset):
        return self._confirmed(request, queryset, "Delete", services.document_delete)

    @admin.action(description="Purge content (refused under legal hold or retention)", permissions=["change"])
    def purge(self, request, queryset):
        return self._confirmed(request, queryset, "Purge", services.document_purge)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # hard deletes would bypass the lifecycle and history
        return actions

    def has_delete_permission(self, request, obj=None):
        return False


class VersionTenantFilter(TenantListFilter):
    tenant_lookup = "document__tenant"


@admin.register(DocumentVersion)
class DocumentVersionAdmin(TenantScopedAdmin):
    """Every version with its ingestion status: failed ones with their reason, and a retry action."""

    tenant_lookup = "document__tenant"
    list_display = ["document", "number", "status", "progress", "status_reason", "media_type", "size", "created_at"]
    list_filter = ["status", VersionTenantFilter]
    search_fields = ["document__title", "original_filename"]
    actions = ["retry_ingestion"]
    list_select_related = ["document"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="progress")
    def progress(self, version: DocumentVersion) -> str:
        return f"{version.progress_done}/{version.progress_total}" if version.progress_total else "—"

    @admin.action(description="Retry ingestion", permissions=["change"])
    def retry_ingestion(self, request, queryset):
        queued = sum(services.version_requeue(version=version) for version in queryset)
        self.message_user(
            request,
            f"Queued {queued} version(s) for ingestion; ready and purged ones were left alone.",
            messages.SUCCESS,
        )
