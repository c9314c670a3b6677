"""Who may do what to an object that carries grants, answered in one place.

Tenant roles give defaults (owner/admin manage everything, editors change everything, readers and
compliance see only what is granted; an API key with documents:write manages everything); below
that, django-guardian's per-object permissions.

Access knows no model of the layers above it. A model says how access should read it, with two
class attributes (apps/documents/models.py has the two that use them):

    grants_inherited_from   the field naming the object whose grants apply while this one has no
                            grants of its own (`has_own_grants` false): a document reads its
                            collection's.
    level_to_see            {state: level}, keyed by the object's `state`: the level needed to see
                            it at all in that state (a draft needs `change`, a deleted one `manage`).

Both the single-object checks (`holds`, `check_level`) and the querysets (`granted`, `visible`)
are built from those two declarations, so they cannot disagree; tests/access/test_principals.py
compares them with guardian's own checker over every user × document of a world of grants.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db.models import CharField, Model, Q, QuerySet
from django.db.models.functions import Cast
from django.db.models.lookups import In
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from apps.core.exceptions import PermissionDenied
from apps.tenants.models import Role, Scope
from apps.tenants.resolution import TenantContext

from .levels import Level, codename, model_name_of

_M = TypeVar("_M", bound=Model)

_ROLE_LEVEL: dict[str, Level] = {Role.OWNER: Level.MANAGE, Role.ADMIN: Level.MANAGE, Role.EDITOR: Level.CHANGE}
_EVERYTHING = Q(pk__isnull=False)  # never Q(): an empty Q vanishes when OR-ed with another


def role_level(context: TenantContext) -> int:
    """The level a caller holds on every object of the tenant, whatever the grants say."""
    if context.membership is not None:
        return _ROLE_LEVEL.get(context.membership.role, 0)
    # A tenant app's key with documents:write runs the whole document lifecycle of its tenant.
    return Level.MANAGE if context.allows(Scope.DOCUMENTS_WRITE) else 0


def grants_holder(obj: Any) -> Model:
    """Where an object's grants live: itself, or (while it has none of its own) the object it
    inherits them from."""
    parent = getattr(type(obj), "grants_inherited_from", None)
    holder: Model = obj if parent is None or obj.has_own_grants else getattr(obj, parent)
    return holder


def required_level(obj: Any, level: Level) -> Level:
    """What `level` on an object really takes, given its state."""
    floors = getattr(type(obj), "level_to_see", None)
    return max(level, floors[obj.state]) if floors else level


def _perm(model: type[Model], level: Level) -> str:
    return f"{model._meta.app_label}.{codename(level, model_name_of(model))}"


def granted_level(context: TenantContext, obj: Any) -> int:
    """The highest level the caller holds on the object, by role or by grant (0 for none)."""
    if obj.tenant_id != context.tenant.pk:
        return 0
    best = role_level(context)
    holder = grants_holder(obj)
    for level in sorted(Level, reverse=True):
        if level <= best:
            break
        if context.user.has_perm(_perm(type(holder), level), holder):
            return level
    return best


def holds(context: TenantContext, obj: Any, level: Level) -> bool:
    return granted_level(context, obj) >= required_level(obj, level)


def check_level(context: TenantContext, obj: Any, level: Level) -> None:
    if not holds(context, obj, level):
        raise PermissionDenied(
            f"You need '{level.label}' access to this {obj._meta.verbose_name} for that.",
            code="access_denied",
            extra={"required_level": level.label},
        )


def check_role_level(context: TenantContext, level: Level, action: str) -> None:
    """For actions on the tenant as a whole (creating a collection), where no object grants apply."""
    if role_level(context) < level:
        raise PermissionDenied(
            f"{action} needs the owner, admin or editor role (or an API key with documents:write).",
            code="access_denied",
            extra={"required_level": level.label},
        )


def _granted_q(context: TenantContext, model: type[Model], level: Level) -> Q:
    """Rows of `model` in the caller's tenant on which the caller holds `level`, as a filter."""
    if role_level(context) >= level:
        return _EVERYTHING
    parent = getattr(model, "grants_inherited_from", None)
    if parent is None:
        return _object_grants(context, model, level)
    parent_model = model._meta.get_field(parent).related_model
    if not isinstance(parent_model, type):
        raise ImproperlyConfigured(
            f"{model.__name__}.grants_inherited_from names {parent!r}, which is not a relation to another model."
        )
    inherited = parent_model._default_manager.filter(tenant=context.tenant).filter(
        _granted_q(context, parent_model, level)
    )
    return Q(has_own_grants=True) & _object_grants(context, model, level) | Q(
        has_own_grants=False, **{f"{parent}__in": inherited.values("pk")}
    )


def _object_grants(context: TenantContext, model: type[Model], level: Level) -> Q:
    """Rows of `model` on which the caller's user, or a group the user is in, holds `level`'s
    object permission: the rule of guardian's `get_objects_for_user` without global permissions
    (a Django superuser holds every row), read straight from the tables guardian writes grants to.
    guardian's own queryset for it, built on every call, was most of a reader's re-check: 7 ms of
    Python and 2.7 KB of nested SQL (docs/benchmarks/throughput-profile.md). The two look-ups do
    not depend on the row (`id::text IN (SELECT object_pk …)`), so PostgreSQL runs each once and
    hashes it: an EXISTS per row was measured 4x slower than guardian over a tenant's 1,398
    documents. tests/access/test_principals.py and test_granted_attacks.py hold this to guardian's
    answers."""
    user = context.user
    if user.is_superuser:
        return _EVERYTHING
    permission = Q(
        permission__content_type=ContentType.objects.get_for_model(model),
        permission__codename=codename(level, model_name_of(model)),
    )
    # guardian keeps the object's key as text (generic rows for any model's key), as its own
    # queries compare it; apps/access/grants.py asks guardian for the tables the same way.
    users, groups = get_user_obj_perms_model(), get_group_obj_perms_model()
    row = Cast("pk", CharField())
    by_user = users._default_manager.filter(permission, user=user).values("object_pk")
    by_group = groups._default_manager.filter(permission, group__user=user).values("object_pk")
    return Q(In(row, by_user)) | Q(In(row, by_group))


def granted(context: TenantContext, queryset: QuerySet[_M], level: Level) -> QuerySet[_M]:
    """The rows of `queryset` on which the caller holds `level` by role or grant, state aside:
    the row's own grants, or its parent's while it has none of its own."""
    return queryset.filter(tenant=context.tenant).filter(_granted_q(context, queryset.model, level))


def visible(context: TenantContext, queryset: QuerySet[_M]) -> QuerySet[_M]:
    """The rows of `queryset` the caller may see, state included: the same rule as
    `holds(context, obj, Level.VIEW)`, one branch per level the model's states need."""
    model = queryset.model
    floors = getattr(model, "level_to_see", None)
    if not floors:
        return granted(context, queryset, Level.VIEW)
    condition = Q(pk__in=[])
    for level in sorted(set(floors.values())):
        states = [state for state, floor in floors.items() if floor == level]
        condition |= Q(state__in=states) & _granted_q(context, model, level)
    return queryset.filter(tenant=context.tenant).filter(condition)
