"""The tenancy API: who am I, the tenant's users, groups and API keys. Thin views: input
serializers validate, services write, selectors read, output serializers shape."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.pagination import paginated_response, paginated_schema
from apps.core.serializers import StrictInputSerializer, StringField

from . import selectors, services
from .models import DirectoryEvent, Role, Scope
from .permissions import tenant_context


class MemberOutputSerializer(serializers.Serializer):
    username = StringField()
    role = StringField()
    is_active = serializers.BooleanField()
    email = StringField(source="user.email", help_text="An email address, or empty when none is known.")
    first_name = StringField(source="user.first_name")
    last_name = StringField(source="user.last_name")
    created_at = serializers.DateTimeField()
    deactivated_at = serializers.DateTimeField(allow_null=True)


class GroupOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = StringField()
    is_everyone = serializers.BooleanField(help_text="The group of all members: a grant to it is tenant-wide.")
    created_at = serializers.DateTimeField()
    members = serializers.SerializerMethodField()

    def get_members(self, group) -> list[str]:
        return list(selectors.group_members(group=group).values_list("username", flat=True))


class ApiKeyOutputSerializer(serializers.Serializer):
    prefix = StringField()
    name = StringField()
    scopes = serializers.ListField(child=StringField())
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)


# --------------------------------------------------------------------------- who am I
class TenantContextView(APIView):
    class TenantContextSerializer(serializers.Serializer):
        tenant = serializers.DictField()
        acting_as = serializers.DictField()
        scopes = serializers.ListField(child=StringField())

    @extend_schema(responses=TenantContextSerializer, tags=["tenancy"], summary="The tenant and scopes of this request")
    def get(self, request: Request) -> Response:
        context = tenant_context(request)
        if context.api_key is not None:
            acting_as = {"kind": "api_key", "name": context.api_key.name, "prefix": context.api_key.prefix}
        else:
            assert context.membership is not None  # a request's caller is an API key or a member
            acting_as = {"kind": "user", "username": context.membership.username, "role": context.membership.role}
        return Response(
            {
                "tenant": {"slug": context.tenant.slug, "name": context.tenant.name},
                "acting_as": acting_as,
                "scopes": sorted(context.scopes),
            }
        )


# --------------------------------------------------------------------------- users
class UserListCreateView(APIView):
    required_scope = Scope.USERS_MANAGE

    class UserCreateSerializer(serializers.Serializer):
        username = StringField(max_length=150, help_text="Unique within the tenant.")
        role = serializers.ChoiceField(choices=Role.choices, default=Role.READER)
        email = serializers.EmailField(required=False, default="")
        first_name = StringField(required=False, default="", max_length=150)
        last_name = StringField(required=False, default="", max_length=150)

    @extend_schema(
        operation_id="users_list",
        responses=paginated_schema(MemberOutputSerializer),
        tags=["users"],
        summary="List the tenant's users",
    )
    def get(self, request: Request) -> Response:
        memberships = selectors.membership_list(tenant=tenant_context(request).tenant)
        return paginated_response(
            request=request, view=self, queryset=memberships, serializer_class=MemberOutputSerializer
        )

    @extend_schema(
        request=UserCreateSerializer, responses={201: MemberOutputSerializer}, tags=["users"], summary="Create a user"
    )
    def post(self, request: Request) -> Response:
        data = self.UserCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        membership = services.member_create(
            tenant=context.tenant,
            granting_scopes=context.scopes,
            granting_role=context.role,
            actor=context.actor,
            **data.validated_data,
        )
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class UserDetailView(APIView):
    required_scope = Scope.USERS_MANAGE

    class UserRoleSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices)

    @extend_schema(responses=MemberOutputSerializer, tags=["users"], summary="One user")
    def get(self, request: Request, username: str) -> Response:
        membership = selectors.membership_get(tenant=tenant_context(request).tenant, username=username)
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(
        request=UserRoleSerializer, responses=MemberOutputSerializer, tags=["users"], summary="Change a user's role"
    )
    def patch(self, request: Request, username: str) -> Response:
        data = self.UserRoleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        membership = selectors.membership_get(tenant=context.tenant, username=username)
        membership = services.member_set_role(
            membership=membership,
            role=data.validated_data["role"],
            granting_scopes=context.scopes,
            granting_role=context.role,
            actor=context.actor,
        )
        return Response(MemberOutputSerializer(membership).data)


class _UserActivationView(APIView):
    required_scope = Scope.USERS_MANAGE
    activate: bool

    def post(self, request: Request, username: str) -> Response:
        context = tenant_context(request)
        membership = selectors.membership_get(tenant=context.tenant, username=username)
        membership = services.member_set_active(
            membership=membership,
            active=self.activate,
            granting_scopes=context.scopes,
            granting_role=context.role,
            actor=context.actor,
        )
        return Response(MemberOutputSerializer(membership).data)


@extend_schema(
    request=None, responses=MemberOutputSerializer, tags=["users"], summary="Deactivate a user in this tenant"
)
class UserDeactivateView(_UserActivationView):
    activate = False


@extend_schema(
    request=None, responses=MemberOutputSerializer, tags=["users"], summary="Reactivate a user in this tenant"
)
class UserActivateView(_UserActivationView):
    activate = True


# --------------------------------------------------------------------------- groups
class GroupNameInputSerializer(serializers.Serializer):
    name = StringField(max_length=150)


class GroupListCreateView(APIView):
    required_scope = Scope.GROUPS_MANAGE

    @extend_schema(
        operation_id="groups_list",
        responses=paginated_schema(GroupOutputSerializer),
        tags=["groups"],
        summary="List the tenant's groups",
    )
    def get(self, request: Request) -> Response:
        groups = selectors.group_list(tenant=tenant_context(request).tenant)
        return paginated_response(request=request, view=self, queryset=groups, serializer_class=GroupOutputSerializer)

    @extend_schema(
        request=GroupNameInputSerializer,
        responses={201: GroupOutputSerializer},
        tags=["groups"],
        summary="Create a group",
    )
    def post(self, request: Request) -> Response:
        data = GroupNameInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        group = services.group_create(tenant=context.tenant, name=data.validated_data["name"], actor=context.actor)
        return Response(GroupOutputSerializer(group).data, status=status.HTTP_201_CREATED)


class GroupDetailView(APIView):
    required_scope = Scope.GROUPS_MANAGE

    @extend_schema(responses=GroupOutputSerializer, tags=["groups"], summary="One group with its members")
    def get(self, request: Request, group_id: int) -> Response:
        group = selectors.group_get(tenant=tenant_context(request).tenant, group_id=group_id)
        return Response(GroupOutputSerializer(group).data)

    @extend_schema(
        request=GroupNameInputSerializer, responses=GroupOutputSerializer, tags=["groups"], summary="Rename a group"
    )
    def patch(self, request: Request, group_id: int) -> Response:
        data = GroupNameInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        group = selectors.group_get(tenant=context.tenant, group_id=group_id)
        group = services.group_rename(group=group, name=data.validated_data["name"], actor=context.actor)
        return Response(GroupOutputSerializer(group).data)

    @extend_schema(responses={204: None}, tags=["groups"], summary="Delete a group")
    def delete(self, request: Request, group_id: int) -> Response:
        context = tenant_context(request)
        group = selectors.group_get(tenant=context.tenant, group_id=group_id)
        services.group_delete(group=group, actor=context.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class GroupMemberAddView(APIView):
    required_scope = Scope.GROUPS_MANAGE

    class GroupMemberSerializer(serializers.Serializer):
        username = StringField(max_length=150)

    @extend_schema(
        request=GroupMemberSerializer, responses=GroupOutputSerializer, tags=["groups"], summary="Add a member"
    )
    def post(self, request: Request, group_id: int) -> Response:
        data = self.GroupMemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        group = selectors.group_get(tenant=context.tenant, group_id=group_id)
        membership = selectors.membership_get(tenant=context.tenant, username=data.validated_data["username"])
        services.group_member_add(group=group, membership=membership, actor=context.actor)
        return Response(GroupOutputSerializer(group).data)


class GroupMemberRemoveView(APIView):
    required_scope = Scope.GROUPS_MANAGE

    @extend_schema(responses={200: GroupOutputSerializer}, tags=["groups"], summary="Remove a member")
    def delete(self, request: Request, group_id: int, username: str) -> Response:
        context = tenant_context(request)
        group = selectors.group_get(tenant=context.tenant, group_id=group_id)
        membership = selectors.membership_get(tenant=context.tenant, username=username)
        services.group_member_remove(group=group, membership=membership, actor=context.actor)
        return Response(GroupOutputSerializer(group).data)


# --------------------------------------------------------------------------- the directory's history
class DirectoryEventOutputSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = StringField()
    member = StringField(help_text="The member's tenant-local username at the time, or empty.")
    group = StringField(help_text="The group's name at the time, or empty.")
    details = serializers.DictField(help_text="What changed: {field: [before, after]}.")
    actor = StringField(help_text="Who: a member's tenant-local username; empty for a key or the operator.")
    actor_api_key_prefix = StringField(help_text="The key used, or empty.")


class DirectoryEventListView(APIView):
    """Who changed the tenant's people and groups, and when (docs/identity.md). Read-only: the
    services write it with each change."""

    required_scope = Scope.USERS_MANAGE

    class DirectoryEventFilterSerializer(StrictInputSerializer):  # a misspelt filter is a 400, not everything
        member = StringField(required=False, max_length=150)
        group = StringField(required=False, max_length=150)
        kind = serializers.ChoiceField(choices=DirectoryEvent.Kind.choices, required=False)

    @extend_schema(
        operation_id="directory_events_list",
        parameters=[DirectoryEventFilterSerializer],
        responses=paginated_schema(DirectoryEventOutputSerializer),
        tags=["users"],
        summary="The history of the tenant's people and groups, newest first",
    )
    def get(self, request: Request) -> Response:
        # limit and offset are the pagination's (checked there); anything else unknown is a 400.
        query = {name: value for name, value in request.query_params.items() if name not in ("limit", "offset")}
        filters = self.DirectoryEventFilterSerializer(data=query)
        filters.is_valid(raise_exception=True)
        events = selectors.directory_event_list(tenant=tenant_context(request).tenant, **filters.validated_data)
        return paginated_response(
            request=request, view=self, queryset=events, serializer_class=DirectoryEventOutputSerializer
        )


# --------------------------------------------------------------------------- API keys
class ApiKeyListCreateView(APIView):
    required_scope = Scope.KEYS_MANAGE

    class ApiKeyCreateSerializer(serializers.Serializer):
        name = StringField(max_length=100)
        scopes = serializers.ListField(child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False)
        expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
        key = StringField(help_text="The raw key. Shown this once; it is not stored.")

    @extend_schema(
        operation_id="api_keys_list",
        responses=paginated_schema(ApiKeyOutputSerializer),
        tags=["api keys"],
        summary="List the tenant's API keys",
    )
    def get(self, request: Request) -> Response:
        api_keys = selectors.api_key_list(tenant=tenant_context(request).tenant)
        return paginated_response(
            request=request, view=self, queryset=api_keys, serializer_class=ApiKeyOutputSerializer
        )

    @extend_schema(
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        tags=["api keys"],
        summary="Create an API key",
    )
    def post(self, request: Request) -> Response:
        data = self.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = tenant_context(request)
        api_key, raw_key = services.api_key_create(
            tenant=context.tenant,
            created_by=context.membership.user if context.membership else None,
            granting_scopes=context.scopes,
            granting_role=context.role,
            **data.validated_data,
        )
        body = ApiKeyOutputSerializer(api_key).data | {"key": raw_key}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(APIView):
    required_scope = Scope.KEYS_MANAGE

    @extend_schema(request=None, responses=ApiKeyOutputSerializer, tags=["api keys"], summary="Revoke an API key")
    def post(self, request: Request, prefix: str) -> Response:
        api_key = selectors.api_key_get(tenant=tenant_context(request).tenant, prefix=prefix)
        return Response(ApiKeyOutputSerializer(services.api_key_revoke(api_key=api_key)).data)
