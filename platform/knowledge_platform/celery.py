"""The Celery application. Workers start with `celery -A knowledge_platform worker`
(PYTHONPATH must hold the repository root and platform/, as the Dockerfile sets it)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "knowledge_platform.settings.development")

app = Celery("knowledge_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def share_cores(sender=None, **kwargs) -> None:
    """Before the pool forks: each of the worker's processes embeds with its share of the cores
    (apps/corpus/embedding.py, intra_op_threads)."""
    os.environ.setdefault("SERVING_PROCESSES", str(getattr(sender, "concurrency", None) or 1))
