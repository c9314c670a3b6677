"""Grants: who may view, change or manage an object (django-guardian underneath).

Generic over the objects that carry grants: access knows levels and principals, not what a
collection or a document is. The documents app owns the services that change its objects' grants
(documents/services.py: `grants_replace`), which call `grants_set` here and record the history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from guardian.shortcuts import assign_perm, get_groups_with_perms, get_users_with_perms
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from .levels import Level, codename, codenames_up_to, model_name_of

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class Grant:
    principal: User | Group
    level: Level

    def describe(self) -> dict[str, int | str]:
        kind = "group" if isinstance(self.principal, Group) else "user"
        return {kind: self.principal.pk, "level": self.level.label}


def grants_clear(obj: Model) -> None:
    content_type = ContentType.objects.get_for_model(obj)
    for model in (get_user_obj_perms_model(), get_group_obj_perms_model()):
        model._default_manager.filter(content_type=content_type, object_pk=str(obj.pk)).delete()


def grants_list(obj: Model) -> list[Grant]:
    """The grants made on this object itself (highest level per principal)."""
    model_name = model_name_of(obj)

    def highest(perms: list[str]) -> Level | None:
        held = [level for level in Level if codename(level, model_name) in perms]
        return max(held) if held else None

    # With attach_perms, guardian returns {principal: [codename, ...]} (its annotations say otherwise).
    users = cast(
        "dict[User, list[str]]",
        get_users_with_perms(obj, attach_perms=True, with_group_users=False, with_superusers=False),
    )
    groups = cast("dict[Group, list[str]]", get_groups_with_perms(obj, attach_perms=True))
    grants = []
    for user, perms in users.items():
        if (level := highest(perms)) is not None:
            grants.append(Grant(user, level))
    for group, perms in groups.items():
        if (level := highest(perms)) is not None:
            grants.append(Grant(group, level))
    return grants


def grants_set(obj: Model, grants: list[Grant]) -> None:
    """Make `grants` the complete set on `obj` (each level brings the ones below it)."""
    grants_clear(obj)
    model_name, app_label = model_name_of(obj), obj._meta.app_label
    for grant in grants:
        for perm in codenames_up_to(grant.level, model_name):
            assign_perm(f"{app_label}.{perm}", grant.principal, obj)
