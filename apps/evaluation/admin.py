"""Golden sets and evaluation runs in the admin site: questions and their judged documents are
edited here; runs are read-only (they are started from the API or `evaluate_beir`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.tenants.admin import TenantListFilter, TenantScopedAdmin, admin_tenant_ids

from .models import EvaluationRun, GoldenQuestion, GoldenSet, Judgement, RunQuery


class GoldenQuestionInline(admin.TabularInline):
    model = GoldenQuestion
    fields = ("text", "reference_answer", "external_id")
    extra = 0
    show_change_link = True


@admin.register(GoldenSet)
class GoldenSetAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant", "question_count", "created_at")
    list_filter = (TenantListFilter,)
    search_fields = ("name",)
    inlines = [GoldenQuestionInline]

    @admin.display(description="questions")
    def question_count(self, golden_set):
        return golden_set.questions.count()


class JudgementForm(forms.ModelForm):
    parent_question = None  # set by the inline: the question being edited
    class Meta:
        model = Judgement
        fields = ("document", "grade")

    def clean(self):
        data = super().clean()
        document = data.get("document")
        if document is not None and self.parent_question is not None and document.tenant_id != self.parent_question.golden_set.tenant_id:
            raise forms.ValidationError("That document belongs to another tenant.")
        return data


class JudgementInline(admin.TabularInline):
    model = Judgement
    form = JudgementForm
    raw_id_fields = ("document",)
    extra = 1

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.parent_question = obj
        return formset


@admin.register(GoldenQuestion)
class GoldenQuestionAdmin(TenantScopedAdmin):
    tenant_lookup = "golden_set__tenant"
    list_display = ("text", "golden_set", "external_id")
    list_filter = ("golden_set",)
    search_fields = ("text", "external_id")
    inlines = [JudgementInline]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        tenant_ids = admin_tenant_ids(request)
        if db_field.name == "golden_set" and tenant_ids is not None:
            kwargs["queryset"] = GoldenSet.objects.filter(tenant_id__in=tenant_ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class RunQueryInline(admin.TabularInline):
    model = RunQuery
    fields = ("question", "metrics", "answer")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(EvaluationRun)
class EvaluationRunAdmin(TenantScopedAdmin):
    list_display = ("pk", "label", "golden_set", "status", "ndcg", "mrr", "code_version", "created_at")
    list_filter = (TenantListFilter, "status", "golden_set")
    readonly_fields = ("tenant", "golden_set", "label", "config", "code_version", "run_as", "status", "error", "metrics",
                       "answer_checks", "created_at", "finished_at")
    inlines = [RunQueryInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="nDCG@10")
    def ndcg(self, run):
        return f"{run.metrics.get('nDCG@10', 0):.3f}" if run.metrics else "—"

    @admin.display(description="MRR@10")
    def mrr(self, run):
        return f"{run.metrics.get('MRR@10', 0):.3f}" if run.metrics else "—"
