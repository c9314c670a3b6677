"""Readiness checks: each dependency answers with its own status, so an operator sees which one
is down. Each check is bounded in time; none raises. The database and the broker are checked
here; the apps above register their own dependency (search registers its engine in ready())."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from celery import current_app as celery_app
from django.conf import settings
from django.db import connection

OK = "ok"
ERROR = "error"


@dataclass(frozen=True)
class CheckResult:
    status: str
    detail: str
    latency_ms: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def _timed(check: Callable[[], str]) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check()
        status = OK
    except Exception as exc:  # a readiness probe reports failures, it never raises them
        detail, status = f"{type(exc).__name__}: {exc}", ERROR
    return CheckResult(status, detail, round((time.perf_counter() - started) * 1000, 1))


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return f"{connection.vendor} ({connection.settings_dict['NAME']})"


def _broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "eager: tasks run in-process, no broker needed"
    with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.CELERY_BROKER_CONNECTION_TIMEOUT)
        # ensure_connection alone is lazy on some transports: a channel makes a real round trip.
        _ = conn.default_channel
    return f"{conn.transport_cls} broker reachable"


_checks: dict[str, Callable[[], str]] = {"database": _database, "broker": _broker}


def register(name: str, check: Callable[[], str]) -> None:
    """Add a dependency to the readiness report: `check` returns a one-line description of a
    healthy dependency and raises otherwise."""
    _checks[name] = check


def readiness() -> dict[str, CheckResult]:
    return {name: _timed(check) for name, check in _checks.items()}
