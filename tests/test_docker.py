"""docker/ cannot be run here (no Docker engine), but its compose file is validated by Debian's
docker-compose, and it must describe the whole full stack with health checks."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"
SECRETS = {
    "DJANGO_SECRET_KEY": "k" * 50,
    "AUDIT_KEYS": "k1:" + "s" * 40,
    "POSTGRES_PASSWORD": "p",
    "POSTGRES_APP_PASSWORD": "a",
    "ELASTIC_PASSWORD": "e",
}


def compose(*args: str, **env: str) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        if IN_CI:
            pytest.fail("docker-compose is missing: bin/test installs Debian's docker-compose package")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), *args], capture_output=True, text=True, env={**base, **env}, timeout=60
    )


def test_the_compose_file_validates():
    result = compose("config", **SECRETS)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"postgres", "redis", "elasticsearch", "web", "worker", "beat"} <= services.keys()
    for name in ("postgres", "redis", "elasticsearch", "web", "worker", "beat"):
        assert "healthcheck" in services[name], name
    assert {"postgres-data", "redis-data", "es-data", "media", "audit-checkpoints"} <= config["volumes"].keys()
    assert services["web"]["environment"]["PLATFORM_PROFILE"] == "full"


def test_migrate_connects_as_the_owner_and_everything_else_as_the_application_role():
    """docs/audit.md, "Database privileges": only migrate may change the schema or the grants."""
    services = yaml.safe_load(compose("config", **SECRETS).stdout)["services"]
    migrate = services["migrate"]["environment"]
    assert migrate["DATABASE_URL"].startswith("postgres://knowledge_platform:p@")
    assert migrate["DATABASE_APP_ROLE"] == "knowledge_platform_app"
    assert migrate["AUDIT_PURGE_ROLE"] == "knowledge_platform_audit_purger"
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgres://knowledge_platform_app:a@"), name
    init = (ROOT / "docker" / "postgres-init" / "10-roles.sh").read_text()
    assert "CREATE ROLE knowledge_platform_app LOGIN" in init and "knowledge_platform_audit_purger NOLOGIN" in init


def test_secrets_are_required_from_the_environment():
    result = compose("config", DJANGO_SECRET_KEY="k" * 50)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    result = compose("config", **{k: v for k, v in SECRETS.items() if k != "AUDIT_KEYS"})
    assert result.returncode != 0 and "AUDIT_KEYS" in result.stderr
    result = compose("config", **{k: v for k, v in SECRETS.items() if k != "POSTGRES_APP_PASSWORD"})
    assert result.returncode != 0
    assert "POSTGRES_APP_PASSWORD" in result.stderr
