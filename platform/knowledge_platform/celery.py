"""The Celery application. Workers start with `celery -A knowledge_platform worker`
(PYTHONPATH must hold the repository root and platform/, as the Dockerfile sets it)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "knowledge_platform.settings.development")

app = Celery("knowledge_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
