"""The audit trail for the compliance team: list with filters, one record with the exact text of
every retrieved chunk, reviews, export. Members need the compliance role; API keys the audit:read
scope. Everything is read within the caller's tenant."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import PermissionDenied
from apps.core.pagination import paginated_response, paginated_schema
from apps.core.serializers import StrictInputSerializer, StringField
from apps.tenants.models import Scope
from apps.tenants.permissions import tenant_context
from apps.tenants.resolution import role_may_use

from . import selectors, services
from .models import Kind, Outcome, ReviewStatus
from .proofs import proof_build
from .replay import record_replay


def compliance_context(request: Request):
    context = tenant_context(request)  # the rule of who reads the audit: apps/tenants/resolution.py role_may_use
    if context.membership is not None and not role_may_use(context.membership.role, Scope.AUDIT_READ):
        raise PermissionDenied("The audit trail is for the compliance role only.", code="compliance_only")
    return context


# --------------------------------------------------------------------------- shapes
class FiltersQuerySerializer(StrictInputSerializer):
    user = StringField(required=False, max_length=150, help_text="A tenant username.")
    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)
    document = serializers.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, help_text="Records that retrieved this document."
    )
    version = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="… or this version.")
    kind = serializers.ChoiceField(choices=Kind.values, required=False)
    outcome = serializers.ChoiceField(choices=Outcome.values, required=False)
    review = serializers.ChoiceField(choices=[*ReviewStatus.values, "unreviewed"], required=False)
    # pagination and export parameters
    limit = serializers.IntegerField(required=False, min_value=0)
    offset = serializers.IntegerField(required=False, min_value=0)
    output = serializers.ChoiceField(choices=["csv", "jsonl"], required=False)

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return data

    def filters(self) -> selectors.RecordFilters:
        data = self.validated_data
        return selectors.RecordFilters(
            username=data.get("user"),
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            document_id=data.get("document"),
            version_id=data.get("version"),
            kind=data.get("kind"),
            outcome=data.get("outcome"),
            review_status=data.get("review"),
        )


FILTER_PARAMETERS = [
    OpenApiParameter("user", str),
    OpenApiParameter("date_from", OpenApiTypes.DATE),
    OpenApiParameter("date_to", OpenApiTypes.DATE),
    OpenApiParameter("document", int),
    OpenApiParameter("version", int),
    OpenApiParameter("kind", str, enum=Kind.values),
    OpenApiParameter("outcome", str, enum=Outcome.values),
    OpenApiParameter("review", str, enum=[*ReviewStatus.values, "unreviewed"]),
]


class RecordOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sequence = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = StringField()
    outcome = StringField()
    username = StringField()
    api_key_prefix = StringField()
    acting_for_user = serializers.BooleanField()
    query = StringField()
    filters = serializers.DictField()
    parameters = serializers.DictField()
    answer = StringField()
    citations = serializers.ListField(child=serializers.DictField())
    generator = StringField()
    generator_model = StringField()
    timings = serializers.DictField()
    error = StringField()
    review_status = StringField(allow_null=True)
    principals = serializers.ListField(child=StringField())
    # `context` is the JSON key. The stubs read it as overriding Field.context; DRF's metaclass takes
    # declared fields out of the class, so it does not.
    context = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]
    embedding_model = StringField()
    search_backend = StringField()
    index_generation = StringField()
    key_id = StringField()
    record_hash = StringField()


class EvidenceOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField(source="entry.rank")
    chunk_id = StringField(source="entry.chunk_id")
    document_id = serializers.IntegerField(source="entry.document_id")
    version_id = serializers.IntegerField(source="entry.version_id")
    text_sha256 = StringField(source="entry.text_sha256")
    served_sha256 = StringField(
        source="entry.served_sha256", help_text="SHA-256 of the text the search engine served (its own copy)."
    )
    scores = serializers.DictField(source="entry.scores")
    passed_recheck = serializers.BooleanField(source="entry.passed_recheck")
    recheck_reason = StringField(source="entry.recheck_reason")
    shown = serializers.BooleanField(source="entry.shown")
    cited = serializers.BooleanField(source="entry.cited")
    text = StringField(allow_null=True, help_text="The exact text, from the immutable version (null once purged).")
    text_matches = serializers.BooleanField(allow_null=True, help_text="The text still hashes to what the record kept.")
    served_matches = serializers.BooleanField(
        allow_null=True,
        help_text=("What the engine served hashes to this text: false means the caller was shown another copy."),
    )
    start_offset = serializers.IntegerField(allow_null=True)
    end_offset = serializers.IntegerField(allow_null=True)


class ReviewOutputSerializer(serializers.Serializer):
    status = StringField()
    comment = StringField()
    reviewer_name = StringField()
    created_at = serializers.DateTimeField()


class RecordDetailOutputSerializer(RecordOutputSerializer):
    chunks = EvidenceOutputSerializer(many=True)
    reviews = ReviewOutputSerializer(many=True)


class ReviewInputSerializer(StrictInputSerializer):
    status = serializers.ChoiceField(choices=ReviewStatus.values)
    comment = StringField(required=False, allow_blank=True, default="", max_length=5000)


# --------------------------------------------------------------------------- views
def _filters(request: Request) -> selectors.RecordFilters:
    query = FiltersQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.filters()


class RecordListView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(
        operation_id="audit_records_list",
        parameters=FILTER_PARAMETERS,
        responses=paginated_schema(RecordOutputSerializer),
        tags=["audit"],
    )
    def get(self, request: Request) -> Response:
        context = compliance_context(request)
        records = selectors.record_list(tenant=context.tenant, filters=_filters(request))
        return paginated_response(request=request, view=self, queryset=records, serializer_class=RecordOutputSerializer)


def _detail(record) -> dict:
    data = dict(RecordOutputSerializer(record).data)
    data["chunks"] = EvidenceOutputSerializer(selectors.record_evidence(record=record), many=True).data
    data["reviews"] = ReviewOutputSerializer(record.reviews.filter(tenant=record.tenant), many=True).data
    return data


class RecordDetailView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(operation_id="audit_records_get", responses=RecordDetailOutputSerializer, tags=["audit"])
    def get(self, request: Request, record_id: int) -> Response:
        context = compliance_context(request)
        return Response(_detail(selectors.record_get(tenant=context.tenant, record_id=record_id)))


class RecordReviewView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(
        operation_id="audit_records_review",
        request=ReviewInputSerializer,
        responses={201: RecordDetailOutputSerializer},
        tags=["audit"],
        summary="Mark a record reviewed or flagged, with a comment (the record itself never changes).",
    )
    def post(self, request: Request, record_id: int) -> Response:
        context = compliance_context(request)
        record = selectors.record_get(tenant=context.tenant, record_id=record_id)
        data = ReviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.review_add(record=record, **data.validated_data, **services.reviewer_of(context))
        return Response(
            _detail(selectors.record_get(tenant=context.tenant, record_id=record_id)), status=status.HTTP_201_CREATED
        )


class ReplayedChunkSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    chunk_id = StringField()
    document_id = serializers.IntegerField()
    version_id = serializers.IntegerField()
    shown = serializers.BooleanField()
    cited = serializers.BooleanField()
    text = StringField(allow_null=True, help_text="Re-derived from the version's stored file (null: it cannot be).")
    text_matches = serializers.BooleanField(allow_null=True)
    served_matches = serializers.BooleanField(allow_null=True)
    now = serializers.ListField(child=StringField(), help_text="What would differ if the query ran now.")


class ReplayedPassageSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    version_id = serializers.IntegerField()
    section_id = serializers.IntegerField(allow_null=True)
    text = StringField(allow_null=True)
    text_matches = serializers.BooleanField(allow_null=True)


class ReplayedCitationSerializer(serializers.Serializer):
    marker = serializers.IntegerField()
    chunk_id = StringField()
    version_id = serializers.IntegerField()
    quote = StringField()
    quote_matches = serializers.BooleanField(allow_null=True)


class ReplayOutputSerializer(serializers.Serializer):
    record_id = serializers.IntegerField()
    sequence = serializers.IntegerField()
    record_intact = serializers.BooleanField(help_text="The record still hashes to what its chain holds.")
    hashes_match = serializers.BooleanField(
        help_text="Every text re-derived from the versions hashes to what the record kept."
    )
    chunks = ReplayedChunkSerializer(many=True)
    context = ReplayedPassageSerializer(  # type: ignore[assignment]  # the JSON key: see RecordOutputSerializer.context
        many=True, help_text="The passages given to the generator."
    )
    citations = ReplayedCitationSerializer(many=True)
    now = serializers.ListField(child=StringField(), help_text="What changed since for the whole query.")
    unverifiable = serializers.ListField(
        child=StringField(),
        help_text=(
            "Texts that should be checkable and are not (a version file altered or missing): they fail the replay."
        ),
    )


class RecordReplayView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(
        operation_id="audit_records_replay",
        responses=ReplayOutputSerializer,
        tags=["audit"],
        summary="Rebuild the record's retrieved, given and cited texts from the immutable versions, "
        "check every hash, and say what would differ now.",
    )
    def get(self, request: Request, record_id: int) -> Response:
        context = compliance_context(request)
        record = selectors.record_get(tenant=context.tenant, record_id=record_id)
        return Response(ReplayOutputSerializer(record_replay(record=record)).data)


class ProofOutputSerializer(serializers.Serializer):
    record_id = serializers.IntegerField()
    canonical = StringField(help_text="The record's canonical bytes (UTF-8 JSON), exactly as hashed.")
    content_sha256 = StringField(help_text="SHA-256 of `canonical`: the record's Merkle leaf.")
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    audit_path = serializers.ListField(child=StringField(), help_text="RFC 9162 inclusion path, leaf upwards.")
    checkpoint = serializers.DictField(help_text="The signed checkpoint (Ed25519) whose Merkle root the path reaches.")


class RecordProofView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(
        operation_id="audit_records_proof",
        responses=ProofOutputSerializer,
        tags=["audit"],
        summary="An inclusion proof of the record in a signed checkpoint: checkable with the public keys alone "
        "(manage.py audit_keys), without the rest of the chain. 409 until a checkpoint holds it.",
    )
    def get(self, request: Request, record_id: int) -> Response:
        context = compliance_context(request)
        record = selectors.record_get(tenant=context.tenant, record_id=record_id)
        return Response(ProofOutputSerializer(proof_build(record=record)).data)


class ExportView(APIView):
    required_scope = Scope.AUDIT_READ

    @extend_schema(
        operation_id="audit_export",
        tags=["audit"],
        parameters=[*FILTER_PARAMETERS, OpenApiParameter("output", str, enum=["csv", "jsonl"], default="jsonl")],
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR, (200, "text/csv"): OpenApiTypes.STR},
        summary="The filtered records as JSON lines or CSV, streamed.",
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        context = compliance_context(request)
        records = selectors.record_list(tenant=context.tenant, filters=_filters(request))
        if request.query_params.get("output") == "csv":
            response = StreamingHttpResponse(selectors.export_csv(records), content_type="text/csv")
            extension = "csv"
        else:
            response = StreamingHttpResponse(selectors.export_jsonl(records), content_type="application/x-ndjson")
            extension = "jsonl"
        response["Content-Disposition"] = f'attachment; filename="audit-{context.tenant.slug}.{extension}"'
        return response
