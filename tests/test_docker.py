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
SECRETS = {"DJANGO_SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "p", "ELASTIC_PASSWORD": "e"}


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
    assert {"postgres-data", "redis-data", "es-data", "media"} <= config["volumes"].keys()
    assert services["web"]["environment"]["PLATFORM_PROFILE"] == "full"


def test_secrets_are_required_from_the_environment():
    result = compose("config", DJANGO_SECRET_KEY="k" * 50)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
