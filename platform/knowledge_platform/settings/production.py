"""Production: everything secret or host-specific comes from the environment, nothing defaults.

`DJANGO_SECRET_KEY=... DJANGO_ALLOWED_HOSTS=... manage.py check --deploy` passes with no issue
(tests/core/test_settings.py runs it).
"""

from django.core.checks.security.base import (
    SECRET_KEY_INSECURE_PREFIX,
    SECRET_KEY_MIN_LENGTH,
    SECRET_KEY_MIN_UNIQUE_CHARACTERS,
)
from django.core.exceptions import ImproperlyConfigured

from apps.audit.keys import parse_ring

from .base import *  # noqa: F403
from .base import AUDIT, env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# A key `check --deploy` would call insecure (security.W009: short, little variety, Django's
# "django-insecure-" placeholder, or development.py's default) stops start-up: the key signs
# sessions and CSRF tokens, and a warning nobody runs the check to see protects nothing.
if (
    len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
    or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
    or SECRET_KEY.startswith(SECRET_KEY_INSECURE_PREFIX)
):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is not a production key: use at least {SECRET_KEY_MIN_LENGTH} random characters, "
        "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# The audit chain's keys must come from the environment, never from a default (apps/audit/keys.py):
# a known key would let anyone who can write to the database re-key an edited chain.
AUDIT["KEYS"] = env.str("AUDIT_KEYS")
parse_ring(AUDIT["KEYS"])  # a malformed or weak ring stops start-up, with the reason

# TLS is terminated by the proxy in front of the app, which sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Health probes come over plain HTTP from inside the cluster.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
