"""Settings come from the environment; production passes Django's deployment checklist."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRINT_DATABASE_OPTIONS = (
    "import json; from django.conf import settings; print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
)
PROFILE_VARIABLES = ("PLATFORM_PROFILE", "DATABASE_URL", "CELERY_BROKER_URL", "ELASTICSEARCH_URL", "SEARCH_BACKEND")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES and not k.startswith(("DJANGO_", "AUDIT_"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, env={**base, **env}, timeout=120
    )


def test_production_passes_check_deploy_with_a_secret_key_and_allowed_hosts(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="knowledge_platform.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_KEYS="k1:" + secrets.token_urlsafe(32),
        DJANGO_ALLOWED_HOSTS="kp.example.com",
        PLATFORM_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues" in result.stdout


def test_production_without_a_secret_key_refuses_to_start(tmp_path):
    result = manage(
        "check",
        DJANGO_SETTINGS_MODULE="knowledge_platform.settings.production",
        DJANGO_ALLOWED_HOSTS="kp.example.com",
        PLATFORM_VAR_DIR=str(tmp_path),
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("keys", [None, "k1:short", "k1:" + "x" * 40 + ",k1:" + "y" * 40])
def test_production_without_a_strong_audit_key_ring_refuses_to_start(tmp_path, keys):
    """The audit chain is keyed from the environment only: no default, no weak or ambiguous ring."""
    env = {"AUDIT_KEYS": keys} if keys is not None else {}
    result = manage(
        "check",
        DJANGO_SETTINGS_MODULE="knowledge_platform.settings.production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="kp.example.com",
        PLATFORM_VAR_DIR=str(tmp_path),
        **env,
    )
    assert result.returncode != 0
    assert "AUDIT_KEYS" in result.stderr


def test_the_full_profile_names_every_missing_variable(tmp_path):
    result = manage("check", PLATFORM_PROFILE="full", DATABASE_URL="sqlite:///x.db", PLATFORM_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "CELERY_BROKER_URL, ELASTICSEARCH_URL" in result.stderr
    assert "DATABASE_URL" not in result.stderr.split("needs")[-1]


def test_an_unknown_profile_is_refused(tmp_path):
    result = manage("check", PLATFORM_PROFILE="cloud", PLATFORM_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "use 'embedded'" in result.stderr


def test_the_embedded_default_needs_nothing(tmp_path):
    result = manage("check", PLATFORM_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr


def test_the_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    result = manage(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(tmp_path / "schema.yaml"),
        PLATFORM_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "/api/v1/groups" in (tmp_path / "schema.yaml").read_text()


def test_s3_compatible_storage_is_configured_from_the_environment(tmp_path):
    """No S3 service runs here: this checks the wiring (django-storages' S3 backend with the
    endpoint, bucket and credentials from the environment), not an upload."""
    code = (
        "from django.core.files.storage import storages; s = storages['default']; "
        "print(type(s).__name__, s.bucket_name, s.endpoint_url)"
    )
    result = manage(
        "shell",
        "-c",
        code,
        FILE_STORAGE="s3",
        AWS_STORAGE_BUCKET_NAME="kp-documents",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9000",
        AWS_ACCESS_KEY_ID="id",
        AWS_SECRET_ACCESS_KEY="secret",
        PLATFORM_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["S3Storage", "kp-documents", "http://127.0.0.1:9000"]


def test_an_unknown_storage_is_refused(tmp_path):
    result = manage("check", FILE_STORAGE="ftp", PLATFORM_VAR_DIR=str(tmp_path))
    assert result.returncode != 0 and "use 'local' or 's3'" in result.stderr


@pytest.mark.parametrize(
    ("switch", "options"),
    [
        ({}, {"server_side_binding": True, "prepare_threshold": 5}),
        ({"DATABASE_PREPARED_STATEMENTS": "false"}, {}),
    ],
)
def test_on_postgresql_the_server_binds_parameters_and_prepares_statements_unless_switched_off(
    tmp_path, switch, options
):
    """On by default (settings/base.py, measured in docs/benchmarks/throughput-profile.md); off for
    a pooler that cannot keep prepared statements. No database is reached: the settings only."""
    result = manage(
        "shell",
        "-c",
        PRINT_DATABASE_OPTIONS,
        DATABASE_URL="postgres://kp:secret@127.0.0.1:5432/kp",
        PLATFORM_VAR_DIR=str(tmp_path),
        **switch,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == options


def test_sqlite_gets_no_postgresql_options(tmp_path):
    result = manage(
        "shell",
        "-c",
        PRINT_DATABASE_OPTIONS,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        PLATFORM_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "server_side_binding" not in json.loads(result.stdout.strip().splitlines()[-1])
