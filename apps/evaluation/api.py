"""Golden sets and evaluation runs for a tenant: manage questions with their judged documents,
start a run of a retrieval configuration (on a worker), read per-query metrics, compare two runs."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.exceptions import ApplicationError, NotFound
from apps.core.pagination import paginated_response, paginated_schema
from apps.core.params import parse_id
from apps.core.serializers import StrictInputSerializer, StringField
from apps.search.types import MAX_K, Fusion, Mode
from apps.tenants.models import Scope
from apps.tenants.permissions import tenant_context

from . import services
from .models import EvaluationRun, GoldenSet


def _golden_set(context, golden_set_id: int) -> GoldenSet:
    golden = GoldenSet.objects.filter(tenant=context.tenant, pk=golden_set_id).first()
    if golden is None:
        raise NotFound(f"No golden set {golden_set_id}.", code="golden_set_not_found")
    return golden


def _run(context, run_id: int) -> EvaluationRun:
    run = EvaluationRun.objects.filter(tenant=context.tenant, pk=run_id).select_related("golden_set").first()
    if run is None:
        raise NotFound(f"No evaluation run {run_id}.", code="run_not_found")
    return run


# --------------------------------------------------------------------------- shapes
class JudgementSerializer(serializers.Serializer):
    document = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    grade = serializers.IntegerField(min_value=1, max_value=10, default=1)


class QuestionInputSerializer(StrictInputSerializer):
    text = StringField(max_length=2000)
    reference_answer = StringField(required=False, allow_blank=True, default="", max_length=10000)
    judgements = JudgementSerializer(many=True, help_text="The relevant documents, graded (higher is more relevant).")


class QuestionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = StringField()
    text = StringField()
    reference_answer = StringField()
    judgements = serializers.SerializerMethodField()

    def get_judgements(self, question) -> list[dict]:
        return [{"document": j.document_id, "grade": j.grade} for j in question.judgements.all()]


class GoldenSetInputSerializer(StrictInputSerializer):
    name = StringField(max_length=200)
    description = StringField(required=False, allow_blank=True, default="", max_length=5000)


class GoldenSetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = StringField()
    description = StringField()
    created_at = serializers.DateTimeField()
    question_count = serializers.IntegerField(source="questions.count")


class GoldenSetDetailOutputSerializer(GoldenSetOutputSerializer):
    questions = QuestionOutputSerializer(many=True, source="questions.all")


class RunInputSerializer(StrictInputSerializer):
    golden_set = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    # `label` is the JSON key. The stubs read it as overriding Field.label; DRF's metaclass takes declared
    # fields out of the class, so it does not.
    label = StringField(  # type: ignore[assignment]
        required=False, allow_blank=True, default="", max_length=200
    )
    mode = serializers.ChoiceField(choices=[m.value for m in Mode], default=Mode.HYBRID.value)
    fusion = serializers.ChoiceField(choices=[f.value for f in Fusion], default=Fusion.RRF.value)
    dense_weight = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.65)
    rrf_k = serializers.IntegerField(min_value=1, max_value=1000, default=60)
    k = serializers.IntegerField(
        min_value=10, max_value=MAX_K, default=100, help_text="Documents ranked per question (Recall@k)."
    )
    rerank = serializers.BooleanField(default=False)
    feedback = serializers.BooleanField(
        default=False, help_text="Pseudo-relevance feedback on the dense side (dense and hybrid)."
    )
    answers = serializers.BooleanField(
        default=False, help_text="Also ask each question and check the answer's citations."
    )
    limit = serializers.IntegerField(min_value=1, required=False, help_text="Only the first N questions.")
    as_user = StringField(
        required=False,
        max_length=150,
        help_text="Whose access is evaluated: required for API keys (with act_as_user), whose scopes "
        "and the member's role must both allow evaluation, search (and ask with answers); "
        "members run as themselves.",
    )


class RunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    golden_set = serializers.IntegerField(source="golden_set_id")
    label = StringField()  # type: ignore[assignment]  # the JSON key: see RunInputSerializer.label
    status = StringField()
    error = StringField()
    config = serializers.DictField()
    code_version = StringField()
    run_as = StringField()
    api_key_prefix = StringField(
        help_text="The key that started the run, acting for run_as; empty when the member did."
    )
    scopes = serializers.ListField(
        child=StringField(), help_text="The scopes the run acts with (the key's and the member's role's)."
    )
    metrics = serializers.DictField()
    answer_checks = serializers.DictField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class RunQueryOutputSerializer(serializers.Serializer):
    question = serializers.IntegerField(source="question_id")
    text = StringField(source="question.text")
    metrics = serializers.DictField()
    ranking = serializers.ListField(child=serializers.IntegerField())
    answer = serializers.DictField()


class RunDetailOutputSerializer(RunOutputSerializer):
    queries = RunQueryOutputSerializer(many=True, source="queries.all")


class DeltaOutputSerializer(serializers.Serializer):
    question_id = serializers.IntegerField()
    question = StringField()
    before = serializers.FloatField()
    after = serializers.FloatField()
    delta = serializers.FloatField()


class ComparisonOutputSerializer(serializers.Serializer):
    measure = StringField()
    before = serializers.FloatField()
    after = serializers.FloatField()
    wins = DeltaOutputSerializer(many=True)
    losses = DeltaOutputSerializer(many=True)
    ties = serializers.IntegerField()


# --------------------------------------------------------------------------- views
class GoldenSetListView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(
        operation_id="golden_sets_list", responses=paginated_schema(GoldenSetOutputSerializer), tags=["evaluation"]
    )
    def get(self, request: Request) -> Response:
        golden_sets = GoldenSet.objects.filter(tenant=tenant_context(request).tenant).prefetch_related("questions")
        return paginated_response(
            request=request, view=self, queryset=golden_sets, serializer_class=GoldenSetOutputSerializer
        )

    @extend_schema(
        operation_id="golden_sets_create",
        request=GoldenSetInputSerializer,
        responses={201: GoldenSetOutputSerializer},
        tags=["evaluation"],
    )
    def post(self, request: Request) -> Response:
        data = GoldenSetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        golden = services.golden_set_create(tenant=tenant_context(request).tenant, **data.validated_data)
        return Response(GoldenSetOutputSerializer(golden).data, status=status.HTTP_201_CREATED)


class GoldenSetDetailView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(operation_id="golden_sets_get", responses=GoldenSetDetailOutputSerializer, tags=["evaluation"])
    def get(self, request: Request, golden_set_id: int) -> Response:
        return Response(GoldenSetDetailOutputSerializer(_golden_set(tenant_context(request), golden_set_id)).data)

    @extend_schema(operation_id="golden_sets_delete", responses={204: None}, tags=["evaluation"])
    def delete(self, request: Request, golden_set_id: int) -> Response:
        _golden_set(tenant_context(request), golden_set_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class QuestionListView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(
        operation_id="golden_questions_create",
        request=QuestionInputSerializer,
        responses={201: QuestionOutputSerializer},
        tags=["evaluation"],
    )
    def post(self, request: Request, golden_set_id: int) -> Response:
        golden = _golden_set(tenant_context(request), golden_set_id)
        data = QuestionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        judgements = {j["document"]: j["grade"] for j in data.validated_data["judgements"]}
        question = services.question_add(
            golden_set=golden,
            text=data.validated_data["text"],
            judgements=judgements,
            reference_answer=data.validated_data["reference_answer"],
        )
        return Response(QuestionOutputSerializer(question).data, status=status.HTTP_201_CREATED)


class QuestionDetailView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(operation_id="golden_questions_delete", responses={204: None}, tags=["evaluation"])
    def delete(self, request: Request, golden_set_id: int, question_id: int) -> Response:
        golden = _golden_set(tenant_context(request), golden_set_id)
        deleted, _ = golden.questions.filter(pk=question_id).delete()
        if not deleted:
            raise NotFound(f"No question {question_id} in golden set {golden.pk}.", code="question_not_found")
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunListView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(
        operation_id="evaluation_runs_list",
        responses=paginated_schema(RunOutputSerializer),
        tags=["evaluation"],
        parameters=[OpenApiParameter("golden_set", int)],
    )
    def get(self, request: Request) -> Response:
        runs = EvaluationRun.objects.filter(tenant=tenant_context(request).tenant)
        golden_set = request.query_params.get("golden_set")
        if golden_set:
            runs = runs.filter(golden_set_id=parse_id(golden_set, field="golden_set"))
        return paginated_response(request=request, view=self, queryset=runs, serializer_class=RunOutputSerializer)

    @extend_schema(
        operation_id="evaluation_runs_create",
        request=RunInputSerializer,
        responses={202: RunOutputSerializer},
        tags=["evaluation"],
        summary="Start a run: it executes on a worker; poll the run for its status and metrics.",
    )
    def post(self, request: Request) -> Response:
        context = tenant_context(request)
        data = RunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        golden = _golden_set(context, values.pop("golden_set"))
        as_user = values.pop("as_user", None)
        # Whom it acts for: resolution.act_for (through services.run_acting), now and again on the worker.
        run = services.run_submit(
            golden_set=golden, config=services.RunConfig(**values), caller=context, as_user=as_user
        )
        run.refresh_from_db()
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(operation_id="evaluation_runs_get", responses=RunDetailOutputSerializer, tags=["evaluation"])
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunDetailOutputSerializer(_run(tenant_context(request), run_id)).data)


class RunCompareView(APIView):
    required_scope = Scope.EVALUATION

    @extend_schema(
        operation_id="evaluation_runs_compare",
        responses=ComparisonOutputSerializer,
        tags=["evaluation"],
        parameters=[OpenApiParameter("measure", str, description="nDCG@10 (default), MRR@10, Recall@k")],
        summary="Per-question wins and losses of the second run against the first.",
    )
    def get(self, request: Request, run_id: int, other_id: int) -> Response:
        context = tenant_context(request)
        measure = request.query_params.get("measure", "nDCG@10")
        try:
            from .metrics import measure as parse_measure

            parse_measure(measure)
        except ValueError as exc:
            raise ApplicationError(str(exc), code="invalid", extra={"fields": {"measure": [str(exc)]}}) from exc
        comparison = services.run_compare(before=_run(context, run_id), after=_run(context, other_id), measure=measure)
        return Response(
            ComparisonOutputSerializer(
                {
                    **comparison.__dict__,
                    "wins": [{**vars(d), "delta": d.delta} for d in comparison.wins],
                    "losses": [{**vars(d), "delta": d.delta} for d in comparison.losses],
                }
            ).data
        )
