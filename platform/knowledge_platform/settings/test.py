"""The test suite: the profile still comes from PLATFORM_PROFILE (bin/test runs both)."""

import tempfile
from pathlib import Path

from .base import *  # noqa: F403
from .base import AUDIT, DATABASES, SEARCH, env

DEBUG = False
SECRET_KEY = "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# Live-server threads must not keep connections open, or the test database cannot be dropped.
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; tests' own users

_TEST_VAR = Path(tempfile.mkdtemp(prefix="kp-test-"))
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(_TEST_VAR / "media")))  # a test worker shares the test's
STATIC_ROOT = _TEST_VAR / "staticfiles"
STATIC_ROOT.mkdir()
SEARCH["EMBEDDED"]["PATH"] = str(_TEST_VAR / "search.sqlite3")
# Indices created by tests never collide with a developer's own.
SEARCH["ELASTICSEARCH"]["INDEX_PREFIX"] = env.str("ELASTICSEARCH_INDEX_PREFIX", default="kp-test")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Every test gets a directory of its own (tests/conftest.py), like its search index.
    "audit_checkpoints": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(_TEST_VAR / "audit-checkpoints")},
    },
}
# A test worker process must key and sign with the same ring as the test itself.
AUDIT["KEYS"] = env.str("AUDIT_KEYS", default="test:test-only-audit-key-0123456789-abcdefghijklmnop")
# Throttling has tests of its own (tests/answers/test_throttling.py, which lower these and take the
# real Redis on the full profile, under a key prefix of their own); elsewhere a suite's worth of
# requests must not trip a limit, and counters stay in this process, never in a shared Redis.
API_THROTTLE_RATES = {"caller": "100000/min", "tenant": "100000/min"}
API_THROTTLE_STORAGE = "memory://"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
