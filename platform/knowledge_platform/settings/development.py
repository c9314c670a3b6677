"""Local development and the embedded one-command install: debug on, a throw-away secret key."""

from .base import *  # noqa: F403
from .base import AUDIT, VAR_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Never used in production: production.py requires DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="insecure-development-key-do-not-deploy")
# The audit chain's key ring (apps/audit/keys.py); production.py requires AUDIT_KEYS.
AUDIT["KEYS"] = AUDIT["KEYS"] or "dev:insecure-development-audit-key-do-not-deploy"
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

VAR_DIR.mkdir(parents=True, exist_ok=True)
