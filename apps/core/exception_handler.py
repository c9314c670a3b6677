"""The DRF exception handler: every error leaves the API as
``{"message": ..., "code": ..., "extra": {...}}`` with the right HTTP status. The message says
what to fix; the code is stable for programs to branch on."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .exceptions import ApplicationError, error_body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        refusal = Response(error_body(exc.message, exc.code, exc.extra), status=exc.status_code)
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            refusal["WWW-Authenticate"] = 'Api-Key realm="api"'
        return refusal

    if isinstance(exc, IntegrityError):
        # A uniqueness race the services' own checks could not see: the same answer as their 409.
        return Response(
            error_body("That conflicts with a change made at the same moment; try again.", "conflict"), status=409
        )

    if isinstance(exc, DataError):
        # A value the database cannot hold (an id beyond 64 bits in the path, say): the caller's to fix.
        return Response(error_body("A value in the request is out of range.", "out_of_range"), status=400)

    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's handler500 answers (and logs it)

    if isinstance(exc, drf_exceptions.ValidationError):
        response.data = error_body(
            "Invalid input: see extra.fields for what to fix.", "invalid", {"fields": exc.detail}
        )
    else:
        detail = exc.detail if isinstance(exc, drf_exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, drf_exceptions.APIException) else "error"
        response.data = error_body(str(detail), code if isinstance(code, str) else "error")
    return response
