"""Sending tasks to the broker without letting a broker outage break the request that sent them.

The work a task stands for is always recorded in the database first (a pending version, a changed
document); the task only says "do it now". So when Redis is down, the request still succeeds, the
failure is logged, and the periodic sweeps (CELERY_BEAT_SCHEDULE: re-queue stalled ingestion,
reconcile the index) pick the work up once the broker is back."""

from __future__ import annotations

import logging

from kombu.exceptions import OperationalError as BrokerUnavailable

log = logging.getLogger(__name__)


def enqueue(task, *args) -> bool:
    """`task.delay(*args)`; False (and a warning) when the broker cannot be reached."""
    try:
        task.delay(*args)
    except BrokerUnavailable as exc:
        log.warning("broker unavailable, %s%r left to the periodic sweep: %s", task.name, args, exc)
        return False
    return True
