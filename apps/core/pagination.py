from __future__ import annotations

from django.db.models import QuerySet
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from .params import MAX_BIGINT, parse_int

# The largest page any list serves (README, "API"); the default page is REST_FRAMEWORK["PAGE_SIZE"].
MAX_PAGE_SIZE = 500


class Pagination(LimitOffsetPagination):
    """DRF's ?limit=&offset= with a maximum page size, and strict parameters: a limit or offset
    that is not an ASCII integer in range is a 400 naming it.

    DRF itself falls back to the default page for a limit it cannot read and clamps one above
    max_limit. We refuse instead: a client that asked for 1000 rows and quietly got 500, or a typo
    that quietly got 50, is wrong without knowing it, and the 400 says what the maximum is. An
    offset beyond what the database holds (2**63 - 1) was a 409 or a 500; it is a 400 too."""

    max_limit = MAX_PAGE_SIZE

    def get_limit(self, request):
        value = request.query_params.get(self.limit_query_param)
        if value is None or value == "":
            return self.default_limit
        return parse_int(value, field=self.limit_query_param, minimum=1, maximum=self.max_limit)

    def get_offset(self, request):
        value = request.query_params.get(self.offset_query_param)
        if value is None or value == "":
            return 0
        return parse_int(value, field=self.offset_query_param, maximum=MAX_BIGINT - self.max_limit)


def paginated_response(*, request: Request, view, queryset: QuerySet, serializer_class: type[Serializer]) -> Response:
    """`{count, next, previous, results}` with ?limit= and ?offset=, for plain APIViews."""
    paginator = Pagination()
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
