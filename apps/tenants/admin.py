from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest, HttpResponseRedirect

from apps.core.exceptions import ApplicationError

from . import services
from .models import ApiKey, Membership, Role, Scope, Tenant, TenantGroup


def admin_grantor(request: HttpRequest, tenant) -> dict:
    """What a staff user may hand out in a tenant: their role and its scopes (nothing to check for
    a superuser). Keyword arguments for the services' granting checks."""
    from .resolution import ROLE_SCOPES

    if request.user.is_superuser:
        return {"granting_scopes": None, "granting_role": None}
    membership = Membership.objects.filter(user=request.user, tenant=tenant, is_active=True).first()
    if membership is None:
        return {"granting_scopes": frozenset(), "granting_role": None}
    return {"granting_scopes": ROLE_SCOPES[membership.role], "granting_role": membership.role}


class TenantListFilter(admin.SimpleListFilter):
    """Lists only the tenants the staff user administers (Django's default lists every tenant)."""

    title = "tenant"
    parameter_name = "tenant"

    def lookups(self, request, model_admin):
        tenant_ids = admin_tenant_ids(request)
        tenants = Tenant.objects.all() if tenant_ids is None else Tenant.objects.filter(pk__in=tenant_ids)
        return [(str(t.pk), t.slug) for t in tenants]

    def queryset(self, request, queryset):
        lookup = f"{getattr(self, 'tenant_lookup', 'tenant')}_id"
        return queryset.filter(**{lookup: self.value()}) if self.value() else queryset


def admin_tenant_ids(request: HttpRequest) -> list[int] | None:
    """Tenants a staff user administers (owner or admin role); None means all (superuser)."""
    if request.user.is_superuser:
        return None
    return list(
        Membership.objects.filter(user=request.user, is_active=True, role__in=[Role.OWNER, Role.ADMIN]).values_list(
            "tenant_id", flat=True
        )
    )


class TenantScopedAdmin(admin.ModelAdmin):
    """Staff see and pick only the tenants they administer; a superuser sees all. A refusal from a
    service (ApplicationError) shows as an error message on the page, not a server error."""

    tenant_lookup = "tenant"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        tenant_ids = admin_tenant_ids(request)
        if tenant_ids is None:
            return queryset
        return queryset.filter(**{f"{self.tenant_lookup}__in": tenant_ids})

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        tenant_ids = admin_tenant_ids(request)
        if db_field.name == "tenant" and tenant_ids is not None:
            kwargs["queryset"] = Tenant.objects.filter(pk__in=tenant_ids)
        if db_field.name == "user" and tenant_ids is not None:
            # Staff pick among their tenants' people; adding someone from elsewhere is a superuser's job.
            kwargs["queryset"] = get_user_model().objects.filter(memberships__tenant_id__in=tenant_ids).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class MembershipInline(admin.TabularInline):
    """Read-only here; memberships are added and changed on their own page, through the services."""

    model = Membership
    extra = 0
    fields = ["username", "user", "role", "is_active"]
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


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["username", "tenant", "role", "is_active", "user"]
    list_filter = [TenantListFilter, "role", "is_active"]
    search_fields = ["username", "user__username", "user__email"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant", "user", "username"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        grantor = admin_grantor(request, obj.tenant)
        if change:
            stored = Membership.objects.get(pk=obj.pk)
            services.member_set_role(membership=stored, role=obj.role, **grantor)
            services.member_set_active(membership=stored, active=obj.is_active, **grantor)
        else:
            created = services.membership_add(tenant=obj.tenant, user=obj.user, username=obj.username, role=obj.role, **grantor)
            obj.pk = created.pk


@admin.register(TenantGroup)
class TenantGroupAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "is_everyone", "created_at"]
    list_filter = [TenantListFilter]
    search_fields = ["name"]
    readonly_fields = ["auth_group"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ["tenant", "auth_group"] + (["name"] if obj.is_everyone else [])
        return ["auth_group"]

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_everyone)

    def delete_model(self, request, obj):
        services.group_delete(group=obj)

    def delete_queryset(self, request, queryset):
        for group in queryset:
            if group.is_everyone:
                self.message_user(request, f"Kept “{group}”: the everyone group cannot be deleted.", messages.WARNING)
            else:
                services.group_delete(group=group)

    def save_model(self, request, obj, form, change):
        if change:
            services.group_rename(group=obj, name=obj.name)
        else:
            created = services.group_create(tenant=obj.tenant, name=obj.name)
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

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["tenant", "name", "prefix", "scopes", "created_by", "created_at", "expires_at", "revoked_at", "last_used_at"]

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
