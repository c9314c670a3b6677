from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .models import ApiKey
from .resolution import TENANT_HEADER, TenantContext, resolve_tenant_context

# Where the context is kept on the request (apps/core/throttling.py reads it too). DRF's Request
# declares no such attribute, so it is set and read by name.
CONTEXT_ATTRIBUTE = "tenant_context"


class TenantPermission(BasePermission):
    """The default permission of every API view: resolves the tenant (resolution.py), stores the
    `TenantContext` on the request, and checks the view's `required_scope` for the method.

    A view declares `required_scope = Scope.X`, or `required_scopes = {"GET": ..., "POST": ...}`.
    """

    def has_permission(self, request: Request, view) -> bool:
        api_key = request.auth if isinstance(request.auth, ApiKey) else None
        context = resolve_tenant_context(
            user=request.user, api_key=api_key, tenant_slug=request.headers.get(TENANT_HEADER)
        )
        setattr(request, CONTEXT_ATTRIBUTE, context)
        # HEAD and OPTIONS read like GET, so they need what GET needs.
        method = "GET" if request.method in ("HEAD", "OPTIONS") else request.method
        scope = getattr(view, "required_scopes", {}).get(method, getattr(view, "required_scope", None))
        if scope is not None:
            context.require(scope)
        return True


def tenant_context(request: Request) -> TenantContext:
    """The context TenantPermission resolved for this request."""
    context = getattr(request, CONTEXT_ATTRIBUTE, None)
    if not isinstance(context, TenantContext):
        raise ImproperlyConfigured("No tenant context on this request: its view must use TenantPermission.")
    return context
