"""Hardening, item 7: production settings pass Django's deployment checklist, secrets come only
from the environment, and API keys are compared in constant time.

tests/core/test_settings.py already runs `check --deploy` on the embedded profile and checks that
production refuses to start without DJANGO_SECRET_KEY; this file adds the production-like
configuration (full profile, S3 storage), keys that are present but insecure, a scan of the
settings files for hard-coded secrets, and the key comparison itself."""

from __future__ import annotations

import ast
import hmac
import math
import re
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path
from unittest import mock

import pytest

from apps.tenants import keys
from apps.tenants.models import ApiKey
from tests.conftest import key_client

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DIR = ROOT / "platform" / "knowledge_platform" / "settings"
WHOAMI = "/api/v1/tenant"  # any key-authenticated endpoint


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py in a clean environment: only what a deployment would set, nothing of this
    machine's (no DATABASE_URL, no DJANGO_* left over from the shell running the tests)."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
    )


def production(tmp_path, **env: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "knowledge_platform.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_KEYS": "k1:" + secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "kp.example.com",
        "PLATFORM_VAR_DIR": str(tmp_path),
        **env,
    }


# --------------------------------------------------------------------------- check --deploy
def test_the_full_production_configuration_passes_check_deploy_with_no_warning(tmp_path):
    """What docker/compose.yaml runs: the full profile (PostgreSQL, Redis, Elasticsearch over
    TLS) with S3 storage. The check does not connect to any of them, so names that resolve
    nowhere are enough."""
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **production(
            tmp_path,
            PLATFORM_PROFILE="full",
            DATABASE_URL="postgres://kp:from-the-environment@db.invalid:5432/kp",
            CELERY_BROKER_URL="redis://redis.invalid:6379/0",
            ELASTICSEARCH_URL="https://es.invalid:9200",
            FILE_STORAGE="s3",
            AWS_STORAGE_BUCKET_NAME="kp-documents",
        ),
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_cannot_be_switched_into_debug_and_keeps_its_https_defaults(tmp_path):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS >= 31536000, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)"
    )
    result = manage("shell", "-c", code, **production(tmp_path, DJANGO_DEBUG="true"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == [
        "False",
        "True",
        "True",
        "True",
        "True",
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
    ]


INSECURE_KEYS = {
    "empty": "",
    "short": "s3cr3t",
    "the development default": "insecure-development-key-do-not-deploy",
    "django's startproject placeholder": "django-insecure-" + secrets.token_urlsafe(50),
    "long but no variety": "ab" * 40,
}


@pytest.mark.parametrize("key", INSECURE_KEYS.values(), ids=INSECURE_KEYS.keys())
def test_production_refuses_to_start_with_an_insecure_secret_key(tmp_path, key):
    result = manage("check", **production(tmp_path, DJANGO_SECRET_KEY=key))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not a production key" in result.stderr, result.stderr
    if key:
        assert key not in result.stderr  # the refusal does not print the key it refused


# --------------------------------------------------------------------------- hard-coded secrets
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE)
# The only secret-looking literals allowed, each for a reason:
ALLOWED = {
    # The test suite's own key, named as such; test settings never serve anyone.
    ("test.py", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"),
    # The development default for the one-command local install; production refuses it (above).
    ("development.py", "insecure-development-key-do-not-deploy"),
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value else None


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def secret_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for every hard-coded value that looks like a secret: a non-empty string
    assigned to a secret-sounding name (a variable, a dict key, a keyword argument), the default
    of an environment variable with such a name, and any long high-entropy token."""
    found = []
    for node in ast.walk(ast.parse(source)):
        pairs: list[tuple[str, ast.AST | None]] = []
        if isinstance(node, ast.Assign):
            pairs += [(_name(target), node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs.append((_name(node.target), node.value))
        elif isinstance(node, ast.Dict):
            pairs += [(_name(k), v) for k, v in zip(node.keys, node.values, strict=True) if k is not None]
        elif isinstance(node, ast.Call):
            pairs += [(kw.arg or "", kw.value) for kw in node.keywords]
            # env.str("NAME", default="…") and env.str("NAME", "…")
            if node.args and _literal(node.args[0]):
                default = next(
                    (kw.value for kw in node.keywords if kw.arg == "default"),
                    node.args[1] if len(node.args) > 1 else None,
                )
                pairs.append((node.args[0].value, default))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if len(value) >= 20 and not re.search(r"[\s./:%{}]", value) and _entropy(value) > 4.0:
                found.append((node.lineno, value))
        for name, value in pairs:
            if SECRET_NAME.search(name) and _literal(value):
                found.append((value.lineno, value.value))
    return sorted(set(found))


def test_the_secret_scanner_finds_what_it_is_meant_to_find():
    """The scan below passes only if it can fail: every kind of hard-coded secret is caught here."""
    source = """
DB_PASSWORD = "hunter2"
SEARCH = {"API_KEY": "abc123"}
client = connect(token="t0k3n")
LLM = env.str("LLM_API_KEY", default="sk-live")
AWS = env.str("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
BLOB = "8f3Kq9ZpX2mWv7RtY4nB6cLd1sGh0JeU"
FINE = env.str("ELASTICSEARCH_PASSWORD", default="")
"""
    assert [value for _, value in secret_literals(source)] == [
        "hunter2",
        "abc123",
        "t0k3n",
        "sk-live",
        "wJalrXUtnFEMI",
        "8f3Kq9ZpX2mWv7RtY4nB6cLd1sGh0JeU",
    ]


def test_settings_files_hold_no_hard_coded_secret():
    files = sorted(SETTINGS_DIR.glob("*.py"))
    assert {f.name for f in files} >= {"base.py", "production.py", "development.py", "test.py"}
    found = [
        f"{path.name}:{line}: {value!r}"
        for path in files
        for line, value in secret_literals(path.read_text())
        if (path.name, value) not in ALLOWED
    ]
    assert not found, "hard-coded secrets; read them from the environment instead:\n" + "\n".join(found)


# --------------------------------------------------------------------------- API keys
@pytest.fixture
def stored_key(acme) -> tuple[str, ApiKey]:
    raw = acme.key()
    return raw, ApiKey.objects.across_tenants().get(prefix=keys.parse_prefix(raw))


@pytest.mark.django_db
def test_a_right_prefix_with_a_wrong_secret_is_refused_by_a_constant_time_comparison(stored_key):
    raw, api_key = stored_key
    forged = raw[:16] + ("A" if raw[16] != "A" else "B") + raw[17:]  # the same prefix, one secret character off
    with mock.patch("apps.tenants.keys.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        response = key_client(forged).get(WHOAMI)
    assert response.status_code == 401 and response.json()["code"] == "api_key_invalid"
    compare.assert_called_once_with(keys.digest(forged), api_key.key_hash)


@pytest.mark.django_db
def test_an_unknown_prefix_costs_the_same_comparison_as_a_known_one(stored_key):
    """Otherwise timing would tell an attacker which prefixes exist."""
    raw, _ = stored_key
    unknown = "kp_" + ("0" * 12 if raw[3:15] != "0" * 12 else "1" * 12) + raw[15:]
    with mock.patch("apps.tenants.keys.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        response = key_client(unknown).get(WHOAMI)
    assert response.status_code == 401 and response.json()["code"] == "api_key_invalid"
    compare.assert_called_once_with(keys.digest(unknown), "0" * 64)


@pytest.mark.django_db
def test_the_right_key_passes_through_the_same_comparison(stored_key):
    raw, api_key = stored_key
    with mock.patch("apps.tenants.keys.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        response = key_client(raw).get(WHOAMI)
    assert response.status_code == 200, response.content
    compare.assert_called_once_with(api_key.key_hash, api_key.key_hash)


def test_no_code_compares_or_looks_up_key_digests_any_other_way():
    """A later `api_key.key_hash == digest(raw)` or `filter(key_hash=…)` would reintroduce an
    early-exit comparison (or an index lookup by secret); the only place is keys.matches()."""
    offenders = []
    for path in sorted((ROOT / "apps").rglob("*.py")):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
                names = {_name(n) for n in [node.left, *node.comparators]} | {
                    _name(n.func) for n in [node.left, *node.comparators] if isinstance(n, ast.Call)
                }
                if names & {"key_hash", "digest", "hexdigest", "stored_digest"}:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: == on a digest")
            if (
                isinstance(node, ast.Call)
                and _name(node.func) in {"filter", "get", "exclude", "first"}
                and any((kw.arg or "").startswith("key_hash") for kw in node.keywords)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: a lookup by key digest")
    assert not offenders, "\n".join(offenders)
