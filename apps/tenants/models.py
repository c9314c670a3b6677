"""Tenants, the people in them, their groups, and the API keys of tenant apps."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from .scoping import TenantOwned, TenantScopedQuerySet

# A tenant-local user name: what the tenant app calls its user (an id, an email, a login).
tenant_username_validator = RegexValidator(
    # \Z, not $: `$` also matches before a final newline, and "bob\n" would stand beside "bob".
    r"^[\w.@+-]{1,150}\Z",
    "Use up to 150 letters, digits and @ . + - _ characters.",
)


class Tenant(models.Model):
    slug = models.SlugField(max_length=63, unique=True, help_text="Stable identifier, used in the X-Tenant header.")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True, help_text="An inactive tenant is refused on every request.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Administrator"
    EDITOR = "editor", "Editor"
    READER = "reader", "Reader"
    COMPLIANCE = "compliance", "Compliance"


class MembershipQuerySet(TenantScopedQuerySet):
    def of_user(self, user) -> MembershipQuerySet:
        """One person's memberships in every tenant: how the tenants of a signed-in user are found."""
        return self.filter(user=user)._crossing("one user's memberships")


class Membership(TenantOwned):
    """A user's place in one tenant. A user may hold memberships in several tenants."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    username = models.CharField(
        max_length=150,
        validators=[tenant_username_validator],
        help_text="The name the tenant knows this user by; unique within the tenant only.",
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.READER)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # The identity provider's own id for this person (SCIM externalId), when a directory provisions them.
    external_id = models.CharField(max_length=255, blank=True, default="")

    objects = MembershipQuerySet.as_manager()  # type: ignore[misc]  # narrows TenantOwned's manager

    class Meta:
        ordering = ["tenant", "username"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_one_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "username"], name="membership_username_unique_in_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.tenant.slug} ({self.role})"


class TenantGroup(TenantOwned):
    """A group of one tenant. It wraps a Django auth group (what django-guardian grants to), whose
    own name is internal and globally unique, so tenants may reuse group names freely."""

    EVERYONE = "everyone"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=150)
    auth_group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="tenant_group")
    # Every tenant has one 'everyone' group holding all its members: a grant to it is a
    # tenant-wide grant. It is kept by the services; it cannot be renamed, deleted or edited.
    is_everyone = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    external_id = models.CharField(max_length=255, blank=True, default="")  # SCIM externalId, as for members

    class Meta:
        ordering = ["tenant", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="tenant_group_name_unique_in_tenant"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_everyone=True), name="one_everyone_group_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.tenant.slug}"


class Scope(models.TextChoices):
    """What an API key may do. Members' roles map onto the same scopes (permissions.ROLE_SCOPES)."""

    SEARCH = "search", "Search"
    ASK = "ask", "Ask questions"
    DOCUMENTS_READ = "documents:read", "Read documents"
    DOCUMENTS_WRITE = "documents:write", "Upload and manage documents"
    # Legal hold and retention dates decide whether content may be destroyed: the compliance
    # team's call (owner and compliance roles), never implied by documents:write or a grant.
    DOCUMENTS_RETENTION = "documents:retention", "Set and lift legal holds and retention dates"
    USERS_MANAGE = "users:manage", "Provision users"
    GROUPS_MANAGE = "groups:manage", "Manage groups"
    KEYS_MANAGE = "keys:manage", "Manage API keys"
    ACT_AS_USER = "act_as_user", "Act for a named user of the tenant"
    AUDIT_READ = "audit:read", "Read the answer audit trail"
    # An identity provider's provisioning key (SCIM 2.0, apps/provisioning): the users and groups
    # a directory pushes, with a tenant admin's authority over them, less roles (docs/identity.md).
    SCIM = "scim", "Provision users and groups from a directory (SCIM 2.0)"
    EVALUATION = "evaluation", "Manage golden sets and run retrieval evaluations"


class ApiKeyQuerySet(TenantScopedQuerySet):
    def usable(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
        )


class ApiKey(TenantOwned):
    """A tenant app's credential. The raw key is shown once at creation and never stored: only
    its SHA-256 digest is, with a short public prefix to find the row."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    # The key's own principal: grants made to this user are what the key reads by itself.
    service_user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_key", editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()  # type: ignore[misc]  # narrows TenantOwned's manager

    class Meta:
        ordering = ["tenant", "-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class DirectoryEvent(TenantOwned):
    """One change to a tenant's people or groups, whoever made it (the API, SCIM, the admin site, the
    operator's commands): group membership decides what a person may read, so who changed it, and
    when, is part of the audit story. Written by the services (services._record); the application's
    database role may only add rows (docs/identity.md)."""

    class Kind(models.TextChoices):
        MEMBER_CREATED = "member_created"
        MEMBER_UPDATED = "member_updated"  # name, email or external id
        MEMBER_DEACTIVATED = "member_deactivated"
        MEMBER_REACTIVATED = "member_reactivated"
        ROLE_CHANGED = "role_changed"
        GROUP_CREATED = "group_created"
        GROUP_UPDATED = "group_updated"  # renamed, or its external id
        GROUP_DELETED = "group_deleted"
        GROUP_MEMBER_ADDED = "group_member_added"
        GROUP_MEMBER_REMOVED = "group_member_removed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="directory_events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # Names, not keys: the history outlives a deleted group, and reads the same after a rename.
    member = models.CharField(max_length=150, blank=True, help_text="The member's tenant-local username.")
    group = models.CharField(max_length=150, blank=True, help_text="The group's name at the time.")
    details = models.JSONField(default=dict, blank=True, help_text="What changed: {field: [before, after]}.")
    # Who, as text like the audit trail's (username, api_key_prefix), not keys: the table is
    # append-only for the application's database role (apps/audit/database_roles.py), so nothing may
    # have to rewrite a row of it, as a SET_NULL would when a user is deleted.
    actor = models.CharField(
        max_length=150,
        blank=True,
        help_text="The member's tenant-local username, or the staff user's; empty for a key.",
    )
    actor_api_key_prefix = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["tenant", "-at", "-id"]
        indexes = [models.Index(fields=["tenant", "-at"], name="directory_event_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.member or self.group} ({self.at:%Y-%m-%d %H:%M})"
