"""An evaluation run started from the API runs on a worker (in-process on the embedded profile)."""

from __future__ import annotations

from celery import shared_task

from . import services
from .models import EvaluationRun


@shared_task(name="evaluation.run")
def run_evaluation(run_id: int) -> dict:
    run = services.run_execute(
        run=EvaluationRun.objects.across_tenants().select_related("golden_set", "tenant").get(pk=run_id)
    )
    return {"run": run.pk, "status": run.status, "metrics": run.metrics}
