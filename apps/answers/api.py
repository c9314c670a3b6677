"""Search and ask for tenant apps. Thin: validate, resolve who acts, call the service, shape the
answer. Access is never decided here: the pipeline filters inside the engine by the caller's
principals and re-checks against the database (steps.py)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.serializers import StrictInputSerializer, StringField
from apps.search.types import DEFAULT_DENSE_WEIGHT, DEFAULT_RRF_K, MAX_K, Fusion, Mode, SearchFilters
from apps.tenants import resolution
from apps.tenants.models import Scope
from apps.tenants.permissions import tenant_context

from . import services
from .types import RetrievalRequest


def _id() -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1)


# --------------------------------------------------------------------------- input
class FiltersInputSerializer(StrictInputSerializer):
    collections = serializers.ListField(child=_id(), required=False, max_length=100)
    documents = serializers.ListField(child=_id(), required=False, max_length=1000)
    categories = serializers.ListField(child=StringField(max_length=100), required=False, max_length=50)
    tags = serializers.ListField(
        child=StringField(max_length=100),
        required=False,
        max_length=50,
        help_text="A chunk matches if its document has any of these tags.",
    )
    date_from = serializers.DateField(required=False, help_text="Documents effective on or after (YYYY-MM-DD).")
    date_to = serializers.DateField(required=False, help_text="Documents effective on or before (YYYY-MM-DD).")

    def validate(self, data):
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise serializers.ValidationError({"date_to": ["date_to is before date_from."]})
        return data


class SearchInputSerializer(StrictInputSerializer):
    query = StringField(help_text="What to look for, in plain words (no query syntax).")
    k = serializers.IntegerField(min_value=1, max_value=MAX_K, default=10)
    mode = serializers.ChoiceField(choices=[m.value for m in Mode], default=Mode.HYBRID.value)
    fusion = serializers.ChoiceField(
        choices=[f.value for f in Fusion],
        default=Fusion.RRF.value,
        help_text="Hybrid only: reciprocal rank fusion, or weighted min-max scores.",
    )
    dense_weight = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        default=DEFAULT_DENSE_WEIGHT,
        help_text="Weighted fusion: the dense share (BM25 gets the rest).",
    )
    rrf_k = serializers.IntegerField(min_value=1, max_value=1000, default=DEFAULT_RRF_K)
    max_per_document = serializers.IntegerField(min_value=1, max_value=MAX_K, required=False)
    rerank = serializers.BooleanField(default=False, help_text="Re-order with the configured cross-encoder.")
    hyde = serializers.BooleanField(
        default=False, help_text="Dense retrieval on a hypothetical answer (needs a chat model)."
    )
    feedback = serializers.BooleanField(
        default=False,
        help_text=(
            "Dense and hybrid: search again with the query vector moved toward the best documents of a first pass "
            "(pseudo-relevance feedback; one more kNN search)."
        ),
    )
    filters = FiltersInputSerializer(required=False)
    as_user = StringField(
        required=False,
        max_length=150,
        help_text="API keys with act_as_user: run as this tenant username, with their access.",
    )

    def validate_query(self, value: str) -> str:
        limit = settings.ANSWERS["MAX_QUERY_CHARS"]
        if len(value) > limit:
            raise serializers.ValidationError(f"The query is {len(value)} characters long; the limit is {limit}.")
        return value

    def to_request(self) -> RetrievalRequest:
        data = self.validated_data
        filters = data.get("filters", {})
        return RetrievalRequest(
            query=data["query"],
            mode=Mode(data["mode"]),
            k=data["k"],
            filters=SearchFilters(
                collection_ids=tuple(filters.get("collections", ())),
                document_ids=tuple(filters.get("documents", ())),
                categories=tuple(filters.get("categories", ())),
                tags=tuple(filters.get("tags", ())),
                date_from=filters.get("date_from"),
                date_to=filters.get("date_to"),
            ),
            fusion=Fusion(data["fusion"]),
            dense_weight=data["dense_weight"],
            rrf_k=data["rrf_k"],
            max_per_document=data.get("max_per_document"),
            rerank=data["rerank"],
            hyde=data["hyde"],
            feedback=data["feedback"],
            context_tokens=data.get("context_tokens", settings.ANSWERS["CONTEXT_TOKENS"]),
        )


class AskInputSerializer(SearchInputSerializer):
    k = serializers.IntegerField(
        min_value=1, max_value=20, default=5, help_text="Chunks given to the generator, at most."
    )
    context_tokens = serializers.IntegerField(
        min_value=100,
        max_value=8000,
        required=False,
        help_text="Token budget of the context (default: ANSWER_CONTEXT_TOKENS).",
    )


# --------------------------------------------------------------------------- output
_RAW = (
    " Only for callers who read every document of the tenant (owners, admins, editors, keys with "
    "documents:write); null for others."
)


class ScoresOutputSerializer(serializers.Serializer):
    """Scores and ranks. Raw scores carry the tenant's BM25 statistics, documents the caller may not
    read included, so they go only to callers who read everything (docs/search.md)."""

    fused = serializers.FloatField(
        allow_null=True, help_text="The score that ordered the results (before re-ranking)." + _RAW
    )
    fused_rank = serializers.IntegerField()
    bm25 = serializers.FloatField(allow_null=True, help_text="BM25 score." + _RAW)
    bm25_rank = serializers.IntegerField(
        allow_null=True, help_text="Rank among the BM25 candidates the caller may read."
    )
    dense = serializers.FloatField(allow_null=True, help_text="Cosine similarity." + _RAW)
    dense_rank = serializers.IntegerField(allow_null=True)
    rerank = serializers.FloatField(allow_null=True, help_text="Re-ranking score." + _RAW)


class ResultOutputSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    chunk_id = StringField(source="hit.chunk_id")
    document_id = serializers.IntegerField(source="hit.document_id")
    version_id = serializers.IntegerField(source="hit.version_id")
    collection_id = serializers.IntegerField(source="hit.collection_id")
    title = StringField(source="hit.title")
    text = StringField(source="hit.text")
    start_offset = serializers.IntegerField(source="facts.start_offset", help_text="Into the version's extracted text.")
    end_offset = serializers.IntegerField(source="facts.end_offset")
    highlights = serializers.ListField(child=StringField(), source="hit.highlights")
    scores = ScoresOutputSerializer()


class CitationOutputSerializer(serializers.Serializer):
    marker = serializers.IntegerField(help_text="The [n] in the answer text.")
    chunk_id = StringField()
    document_id = serializers.IntegerField()
    version_id = serializers.IntegerField()
    start_offset = serializers.IntegerField()
    end_offset = serializers.IntegerField()
    quote = StringField()


class SearchOutputSerializer(serializers.Serializer):
    audit_id = serializers.IntegerField()
    query = StringField()
    mode = StringField()
    results = ResultOutputSerializer(many=True)
    timings = serializers.DictField(child=serializers.FloatField(), help_text="Milliseconds per pipeline step.")


class AskOutputSerializer(serializers.Serializer):
    audit_id = serializers.IntegerField()
    query = StringField()
    answer = StringField()
    grounded = serializers.BooleanField(help_text="False: no grounded answer (see refusal_reason).")
    refusal_reason = StringField()
    generator = StringField()
    model = StringField()
    citations = CitationOutputSerializer(many=True)
    sources = ResultOutputSerializer(many=True, help_text="The chunks given to the generator.")
    timings = serializers.DictField(child=serializers.FloatField())


def _results(run) -> list[dict]:
    return [
        {"rank": rank, "hit": r.hit, "facts": r.facts, "scores": r.scores if run.reads_everything else r.ranks}
        for rank, r in enumerate(run.shown, start=1)
    ]


def _acting_context(request: Request, data: dict, scope: str):
    """Whom this retrieval runs for: the caller, or the member named by as_user (resolution.act_for)."""
    return resolution.act_for(tenant_context(request), as_user=data.get("as_user"), require=(scope,))


# --------------------------------------------------------------------------- views
class SearchView(APIView):
    required_scope = Scope.SEARCH

    @extend_schema(
        operation_id="search",
        request=SearchInputSerializer,
        responses=SearchOutputSerializer,
        tags=["answers"],
        summary="Ranked chunks the caller may read, with score components and the audit id.",
    )
    def post(self, request: Request) -> Response:
        data = SearchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = _acting_context(request, data.validated_data, Scope.SEARCH)
        outcome = services.search_run(context=context, request=data.to_request())
        run = outcome.run
        return Response(
            SearchOutputSerializer(
                {
                    "audit_id": outcome.record.pk,
                    "query": run.request.query,
                    "mode": run.request.mode.value,
                    "results": _results(run),
                    "timings": run.timings,
                }
            ).data
        )


class AskView(APIView):
    required_scope = Scope.ASK

    @extend_schema(
        operation_id="ask",
        request=AskInputSerializer,
        responses=AskOutputSerializer,
        tags=["answers"],
        summary="An answer with citations (or a refusal), from what the caller may read; with the audit id.",
    )
    def post(self, request: Request) -> Response:
        data = AskInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        context = _acting_context(request, data.validated_data, Scope.ASK)
        outcome = services.ask_run(context=context, request=data.to_request())
        run, answer = outcome.run, outcome.run.generated_answer()
        return Response(
            AskOutputSerializer(
                {
                    "audit_id": outcome.record.pk,
                    "query": run.request.query,
                    "answer": answer.text,
                    "grounded": answer.grounded,
                    "refusal_reason": answer.refusal_reason,
                    "generator": answer.generator,
                    "model": answer.model,
                    "citations": [vars(c) for c in answer.citations],
                    "sources": _results(run),
                    "timings": run.timings,
                }
            ).data
        )
