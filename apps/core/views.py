from django.http import JsonResponse
from django.views.defaults import page_not_found, server_error
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import error_body
from apps.core.health import OK, readiness

_check_serializer = inline_serializer(
    "HealthCheck",
    {
        "status": serializers.ChoiceField(choices=["ok", "error"]),
        "detail": serializers.CharField(),
        "latency_ms": serializers.FloatField(),
    },
)


class LivenessView(APIView):
    """The process is up and serving requests. Touches no dependency."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses=inline_serializer("Liveness", {"status": serializers.CharField()}),
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        return Response({"status": OK})


class ReadinessView(APIView):
    """Database, broker and search backend, each with its status; 503 when any is down."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            (200, "application/json"): inline_serializer(
                "Readiness",
                {
                    "status": serializers.ChoiceField(choices=["ok", "error"]),
                    "checks": inline_serializer(
                        "ReadinessChecks",
                        {"database": _check_serializer, "broker": _check_serializer, "search": _check_serializer},
                    ),
                },
            )
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        checks = readiness()
        ready = all(check.status == OK for check in checks.values())
        return Response(
            {"status": OK if ready else "error", "checks": {name: c.as_dict() for name, c in checks.items()}},
            status=200 if ready else 503,
        )


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/health/", "/scim/"))


def json_not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse(error_body(f"No such endpoint: {request.path}", "not_found"), status=404)
    return page_not_found(request, exception)


def json_server_error(request):
    if _wants_json(request):
        return JsonResponse(error_body("Internal error; it has been logged.", "server_error"), status=500)
    return server_error(request)
