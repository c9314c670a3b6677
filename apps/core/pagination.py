from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer


def paginated_response(*, request: Request, view, queryset: QuerySet, serializer_class: type[Serializer]) -> Response:
    """`{count, next, previous, results}` with ?limit= and ?offset=, for plain APIViews."""
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def paginated_schema(serializer_class: type[Serializer]) -> Serializer:
    """The OpenAPI shape of `paginated_response` for a list of `serializer_class`."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    return inline_serializer(
        f"Paginated{serializer_class.__name__.removesuffix('Serializer')}List",
        {
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
