"""Settings come from the environment; production passes Django's deployment checklist."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE_VARIABLES = ("PLATFORM_PROFILE", "DATABASE_URL", "CELERY_BROKER_URL", "ELASTICSEARCH_URL", "SEARCH_BACKEND")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in PROFILE_VARIABLES and not k.startswith("DJANGO_")}
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
    result = manage("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"), PLATFORM_VAR_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "/api/v1/groups" in (tmp_path / "schema.yaml").read_text()
