"""The bounded load test (loadtest/run.py: locust against gunicorn and a Celery worker), short, on
the full profile, in a database and index of its own: no request fails, and the audit chain
verifies afterwards. The published figures come from a longer run (bash bin/loadtest)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.full_profile]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_database():
    import psycopg

    db = settings.DATABASES["default"]
    name = f"kp_load_{uuid.uuid4().hex[:8]}"
    admin = {
        "host": db["HOST"],
        "port": db["PORT"],
        "user": db["USER"],
        "password": db["PASSWORD"],
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{name}"
    with psycopg.connect(**admin) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_search_and_ask_under_load_without_errors_and_the_audit_chain_verifies(scratch_database, tmp_path, settings):
    from apps.search.backends import get_search_backend, reset_search_backends

    prefix = f"kp-test-load-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": scratch_database,
        "ELASTICSEARCH_INDEX_PREFIX": prefix,
        "MEDIA_ROOT": str(tmp_path / "media"),
        "CELERY_TASK_DEFAULT_QUEUE": prefix,
        "PLATFORM_VAR_DIR": str(tmp_path),
    }
    report = tmp_path / "load.md"
    try:
        result = subprocess.run(
            [
                sys.executable,
                "loadtest/run.py",
                "--users",
                "4",
                "--duration",
                "20",
                "--port",
                str(18000 + os.getpid() % 1000),
                "--output",
                str(report),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        settings.SEARCH = {
            **settings.SEARCH,
            "ELASTICSEARCH": {**settings.SEARCH["ELASTICSEARCH"], "INDEX_PREFIX": prefix},
        }
        reset_search_backends()
        get_search_backend().drop()
        reset_search_backends()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = report.read_text()
    assert ", 0 errors.**" in text and "Audit chain after the load: verified" in text, text
    requests = int(text.split("**")[1].split(" requests")[0])
    assert requests >= 10, text  # the run did put load on the server
