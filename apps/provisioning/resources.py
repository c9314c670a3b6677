"""SCIM Users and Groups read from, and written through, the tenant's services.

A directory's key acts with the authority of a tenant **admin** over people and groups
(`DIRECTORY_AUTHORITY`): it creates members (as readers: roles are the tenant's to give, never the
directory's), renames, deactivates and regroups the members an admin could, and is refused (403)
on an owner, an admin or a compliance member, so a leaked provisioning key cannot lock the tenant's
own administrators out or touch the compliance team. Every write records a DirectoryEvent with
the key as its actor (tenants.services).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.tenants import selectors, services
from apps.tenants.actors import Actor
from apps.tenants.models import Membership, Role, Tenant, TenantGroup
from apps.tenants.resolution import ROLE_SCOPES

from . import scim
from .scim import ScimError

DIRECTORY_AUTHORITY: dict[str, Any] = {"granting_scopes": ROLE_SCOPES[Role.ADMIN], "granting_role": Role.ADMIN}


# --------------------------------------------------------------------------- reads
def users(*, tenant: Tenant):
    return selectors.membership_list(tenant=tenant).select_related("user").order_by("pk")


def groups(*, tenant: Tenant):
    return selectors.group_list(tenant=tenant).filter(is_everyone=False).order_by("pk")


def user_get(*, tenant: Tenant, user_id: str, for_update: bool = False) -> Membership:
    """`for_update` (inside a transaction): locked until it ends, so two writes of one User from a
    directory's parallel requests apply one after the other, each to what the other left."""
    queryset = users(tenant=tenant).select_for_update() if for_update else users(tenant=tenant)
    membership = queryset.filter(pk=_pk(user_id)).first() if _pk(user_id) else None
    if membership is None:
        raise ScimError(f"No User {user_id!r} in this tenant.", status=404, code="user_not_found")
    return membership


def group_get(*, tenant: Tenant, group_id: str, for_update: bool = False) -> TenantGroup:
    """`for_update` as for user_get: a membership patch reads the members it changes under the lock."""
    queryset = groups(tenant=tenant).select_for_update() if for_update else groups(tenant=tenant)
    group = queryset.filter(pk=_pk(group_id)).first() if _pk(group_id) else None
    if group is None:
        raise ScimError(f"No Group {group_id!r} in this tenant.", status=404, code="group_not_found")
    return group


_pk = scim.as_id


def user_resource(membership: Membership, location: str) -> dict[str, Any]:
    user = membership.user
    resource: dict[str, Any] = {
        "schemas": [scim.USER_SCHEMA],
        "id": str(membership.pk),
        "userName": membership.username,
        "name": {"givenName": user.first_name, "familyName": user.last_name},
        "displayName": " ".join(part for part in (user.first_name, user.last_name) if part) or membership.username,
        "active": membership.is_active,
        "emails": [{"value": user.email, "type": "work", "primary": True}] if user.email else [],
        "groups": [
            {"value": str(group.pk), "display": group.name}
            for group in groups(tenant=membership.tenant).filter(auth_group__user=user)
        ],
        "meta": {"resourceType": "User", "created": membership.created_at.isoformat(), "location": location},
    }
    if membership.external_id:
        resource["externalId"] = membership.external_id
    return resource


def group_resource(group: TenantGroup, location: str, *, with_members: bool = True) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "schemas": [scim.GROUP_SCHEMA],
        "id": str(group.pk),
        "displayName": group.name,
        "meta": {"resourceType": "Group", "created": group.created_at.isoformat(), "location": location},
    }
    if with_members:
        resource["members"] = [
            {"value": str(pk), "display": username}
            for pk, username in selectors.group_members(group=group).order_by("pk").values_list("pk", "username")
        ]
    if group.external_id:
        resource["externalId"] = group.external_id
    return resource


# --------------------------------------------------------------------------- Users
def _user_fields(body: Any) -> dict[str, Any]:
    """The fields of a full User resource (POST, PUT) the platform keeps."""
    if not isinstance(body, dict):
        raise ScimError("A User is a JSON object.", scim_type="invalidSyntax")
    username = body.get("userName")
    if not isinstance(username, str) or not username:
        raise ScimError("A User needs a 'userName'.", scim_type="invalidValue")
    _check_username_length(username)
    name = body.get("name") or {}
    if not isinstance(name, dict):
        raise ScimError("'name' is an object (givenName, familyName).", scim_type="invalidValue")
    fields: dict[str, Any] = {
        "username": username,
        "external_id": scim.as_string(body.get("externalId", ""), "externalId"),
        "first_name": scim.as_string(name.get("givenName", ""), "name.givenName"),
        "last_name": scim.as_string(name.get("familyName", ""), "name.familyName"),
        "email": scim.primary_email(body.get("emails")) or "",
    }
    if "active" in body:
        fields["active"] = scim.as_bool(body["active"], "active")
    return fields


@transaction.atomic
def user_create(*, tenant: Tenant, body: Any, actor: Actor) -> Membership:
    fields = _user_fields(body)
    active = fields.pop("active", True)
    existing = selectors.membership_list(tenant=tenant).filter(username__iexact=fields["username"]).first()
    if existing is not None:  # RFC 7644 §3.3: 409 uniqueness; userName is case-insensitive
        raise ScimError(f"A User named {existing.username!r} exists already.", status=409, scim_type="uniqueness")
    membership = services.member_create(tenant=tenant, role=Role.READER, actor=actor, **fields, **DIRECTORY_AUTHORITY)
    if not active:
        services.member_set_active(membership=membership, active=False, actor=actor, **DIRECTORY_AUTHORITY)
    return membership


@transaction.atomic
def user_replace(*, membership: Membership, body: Any, actor: Actor) -> Membership:
    fields = _user_fields(body)
    active = fields.pop("active", None)
    _refuse_taken_username(membership, fields["username"])
    services.member_update(membership=membership, actor=actor, **fields, **DIRECTORY_AUTHORITY)
    if active is not None:
        services.member_set_active(membership=membership, active=active, actor=actor, **DIRECTORY_AUTHORITY)
    return membership


def _check_username_length(username: str) -> None:
    # Before any look-up by it (the services validate the rest): SQLite's LIKE refuses a long pattern.
    if len(username) > 150:
        raise ScimError("A userName has at most 150 characters.", scim_type="invalidValue")


def _refuse_taken_username(membership: Membership, username: str) -> None:
    _check_username_length(username)
    other = (
        selectors.membership_list(tenant=membership.tenant)
        .filter(username__iexact=username)
        .exclude(pk=membership.pk)
        .first()
    )
    if other is not None:
        raise ScimError(f"A User named {other.username!r} exists already.", status=409, scim_type="uniqueness")


# PATCH paths of a User the platform keeps, by lower-cased path: the member_update field.
_USER_PATHS = {
    ("username", None): "username",
    ("externalid", None): "external_id",
    ("name", "givenname"): "first_name",
    ("name", "familyname"): "last_name",
}


@transaction.atomic
def user_patch(*, membership: Membership, body: Any, actor: Actor) -> Membership:
    """RFC 7644 §3.5.2 on one User: Okta's `{"op": "replace", "value": {"active": false}}`, Entra
    ID's `{"op": "Replace", "path": "active", "value": "False"}` and its attribute-by-attribute
    replaces (`name.givenName`, `emails[type eq "work"].value`, …)."""
    changes: dict[str, Any] = {}
    active: bool | None = None
    for operation in scim.patch_operations(body):
        if operation.path is None:  # the value is a partial User: each of its attributes is a path
            if not isinstance(operation.value, dict):
                raise ScimError("Without a 'path', the value is an object of attributes.", scim_type="invalidValue")
            items = list(_flatten_user_value(operation.value))
        elif operation.path.lower() == "name" and isinstance(operation.value, dict):
            items = list(_flatten_user_value({"name": operation.value}))
        else:
            items = [(operation.path, operation.value)]
        for path_text, value in items:
            path = scim.parse_path(path_text)
            if path.attribute == "active":
                active = True if operation.op == "remove" else scim.as_bool(value, "active")
            elif path.attribute == "emails":
                if path.value_filter is not None:
                    if scim.value_filter_eq(path, "type") != "work":
                        continue  # one email is kept, the work one (Entra ID's); a home or other one is not
                    email = "" if operation.op == "remove" else scim.as_string(value, "emails.value")
                else:
                    email = "" if operation.op == "remove" else (scim.primary_email(value) or "")
                changes["email"] = email or ""
            elif (path.attribute, path.sub) in _USER_PATHS:
                field = _USER_PATHS[(path.attribute, path.sub)]
                if operation.op == "remove" and field == "username":
                    raise ScimError("'userName' is required: it cannot be removed.", scim_type="mutability")
                changes[field] = "" if operation.op == "remove" else scim.as_string(value, path_text)
            elif path.attribute in ("id", "meta", "groups"):
                raise ScimError(f"'{path_text}' is read-only.", scim_type="mutability")
            # Anything else (displayName, title, the enterprise extension, …) is not kept: see scim.py.
    if "username" in changes:
        _refuse_taken_username(membership, changes["username"])
    if changes:
        services.member_update(membership=membership, actor=actor, **changes, **DIRECTORY_AUTHORITY)
    if active is not None:
        services.member_set_active(membership=membership, active=active, actor=actor, **DIRECTORY_AUTHORITY)
    return membership


def _flatten_user_value(value: dict[str, Any]):
    for key, item in value.items():
        if key == "name" and isinstance(item, dict):
            for sub, sub_value in item.items():
                yield f"name.{sub}", sub_value
        else:
            yield key, item


def user_deactivate(*, membership: Membership, actor: Actor) -> None:
    """DELETE /Users/{id}: the person is deactivated, not erased: what they did stays attributable in
    the audit trail, and a directory that re-enables them gets the same member back."""
    services.member_set_active(membership=membership, active=False, actor=actor, **DIRECTORY_AUTHORITY)


# --------------------------------------------------------------------------- Groups
def _group_fields(body: Any) -> tuple[str, str, list[str] | None]:
    if not isinstance(body, dict):
        raise ScimError("A Group is a JSON object.", scim_type="invalidSyntax")
    name = body.get("displayName")
    if not isinstance(name, str) or not name.strip():
        raise ScimError("A Group needs a 'displayName'.", scim_type="invalidValue")
    members = scim.member_ids(body["members"]) if body.get("members") is not None else None
    return name, scim.as_string(body.get("externalId", ""), "externalId"), members


def _memberships(tenant: Tenant, ids: list[str]) -> list[Membership]:
    """The members named by User ids, all of this tenant; an id of no member here is a 400."""
    pks = {_pk(value) for value in ids}
    if None in pks:
        raise ScimError("A member's 'value' is a User id.", scim_type="invalidValue")
    found = list(users(tenant=tenant).filter(pk__in=pks))
    missing = pks - {membership.pk for membership in found}
    if missing:
        raise ScimError(f"No User {', '.join(sorted(map(str, missing)))} in this tenant.", scim_type="invalidValue")
    return found


def _refuse_everyone_name(name: str) -> None:
    if name.strip().lower() == TenantGroup.EVERYONE:
        raise ScimError(
            "'everyone' is the platform's own group of all members; a directory group needs another name.",
            status=409,
            scim_type="uniqueness",
        )


@transaction.atomic
def group_create(*, tenant: Tenant, body: Any, actor: Actor) -> TenantGroup:
    name, external_id, member_ids = _group_fields(body)
    _refuse_everyone_name(name)
    if selectors.group_list(tenant=tenant).filter(name=name.strip()).exists():
        raise ScimError(f"A Group named {name.strip()!r} exists already.", status=409, scim_type="uniqueness")
    group = services.group_create(tenant=tenant, name=name, external_id=external_id, actor=actor)
    for membership in _memberships(tenant, member_ids or []):
        services.group_member_add(group=group, membership=membership, actor=actor)
    return group


@transaction.atomic
def group_replace(*, group: TenantGroup, body: Any, actor: Actor) -> TenantGroup:
    name, external_id, member_ids = _group_fields(body)
    _rename(group, name, actor)
    services.group_update(group=group, external_id=external_id, actor=actor)
    _set_members(group, _memberships(group.tenant, member_ids or []), actor)
    return group


def _rename(group: TenantGroup, name: str, actor: Actor) -> None:
    _refuse_everyone_name(name)
    if selectors.group_list(tenant=group.tenant).filter(name=name.strip()).exclude(pk=group.pk).exists():
        raise ScimError(f"A Group named {name.strip()!r} exists already.", status=409, scim_type="uniqueness")
    services.group_update(group=group, name=name, actor=actor)


def _set_members(group: TenantGroup, wanted: list[Membership], actor: Actor) -> None:
    current = {membership.pk: membership for membership in selectors.group_members(group=group)}
    wanted_by_pk = {membership.pk: membership for membership in wanted}
    for pk, membership in current.items():
        if pk not in wanted_by_pk:
            services.group_member_remove(group=group, membership=membership, actor=actor)
    for pk, membership in wanted_by_pk.items():
        if pk not in current:
            services.group_member_add(group=group, membership=membership, actor=actor)


@transaction.atomic
def group_patch(*, group: TenantGroup, body: Any, actor: Actor) -> TenantGroup:
    """The membership patches the two big directories send (their documented sequences are replayed
    in tests/provisioning): Okta adds with `path: members` and removes with
    `path: members[value eq "<id>"]`; Entra ID adds and removes with `path: members` and a value
    list; either may replace `displayName`, or send a value object without a path."""
    for operation in scim.patch_operations(body):
        if operation.path is None:
            if not isinstance(operation.value, dict):
                raise ScimError("Without a 'path', the value is an object of attributes.", scim_type="invalidValue")
            if "displayName" in operation.value:
                _rename(group, scim.as_string(operation.value["displayName"], "displayName"), actor)
            if "externalId" in operation.value:
                external_id = scim.as_string(operation.value["externalId"], "externalId")
                services.group_update(group=group, external_id=external_id, actor=actor)
            if "members" in operation.value:
                _patch_members(group, operation.op, None, operation.value["members"], actor)
            continue
        path = scim.parse_path(operation.path)
        if path.attribute == "members":
            _patch_members(group, operation.op, path, operation.value, actor)
        elif path.attribute == "displayname":
            if operation.op == "remove":
                raise ScimError("'displayName' is required: it cannot be removed.", scim_type="mutability")
            _rename(group, scim.as_string(operation.value, "displayName"), actor)
        elif path.attribute == "externalid":
            external_id = "" if operation.op == "remove" else scim.as_string(operation.value, "externalId")
            services.group_update(group=group, external_id=external_id, actor=actor)
        else:
            raise ScimError(f"A Group has no attribute '{operation.path}' to change.", scim_type="invalidPath")
    return group


def _patch_members(group: TenantGroup, op: str, path: scim.Path | None, value: Any, actor: Actor) -> None:
    filtered = scim.value_filter_eq(path, "value") if path is not None else None
    if op == "remove":
        if filtered is not None:
            ids = [filtered]
        elif value is None:  # remove every member (RFC 7644 §3.5.2.2)
            _set_members(group, [], actor)
            return
        else:
            ids = scim.member_ids(value)
        # Removing someone who is not (or no longer) a member is not an error: the directory's
        # view and ours agree afterwards either way.
        pks = {pk for pk in map(_pk, ids) if pk is not None}
        for membership in selectors.group_members(group=group).filter(pk__in=pks):
            services.group_member_remove(group=group, membership=membership, actor=actor)
        return
    if filtered is not None:
        raise ScimError("A filter in the path is for removing one member.", scim_type="invalidPath")
    members = _memberships(group.tenant, scim.member_ids(value))
    if op == "replace":
        _set_members(group, members, actor)
    else:
        for membership in members:
            services.group_member_add(group=group, membership=membership, actor=actor)


def group_delete(*, group: TenantGroup, actor: Actor) -> None:
    services.group_delete(group=group, actor=actor)
