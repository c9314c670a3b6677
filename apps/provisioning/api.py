"""SCIM 2.0 endpoints, per tenant: `/scim/v2/Users`, `/scim/v2/Groups` and the three discovery
documents (ServiceProviderConfig, ResourceTypes, Schemas). The bearer token is a tenant API key
holding the `scim` scope, so the tenant is the key's, resolved where every request's is
(tenants.resolution); nothing in a URL or a body names it. Thin views: resources.py reads and
writes, scim.py knows the protocol's JSON."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.urls import reverse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError
from apps.core.params import parse_int
from apps.core.parsers import JSONParser
from apps.tenants.authentication import ApiKeyAuthentication
from apps.tenants.models import Scope
from apps.tenants.permissions import TenantPermission, tenant_context

from . import resources, scim

MEDIA_TYPE = "application/scim+json"


class ScimJSONParser(JSONParser):
    media_type = MEDIA_TYPE


class ScimRenderer(JSONRenderer):
    media_type = MEDIA_TYPE


class PlainJSONRenderer(JSONRenderer):
    """For clients that ask for application/json, which RFC 7644 §3.8 says to serve too."""


class BearerKeyAuthentication(ApiKeyAuthentication):
    """`Authorization: Bearer <key>`: what Okta and Entra ID send. The key is a tenant API key."""

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="scim"'

    @staticmethod
    def _raw_key(request: Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None


class ScimView(APIView):
    authentication_classes = [BearerKeyAuthentication]
    permission_classes = [TenantPermission]
    required_scope = Scope.SCIM
    parser_classes = [ScimJSONParser, JSONParser]
    renderer_classes = [ScimRenderer, PlainJSONRenderer]
    schema = None  # SCIM's schema is its RFCs' (and /Schemas), not the platform API's OpenAPI document

    def handle_exception(self, exc: Exception) -> Response:
        """Every error in SCIM's shape (RFC 7644 §3.12), whatever raised it."""
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = self.get_authenticate_header(self.request)
        message = response.data.get("message") if isinstance(response.data, dict) else None
        scim_type = getattr(exc, "scim_type", None)
        if scim_type is None and isinstance(exc, drf_exceptions.ParseError | drf_exceptions.ValidationError):
            scim_type = "invalidSyntax"
        if scim_type is None and isinstance(exc, ApplicationError) and response.status_code == 400:
            scim_type = "invalidValue"
        if scim_type is None and response.status_code == status.HTTP_409_CONFLICT:
            scim_type = "uniqueness"
        response.data = scim.error_body(str(message or exc), response.status_code, scim_type)
        return response

    def location(self, name: str, pk: int) -> str:
        return self.request.build_absolute_uri(reverse(name, args=[str(pk)]))

    def actor(self):
        return tenant_context(self.request).actor

    def page(self, queryset, render) -> Response:
        """A ListResponse (RFC 7644 §3.4.2): 1-based startIndex, count clamped to 0..MAX_PAGE."""
        params = self.request.query_params
        start = max(1, _signed_int(params.get("startIndex") or "1", "startIndex"))  # below 1 means 1 (§3.4.2.4)
        count = min(scim.MAX_PAGE, max(0, _signed_int(params.get("count") or str(scim.MAX_PAGE), "count")))
        total = queryset.count()
        items = list(queryset[start - 1 : start - 1 + count]) if count else []
        return Response(
            {
                "schemas": [scim.LIST_RESPONSE],
                "totalResults": total,
                "startIndex": start,
                "itemsPerPage": len(items),
                "Resources": [render(item) for item in items],
            }
        )


def _signed_int(value: str, field: str) -> int:
    try:
        magnitude = parse_int(value.removeprefix("-"), field=field)
    except ApplicationError as exc:
        raise scim.ScimError(exc.message, scim_type="invalidValue") from None
    return -magnitude if value.startswith("-") else magnitude


# --------------------------------------------------------------------------- Users
class _UserView(ScimView):
    def render(self, membership) -> dict[str, Any]:
        return resources.user_resource(membership, self.location("scim-user", membership.pk))

    def membership(self, user_id: str, *, for_update: bool = False):
        return resources.user_get(tenant=tenant_context(self.request).tenant, user_id=user_id, for_update=for_update)


class UserListView(_UserView):
    def get(self, request: Request) -> Response:
        queryset = resources.users(tenant=tenant_context(request).tenant)
        if request.query_params.get("filter"):
            queryset = queryset.filter(
                scim.filter_q(request.query_params["filter"], scim.USER_FILTERS, schema=scim.USER_SCHEMA)
            )
        return self.page(queryset, self.render)

    def post(self, request: Request) -> Response:
        membership = resources.user_create(tenant=tenant_context(request).tenant, body=request.data, actor=self.actor())
        return Response(self.render(membership), status=status.HTTP_201_CREATED)


class UserDetailView(_UserView):
    def get(self, request: Request, user_id: str) -> Response:
        return Response(self.render(self.membership(user_id)))

    # Writes read the User under a row lock, in one transaction with the change.
    @transaction.atomic
    def put(self, request: Request, user_id: str) -> Response:
        membership = self.membership(user_id, for_update=True)
        return Response(
            self.render(resources.user_replace(membership=membership, body=request.data, actor=self.actor()))
        )

    @transaction.atomic
    def patch(self, request: Request, user_id: str) -> Response:
        membership = self.membership(user_id, for_update=True)
        return Response(self.render(resources.user_patch(membership=membership, body=request.data, actor=self.actor())))

    @transaction.atomic
    def delete(self, request: Request, user_id: str) -> Response:
        resources.user_deactivate(membership=self.membership(user_id, for_update=True), actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- Groups
class _GroupView(ScimView):
    def render(self, group) -> dict[str, Any]:
        # Entra ID asks for groups without their members (excludedAttributes=members) to save work.
        excluded = {name.strip().lower() for name in self.request.query_params.get("excludedAttributes", "").split(",")}
        return resources.group_resource(
            group, self.location("scim-group", group.pk), with_members="members" not in excluded
        )

    def group(self, group_id: str, *, for_update: bool = False):
        return resources.group_get(tenant=tenant_context(self.request).tenant, group_id=group_id, for_update=for_update)


class GroupListView(_GroupView):
    def get(self, request: Request) -> Response:
        queryset = resources.groups(tenant=tenant_context(request).tenant)
        if request.query_params.get("filter"):
            queryset = queryset.filter(
                scim.filter_q(request.query_params["filter"], scim.GROUP_FILTERS, schema=scim.GROUP_SCHEMA)
            )
        return self.page(queryset, self.render)

    def post(self, request: Request) -> Response:
        group = resources.group_create(tenant=tenant_context(request).tenant, body=request.data, actor=self.actor())
        return Response(self.render(group), status=status.HTTP_201_CREATED)


class GroupDetailView(_GroupView):
    def get(self, request: Request, group_id: str) -> Response:
        return Response(self.render(self.group(group_id)))

    # Writes read the Group under a row lock, in one transaction with the change.
    @transaction.atomic
    def put(self, request: Request, group_id: str) -> Response:
        group = resources.group_replace(
            group=self.group(group_id, for_update=True), body=request.data, actor=self.actor()
        )
        return Response(self.render(group))

    @transaction.atomic
    def patch(self, request: Request, group_id: str) -> Response:
        resources.group_patch(group=self.group(group_id, for_update=True), body=request.data, actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)  # RFC 7644 §3.5.2: 204 when no body is asked for

    @transaction.atomic
    def delete(self, request: Request, group_id: str) -> Response:
        resources.group_delete(group=self.group(group_id, for_update=True), actor=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --------------------------------------------------------------------------- discovery (RFC 7644 §4)
class ServiceProviderConfigView(ScimView):
    def get(self, request: Request) -> Response:
        return Response(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
                "patch": {"supported": True},
                "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
                "filter": {"supported": True, "maxResults": scim.MAX_PAGE},
                "changePassword": {"supported": False},
                "sort": {"supported": False},
                "etag": {"supported": False},
                "authenticationSchemes": [
                    {
                        "type": "oauthbearertoken",
                        "name": "Tenant API key",
                        "description": "A tenant API key with the 'scim' scope, as a bearer token.",
                        "primary": True,
                    }
                ],
            }
        )


class ResourceTypesView(ScimView):
    def get(self, request: Request) -> Response:
        types = [
            {"id": "User", "name": "User", "endpoint": "/Users", "schema": scim.USER_SCHEMA},
            {"id": "Group", "name": "Group", "endpoint": "/Groups", "schema": scim.GROUP_SCHEMA},
        ]
        return Response(
            {
                "schemas": [scim.LIST_RESPONSE],
                "totalResults": len(types),
                "Resources": [
                    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], **item} for item in types
                ],
            }
        )


class SchemasView(ScimView):
    """The attributes served, as RFC 7643 §7 describes them: what a directory may map."""

    def get(self, request: Request) -> Response:
        schemas = [
            {"id": scim.USER_SCHEMA, "name": "User", "attributes": _attributes(scim.USER_ATTRIBUTES)},
            {"id": scim.GROUP_SCHEMA, "name": "Group", "attributes": _attributes(scim.GROUP_ATTRIBUTES)},
        ]
        return Response(
            {
                "schemas": [scim.LIST_RESPONSE],
                "totalResults": len(schemas),
                "Resources": [
                    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"], **item} for item in schemas
                ],
            }
        )


def _attributes(described: dict[str, tuple[str, bool, str]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": kind,
            "multiValued": name in ("emails", "members", "groups"),
            "required": required,
            "caseExact": name in ("id", "externalId"),
            "mutability": mutability,
            "returned": "default",
            "uniqueness": "server" if name in ("userName", "displayName") else "none",
        }
        for name, (kind, required, mutability) in described.items()
    ]


class NotFoundView(ScimView):
    """Any other path under /scim/v2/ (Bulk, Me, a typo): a SCIM 404 for the directory, not the
    site's page (and a 401 first for a caller without a key: nothing is answered to strangers)."""

    def not_found(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise scim.ScimError(f"No SCIM endpoint at {request.path}.", status=404, code="not_found")

    get = post = put = patch = delete = not_found
