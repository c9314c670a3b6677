from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.core.exceptions import NotAuthenticated

from .models import ApiKey
from .services import api_key_authenticate

KEYWORD = "Api-Key"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>` (or `X-Api-Key: <key>`). Authenticates as the key's own
    service user, with the ApiKey as `request.auth`; its tenant is resolved by the permission."""

    def authenticate(self, request: Request) -> tuple[object, ApiKey] | None:
        raw_key = self._raw_key(request)
        if raw_key is None:
            return None  # not ours: session or basic authentication may apply
        try:
            api_key = api_key_authenticate(raw_key=raw_key)
        except NotAuthenticated as exc:
            raise exceptions.AuthenticationFailed(exc.message, code=exc.code) from exc
        return api_key.service_user, api_key

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'

    @staticmethod
    def _raw_key(request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == KEYWORD.lower():
            return value.strip()
        if "X-Api-Key" in request.headers:
            return request.headers["X-Api-Key"].strip()
        return None
