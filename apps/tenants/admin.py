from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path, reverse_field_path
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.admin.views.main import ERROR_FLAG
from django.contrib.admin.widgets import ForeignKeyRawIdWidget
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import DataError, transaction
from django.db.models import ForeignObjectRel, Q
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.text import Truncator

from apps.core.exceptions import ApplicationError
from apps.core.params import MAX_BIGINT, is_ascii_digits

from . import services
from .actors import Actor
from .models import ApiKey, DirectoryEvent, Membership, Role, Scope, Tenant, TenantGroup
from .scoping import TenantScopedQuerySet, crossing_tenants, tenant_id_of, tenant_path

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.contrib.auth.models import User
    from django.db.models import Model

    # What TenantCheckedForm is mixed into (django-stubs' ModelForm is generic in the stubs only).
    _ModelForm = forms.ModelForm[Any]
else:
    _ModelForm = object


def admin_user(request: HttpRequest) -> User:
    """The signed-in user of an admin page (the admin site lets no one else in)."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied("The admin site needs a signed-in staff user.")
    return user


def admin_grantor(request: HttpRequest, tenant) -> dict:
    """What a staff user may hand out in a tenant: their role and its scopes (nothing to check for
    a superuser). Keyword arguments for the services' granting checks."""
    from .resolution import ROLE_SCOPES

    if request.user.is_superuser:
        return {"granting_scopes": None, "granting_role": None}
    membership = Membership.objects.filter(user=admin_user(request), tenant=tenant, is_active=True).first()
    if membership is None:
        return {"granting_scopes": frozenset(), "granting_role": None}
    return {"granting_scopes": ROLE_SCOPES[membership.role], "granting_role": membership.role}


class TenantListFilter(admin.SimpleListFilter):
    """Lists only the tenants the staff user administers (Django's default lists every tenant)."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        tenants = scope_queryset(Tenant.objects.all(), model_admin.scoped_tenant_ids(request))
        return [(str(t.pk), t.slug) for t in tenants]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        if not is_ascii_digits(self.value()) or int(self.value()) > MAX_BIGINT:
            return queryset.none()  # no tenant has that id (a typed URL); never a 500
        return queryset.filter(**{f"{getattr(self, 'tenant_lookup', 'tenant')}_id": int(self.value())})


def admin_tenant_ids(request: HttpRequest) -> list[int] | None:
    """Tenants a staff user administers (owner or admin role); None means all (superuser)."""
    if request.user.is_superuser:
        return None
    return list(
        Membership.objects.of_user(admin_user(request))
        .filter(is_active=True, tenant__is_active=True, role__in=[Role.OWNER, Role.ADMIN])
        .values_list("tenant_id", flat=True)
    )


# --------------------------------------------------------------------------- tenant scoping
# One mechanism, used by every ModelAdmin and inline of the project (TenantScopedAdmin and
# TenantScopedTabularInline/TenantScopedStackedInline below; tests/admin/test_registry_isolation.py
# fails for a registered admin that does not use it). What it limits to the staff user's tenants:
# the rows of the page, every foreign-key and many-to-many choice, the label a raw-id widget prints
# for a typed id, the choices of relation list filters (and of value filters across a relation),
# the autocomplete endpoint (it uses the remote admin's queryset and search), popup changelists;
# and every form it saves refers to objects of one tenant only, one the user administers.


def _shared_filter(model, tenant_ids) -> Q | None:
    """Models that belong to no single tenant, seen through what ties them to tenants."""
    if model is get_user_model():
        return Q(memberships__tenant_id__in=tenant_ids)  # the tenants' people (never other tenants')
    if model is Group:
        return Q(tenant_group__tenant_id__in=tenant_ids)  # the auth group behind a TenantGroup
    return None


def _not_tenant_data() -> tuple:
    """Models that hold nothing of any tenant: left unscoped (the only exceptions)."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType

    return (ContentType, Permission)


def scope_queryset(queryset, tenant_ids, lookup: str | None = None):
    """`queryset` limited to the rows of `tenant_ids` (None: unlimited, a superuser). A model with
    no known way to a tenant gives nothing: scoping fails closed."""
    if tenant_ids is None:  # a superuser's pages are about every tenant
        return queryset.across_tenants() if isinstance(queryset, TenantScopedQuerySet) else queryset
    model = queryset.model
    lookup = lookup or tenant_path(model)
    if lookup is not None:
        if len(set(tenant_ids)) > 1 and isinstance(queryset, TenantScopedQuerySet):
            # Someone who administers several tenants sees their rows together: that is several
            # tenants on purpose, restricted to the ones they hold here.
            queryset = queryset.across_tenants()
        return queryset.filter(**{f"{lookup}__in": tenant_ids})
    shared = _shared_filter(model, tenant_ids)
    if shared is not None:
        return queryset.filter(pk__in=model._default_manager.filter(shared).values("pk"))
    if issubclass(model, _not_tenant_data()):
        return queryset
    return queryset.none()


class TenantCheckedForm(_ModelForm):
    """Mixed into every form the scoped admins build (objects, inline rows, list_editable rows): what
    it saves refers to objects of one tenant, one the staff user administers. This holds for fields
    the form does not show (the stored value counts) and for a new object, whose tenant is read
    from what its own form chose (an inline row of a question being added: the question's set)."""

    admin_tenant_ids: list[int] | None = None  # set per request by the admin (None: a superuser)

    def clean(self) -> dict[str, Any]:
        super().clean()
        model = self._meta.model
        head = (tenant_path(model) or "").split("__", 1)[0]
        found: dict[str, set[int]] = {}
        if model is Tenant and self.instance.pk is not None:
            found["pk"] = {self.instance.pk}
        for field in [*(f for f in model._meta.fields if f.is_relation), *model._meta.many_to_many]:
            if field.name in self.cleaned_data:
                value = self.cleaned_data[field.name]
                objects = list(value) if field.many_to_many else [value]
            elif not field.many_to_many and getattr(self.instance, field.attname, None) is not None:
                try:
                    objects = [getattr(self.instance, field.name)]
                except ObjectDoesNotExist:
                    objects = []
            else:
                objects = []
            tenants = {t for t in map(tenant_id_of, objects) if t is not None}
            if tenants:
                found[field.name] = tenants
        allowed = None if self.admin_tenant_ids is None else set(self.admin_tenant_ids)
        own = found.get(head) or found.get("pk") or next(iter(found.values()), set())
        for name, tenants in found.items():
            target = name if name in self.fields else None
            label = model._meta.get_field(name).verbose_name if name != "pk" else "tenant"
            if allowed is not None and tenants - allowed:
                self.add_error(target, f"“{label}” is of a tenant you do not administer.")
            elif len(own) == 1 and tenants != own:
                self.add_error(target, f"“{label}” belongs to another tenant than this {model._meta.verbose_name}.")
        return self.cleaned_data


def _tenant_checked(form_class, tenant_ids):
    attrs = {"admin_tenant_ids": tenant_ids, "__module__": form_class.__module__}
    return type(form_class)(form_class.__name__, (TenantCheckedForm, form_class), attrs)


class _TenantScopedFormSet:
    """A model formset adds each row's hidden primary-key field with the whole table as its
    queryset; here it is the staff user's tenants' rows, so another tenant's id is refused."""

    admin_tenant_ids: list[int] | None = None

    def add_fields(self, form, index):
        super().add_fields(form, index)
        for field in form.fields.values():
            if isinstance(field, forms.ModelChoiceField):
                field.queryset = scope_queryset(field.queryset, self.admin_tenant_ids)


def _tenant_scoped_formset(formset_class, tenant_ids):
    return type(formset_class.__name__, (_TenantScopedFormSet, formset_class), {"admin_tenant_ids": tenant_ids})


class TenantScopedRawIdWidget(ForeignKeyRawIdWidget):
    """Prints the label of a typed id only when it names an object of the staff user's tenants
    (Django's looks the id up in the whole table)."""

    label_queryset = None  # the form field's (scoped) queryset

    def label_and_url_for_value(self, value):
        key = self.rel.get_related_field().name
        try:
            obj = None if self.label_queryset is None else self.label_queryset.filter(**{key: value}).first()
        except (ValueError, TypeError, ValidationError):
            return "", ""
        if obj is None:
            return "", ""
        try:
            url = reverse(f"{self.admin_site.name}:{obj._meta.app_label}_{obj._meta.model_name}_change", args=(obj.pk,))
        except NoReverseMatch:
            url = ""
        return Truncator(obj).words(14), url


class _TenantScopedRelationChoices:
    """Relation list filters (RelatedFieldListFilter, RelatedOnlyFieldListFilter, subclasses) offer
    only objects of the staff user's tenants."""

    def field_choices(self, field, request, model_admin):
        with crossing_tenants():  # Django lists the whole table; what is not the user's is dropped below
            choices = super().field_choices(field, request, model_admin)
        tenant_ids = model_admin.scoped_tenant_ids(request)
        if tenant_ids is None:
            return choices
        key = "pk" if isinstance(field, ForeignObjectRel) else field.remote_field.get_related_field().attname
        allowed = set(
            scope_queryset(field.related_model._default_manager.all(), tenant_ids).values_list(key, flat=True)
        )
        return [(value, label) for value, label in choices if value in allowed]


class _TenantScopedValueChoices:
    """AllValuesFieldListFilter across a relation (`golden_set__name`) reads the related table
    whole; here it reads the staff user's tenants' rows only."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        tenant_ids = model_admin.scoped_tenant_ids(request)
        parent_model, _ = reverse_field_path(model, field_path)
        if tenant_ids is not None and parent_model is not model:
            rows = scope_queryset(parent_model._default_manager.all(), tenant_ids)
            self.lookup_choices = rows.distinct().order_by(field.name).values_list(field.name, flat=True)


@functools.cache
def _scoped_filter_class(filter_class):
    if issubclass(filter_class, (_TenantScopedRelationChoices, _TenantScopedValueChoices)):
        return filter_class
    if issubclass(filter_class, admin.RelatedFieldListFilter):
        mixin = _TenantScopedRelationChoices
    elif issubclass(filter_class, admin.AllValuesFieldListFilter):
        mixin = _TenantScopedValueChoices
    else:
        return filter_class  # choices, booleans, dates, empty/not empty: nothing of any tenant's
    return type(f"TenantScoped{filter_class.__name__}", (mixin, filter_class), {})


def tenant_scoped_list_filter(model, item):
    """A `list_filter` entry with its choices scoped. Field names and (field, FieldListFilter) pairs
    get a scoped class; SimpleListFilter classes are the project's own and scope their lookups with
    `model_admin.scoped_tenant_ids(request)` (the registry test renders every one)."""
    if isinstance(item, str):
        path, filter_class = item, None
    elif isinstance(item, (list, tuple)):
        path, filter_class = item
    else:
        return item
    if filter_class is None:
        field = get_fields_from_path(model, path)[-1]
        filter_class = next(c for test, c in admin.FieldListFilter._field_list_filters if test(field))
    return (path, _scoped_filter_class(filter_class))


class TenantScoping:
    """The scoping shared by TenantScopedAdmin and the scoped inlines (both are BaseModelAdmin)."""

    tenant_lookup: str | None = None  # the path to the tenant; None: tenant_path(model) finds it

    def scoped_tenant_ids(self, request: HttpRequest) -> list[int] | None:
        """The tenants this admin shows (None: all). Staff: the tenants they administer."""
        return admin_tenant_ids(request)

    def get_queryset(self, request):
        return scope_queryset(super().get_queryset(request), self.scoped_tenant_ids(request), self.tenant_lookup)

    def get_field_queryset(self, db, db_field, request):
        queryset = super().get_field_queryset(db, db_field, request)
        if queryset is None:
            queryset = db_field.remote_field.model._default_manager.using(db).all()
        return scope_queryset(queryset, self.scoped_tenant_ids(request))

    def _scoped_formfield(self, formfield, request):
        if formfield is None or not hasattr(formfield, "queryset"):
            return formfield
        formfield.queryset = scope_queryset(
            formfield.queryset, self.scoped_tenant_ids(request)
        )  # also the widget's choices
        if isinstance(formfield.widget, ForeignKeyRawIdWidget) and not isinstance(
            formfield.widget, TenantScopedRawIdWidget
        ):
            widget = copy.copy(formfield.widget)
            widget.__class__ = TenantScopedRawIdWidget
            formfield.widget = widget
        if isinstance(formfield.widget, TenantScopedRawIdWidget):
            formfield.widget.label_queryset = formfield.queryset
        return formfield

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        # Whatever queryset a subclass passes in, the field ends up scoped: this runs last.
        return self._scoped_formfield(super().formfield_for_foreignkey(db_field, request, **kwargs), request)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return self._scoped_formfield(super().formfield_for_manytomany(db_field, request, **kwargs), request)

    def get_search_results(self, request, queryset, search_term):
        # The changelist's and the autocomplete endpoint's search (admin:autocomplete asks the
        # remote model's admin for its queryset and its search results).
        return super().get_search_results(
            request, scope_queryset(queryset, self.scoped_tenant_ids(request), self.tenant_lookup), search_term
        )


class TenantScopedAdmin(TenantScoping, admin.ModelAdmin):
    """The base of every ModelAdmin of the project: staff see and pick only the tenants they
    administer (TenantScoping); a superuser sees all. A refusal from a service (ApplicationError)
    shows as an error message on the page, not a server error."""

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def changelist_view(self, request, extra_context=None):
        """A filter value typed into the URL that no column can hold (`?collection=99999999999999999999`)
        fails only when the query runs, inside the template: rendered here, in a savepoint, it is
        Django's own "incorrect lookup" redirect (?e=1) instead of a 500."""
        try:
            with transaction.atomic():
                response = super().changelist_view(request, extra_context)
                if hasattr(response, "render"):
                    response.render()
                return response
        except (OverflowError, DataError):
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

    # Staff who administer no tenant have nothing here: the pages are closed, not empty.
    def has_module_permission(self, request):
        return super().has_module_permission(request) and self.scoped_tenant_ids(request) != []

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self.scoped_tenant_ids(request) != []

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.scoped_tenant_ids(request) != []

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.scoped_tenant_ids(request) != []

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.scoped_tenant_ids(request) != []

    def get_list_filter(self, request):
        return [tenant_scoped_list_filter(self.model, item) for item in super().get_list_filter(request)]

    def get_form(self, request, obj=None, change=False, **kwargs):
        return _tenant_checked(super().get_form(request, obj, change, **kwargs), self.scoped_tenant_ids(request))

    def get_changelist_form(self, request, **kwargs):
        return _tenant_checked(super().get_changelist_form(request, **kwargs), self.scoped_tenant_ids(request))

    def get_changelist_formset(self, request, **kwargs):
        return _tenant_scoped_formset(
            super().get_changelist_formset(request, **kwargs), self.scoped_tenant_ids(request)
        )

    def get_inline_instances(self, request, obj=None):
        unscoped = [
            inline.__name__ for inline in self.get_inlines(request, obj) if not issubclass(inline, TenantScoping)
        ]
        if unscoped:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: inlines {unscoped} must be TenantScopedTabularInline or "
                "TenantScopedStackedInline"
            )
        return super().get_inline_instances(request, obj)


class TenantScopedInlineMixin(TenantScoping):
    """Inlines scope like their parent admin (the audit's by compliance roles, the rest by admin roles)."""

    # Set by InlineModelAdmin, which everything this is mixed into also is.
    admin_site: AdminSite
    parent_model: type[Model]

    def scoped_tenant_ids(self, request: HttpRequest) -> list[int] | None:
        parent = self.admin_site._registry.get(self.parent_model)
        return parent.scoped_tenant_ids(request) if isinstance(parent, TenantScoping) else admin_tenant_ids(request)

    def get_formset(self, request, obj=None, **kwargs):
        tenant_ids = self.scoped_tenant_ids(request)
        formset = _tenant_scoped_formset(super().get_formset(request, obj, **kwargs), tenant_ids)
        formset.form = _tenant_checked(formset.form, tenant_ids)
        return formset


class TenantScopedTabularInline(TenantScopedInlineMixin, admin.TabularInline):
    pass


class TenantScopedStackedInline(TenantScopedInlineMixin, admin.StackedInline):
    pass


class MembershipInline(TenantScopedTabularInline):
    """Read-only here; memberships are added and changed on their own page, through the services."""

    model = Membership
    extra = 0
    # The tenant-local name: a global username can name another tenant.
    fields = ("username", "role", "is_active")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_lookup = "pk"
    list_display = ["slug", "name", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser  # a tenant and everything it holds: the operator's call

    def get_readonly_fields(self, request, obj=None):
        # Suspending and renaming a tenant are the platform operator's (an admin must not lift a suspension).
        return [] if request.user.is_superuser else ["slug", "is_active"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Through the service, like the operator's tenant_create: a tenant is born with its
        # 'everyone' group, which tenant-wide grants are made to.
        created = services.tenant_create(slug=obj.slug, name=obj.name)
        if not obj.is_active:
            services.tenant_set_active(tenant=created, active=False)
        obj.pk, obj.created_at = created.pk, created.created_at


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    # The tenant-local username only: a person's global username (and e-mail) can name another
    # tenant they belong to, and searching them would tell who belongs elsewhere.
    list_display = ["username", "tenant", "role", "is_active"]
    list_filter = [TenantListFilter, "role", "is_active"]
    search_fields = ["username"]

    def get_fields(self, request, obj=None):
        return (
            ["tenant", "username", "role", "is_active"]
            if obj is not None
            else ["tenant", "user", "username", "role", "is_active"]
        )

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "username"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False  # deactivate instead: the services decide who may touch whose membership

    def save_model(self, request, obj, form, change):
        grantor = {**admin_grantor(request, obj.tenant), "actor": Actor(user=request.user)}
        if change:
            stored = Membership.objects.for_tenant(obj.tenant_id).get(pk=obj.pk)
            services.member_set_role(membership=stored, role=obj.role, **grantor)
            services.member_set_active(membership=stored, active=obj.is_active, **grantor)
        else:
            created = services.membership_add(
                tenant=obj.tenant, user=obj.user, username=obj.username, role=obj.role, **grantor
            )
            obj.pk = created.pk


@admin.register(TenantGroup)
class TenantGroupAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "is_everyone", "created_at"]
    list_filter = [TenantListFilter]
    search_fields = ["name"]
    readonly_fields = ["auth_group"]

    def get_readonly_fields(self, request, obj=None):
        # external_id is the directory's (SCIM): shown, set by provisioning only.
        if obj is not None:
            return ["tenant", "auth_group", "external_id"] + (["name"] if obj.is_everyone else [])
        return ["auth_group", "external_id"]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_everyone)

    def delete_model(self, request, obj):
        services.group_delete(group=obj, actor=Actor(user=request.user))

    def delete_queryset(self, request, queryset):
        for group in queryset:
            if group.is_everyone:
                self.message_user(request, f"Kept “{group}”: the everyone group cannot be deleted.", messages.WARNING)
            else:
                services.group_delete(group=group, actor=Actor(user=request.user))

    def save_model(self, request, obj, form, change):
        actor = Actor(user=request.user)
        if change:
            stored = TenantGroup.objects.for_tenant(obj.tenant_id).get(pk=obj.pk)  # obj holds the new name already
            services.group_rename(group=stored, name=obj.name, actor=actor)
        else:
            created = services.group_create(tenant=obj.tenant, name=obj.name, actor=actor)
            obj.pk, obj.auth_group = created.pk, created.auth_group


class ApiKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["tenant", "name", "scopes", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["name", "prefix", "tenant", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = [TenantListFilter]
    search_fields = ["name", "prefix"]
    actions = ["revoke"]

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: a revoked key stays, named by the audit records it signed

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "tenant",
            "name",
            "prefix",
            "scopes",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]

    def save_model(self, request, obj, form, change):
        if change:
            return  # keys are immutable; revoke and create a new one instead
        api_key, raw_key = services.api_key_create(
            tenant=form.cleaned_data["tenant"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
            created_by=request.user,
            **admin_grantor(request, form.cleaned_data["tenant"]),
        )
        obj.pk = api_key.pk
        messages.warning(request, f"The new key, shown this once (it is not stored): {raw_key}")

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        for api_key in queryset:
            services.api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {queryset.count()} key(s).")


class SuperuserOnly:
    """Django's user and group pages span every tenant: for superusers only. Staff manage people
    through memberships and tenant groups, which are scoped to their tenants."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


for model, model_admin in ((get_user_model(), UserAdmin), (Group, GroupAdmin)):
    admin.site.unregister(model)
    admin.site.register(model, type(f"SuperuserOnly{model_admin.__name__}", (SuperuserOnly, model_admin), {}))


class AutocompleteView(AutocompleteJsonView):
    """The admin's autocomplete endpoint, answering only for the relations a form can hold: a
    concrete foreign key or many-to-many of a registered model. Django's own view takes any
    field_name, and a reverse relation (`?field_name=memberships`) is a 500 inside it
    (`ForeignObjectRel` has no `get_limit_choices_to`): here it is a 403, like any other field the
    endpoint does not serve. Rows still come from the target admin's scoped queryset."""

    def process_request(self, request):
        from django.apps import apps
        from django.core.exceptions import FieldDoesNotExist, PermissionDenied

        try:
            model = apps.get_model(request.GET["app_label"], request.GET["model_name"])
            field = model._meta.get_field(request.GET["field_name"])
        except (KeyError, LookupError, FieldDoesNotExist) as exc:
            raise PermissionDenied from exc
        if isinstance(field, ForeignObjectRel) or not field.concrete or not field.is_relation:
            raise PermissionDenied
        return super().process_request(request)


class ReadOnlyAdminMixin:
    """A page of records nobody makes, edits or deletes here (a history, the audit trail): what
    writes them is a service, with every change it makes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DirectoryEvent)
class DirectoryEventAdmin(ReadOnlyAdminMixin, TenantScopedAdmin):
    """The directory's history, read-only: the services write it with every change."""

    list_display = ["at", "tenant", "kind", "member", "group", "actor", "actor_api_key_prefix"]
    list_filter = [TenantListFilter, "kind"]
    search_fields = ["member", "group"]
    date_hierarchy = "at"
