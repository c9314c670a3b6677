"""Settings shared by every environment, read from environment variables.

Two profiles share one code path (docs/architecture.md):

* ``embedded`` (the default): SQLite, the embedded search backend, Celery tasks run eagerly
  in-process. Nothing to install or start.
* ``full``: PostgreSQL, Redis as the Celery broker, Elasticsearch. Every service is named by an
  environment variable; a missing one stops start-up with a message naming it.

Every variable is listed in the README's table.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = Path(environ.Env().str("PLATFORM_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

PROFILE_EMBEDDED = "embedded"
PROFILE_FULL = "full"
PLATFORM_PROFILE = env.str("PLATFORM_PROFILE", default=PROFILE_EMBEDDED)
if PLATFORM_PROFILE not in (PROFILE_EMBEDDED, PROFILE_FULL):
    raise ImproperlyConfigured(f"PLATFORM_PROFILE={PLATFORM_PROFILE!r}: use 'embedded' (the default) or 'full'.")

if PLATFORM_PROFILE == PROFILE_FULL:
    _missing = [
        name for name in ("DATABASE_URL", "CELERY_BROKER_URL", "ELASTICSEARCH_URL") if not env.str(name, default="")
    ]
    if _missing:
        raise ImproperlyConfigured(
            "The full profile needs " + ", ".join(_missing) + " (see the README's table of "
            "environment variables; `bash bin/services env` prints them for local services)."
        )

# --------------------------------------------------------------------------- core
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "guardian",
    "drf_spectacular",
    "apps.core",
    "apps.tenants",
    "apps.search",
    "apps.documents",
    "apps.access",
    "apps.provisioning",
    "apps.corpus",
    "apps.ingestion",
    "apps.answers",
    "apps.audit",
    "apps.evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "knowledge_platform.urls"
WSGI_APPLICATION = "knowledge_platform.wsgi.application"
ASGI_APPLICATION = "knowledge_platform.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --------------------------------------------------------------------------- database
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'knowledge_platform.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env.bool(
    "DATABASE_PREPARED_STATEMENTS", default=True
):
    # Parameters bound by the server, and a statement sent more than five times on a connection
    # prepared there (psycopg's automatic preparation): the key, member and group look-ups and the
    # audit's statements of every request are parsed and planned once per connection, not per
    # request (0.1-0.3 ms of planning each). A /search measured 2.3 ms faster at p50, servers side
    # by side (docs/benchmarks/throughput-profile.md). A statement whose result columns a migration
    # changed is prepared again (apps/core/db.py). Off behind a pooler that cannot keep prepared
    # statements (PgBouncer in transaction mode without max_prepared_statements). Options given in
    # DATABASE_URL's query string win.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# PostgreSQL roles other than the one in DATABASE_URL (which migrates and owns the tables); see
# docs/audit.md, "Database privileges". After every migrate the APP role is granted what the
# application needs (apps/audit/database_roles.py): no UPDATE or DELETE on the audit trail. The
# AUDIT_PURGER role is handed the audit purge function, the only way to delete audit rows. Unset
# (development, SQLite): nothing is granted and the migrating role keeps the function.
DATABASE_ROLES = {
    "APP": env.str("DATABASE_APP_ROLE", default=None),
    "AUDIT_PURGER": env.str("AUDIT_PURGE_ROLE", default=None),
}

# --------------------------------------------------------------------------- auth
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# guardian's anonymous user is not used: every request is tied to a tenant member or an API key.
ANONYMOUS_USER_NAME = None

# --------------------------------------------------------------------------- i18n, static
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Uploaded documents go through Django's storage API: local files by default, any S3-compatible
# store with FILE_STORAGE=s3 (django-storages; AWS_* variables, see the README).
FILE_STORAGE = env.str("FILE_STORAGE", default="local")


def _s3_storage(bucket_name: str, **options) -> dict:
    """An S3-compatible bucket through django-storages, with the AWS_* credentials; it never
    overwrites an object (a name already taken gets a fresh one)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket_name,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
            "default_acl": None,
            "file_overwrite": False,
            **options,
        },
    }


if FILE_STORAGE == "s3":
    _default_storage = _s3_storage(env.str("AWS_STORAGE_BUCKET_NAME"))
elif FILE_STORAGE == "local":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise ImproperlyConfigured(f"FILE_STORAGE={FILE_STORAGE!r}: use 'local' or 's3'.")
# Signed checkpoints of the audit chain heads go outside the database: a directory, or a bucket of
# an S3-compatible store (the AWS_* credentials above; give it Object Lock to make it write-once
# for everybody, not only for the platform, which never overwrites or deletes a checkpoint).
AUDIT_CHECKPOINT_STORAGE = env.str("AUDIT_CHECKPOINT_STORAGE", default="local")
if AUDIT_CHECKPOINT_STORAGE == "s3":
    _checkpoint_storage = _s3_storage(
        env.str("AUDIT_CHECKPOINT_BUCKET"), location=env.str("AUDIT_CHECKPOINT_PREFIX", default="audit-checkpoints")
    )
elif AUDIT_CHECKPOINT_STORAGE == "local":
    _checkpoint_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": env.str("AUDIT_CHECKPOINT_DIR", default=str(VAR_DIR / "audit-checkpoints")),
            "file_permissions_mode": 0o444,
            "base_url": None,
        },
    }
else:
    raise ImproperlyConfigured(f"AUDIT_CHECKPOINT_STORAGE={AUDIT_CHECKPOINT_STORAGE!r}: use 'local' or 's3'.")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "audit_checkpoints": _checkpoint_storage,
}
# Uploads above this size are refused with 413 before anything is stored.
DOCUMENT_MAX_UPLOAD_BYTES = env.int("DOCUMENT_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# --------------------------------------------------------------------------- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The first class names the 401 challenge (WWW-Authenticate: Api-Key).
        "apps.tenants.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        # Basic, with failed attempts limited per client IP and per username (BASIC_AUTH_FAILURES_PER_MINUTE).
        "apps.tenants.authentication.ThrottledBasicAuthentication",
    ],
    # Every endpoint is tenant-scoped unless it says otherwise (health, schema): security by
    # construction, no view can forget to resolve the tenant.
    "DEFAULT_PERMISSION_CLASSES": ["apps.tenants.permissions.TenantPermission"],
    # DRF's JSON parser, refusing too-deep nesting and lone surrogates with a 400 (apps/core/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Per key (or member) and per tenant; rates in API_THROTTLE_RATES below.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.throttling.TenantScopedThrottle"],
    # Proxies in front of the app (X-Forwarded-For entries to trust) for the client IP of the
    # Basic-auth failure limit; unset, DRF reads the whole X-Forwarded-For header, or REMOTE_ADDR.
    "NUM_PROXIES": env.int("API_NUM_PROXIES", default=None),
    "DEFAULT_PAGINATION_CLASS": "apps.core.pagination.Pagination",  # at most 500 per page, strict limit/offset
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.exception_handler.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Knowledge platform API",
    "DESCRIPTION": (
        "Multi-tenant, access-controlled retrieval-augmented answering. Authenticate with "
        "`Authorization: Api-Key <key>`, or as a user with the `X-Tenant` header naming the tenant."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs are public: they describe the API, they hold no tenant data.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice fields are called "status" (a health check's, a review's): name them apart.
    "ENUM_NAME_OVERRIDES": {"HealthStatusEnum": ["ok", "error"], "ReviewStatusEnum": ["reviewed", "flagged"]},
    # drf-spectacular's own enum hook, then ?limit=/?offset= on every operation that answers a page.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.pagination_parameters",
    ],
}

# --------------------------------------------------------------------------- Celery
if PLATFORM_PROFILE == PROFILE_FULL:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
    CELERY_TASK_ALWAYS_EAGER = False
else:
    # Embedded: tasks run in-process at call time, so nothing else needs to run.
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="memory://")
    CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
# A task is acknowledged when it finished, so a worker killed mid-task hands it to another.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=3.0)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A request that queues a task must not hang on a broker that is down: one quick retry, then
# apps.core.queue.enqueue logs it and the sweeps below make it good once the broker is back.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# `celery beat` (docker/compose.yaml runs one; or `worker -B`).
CELERY_BEAT_SCHEDULE = {
    "requeue-stalled-ingestion": {"task": "ingestion.requeue_stalled", "schedule": 60.0},
    "reconcile-search-index": {
        "task": "search.reconcile",
        "schedule": env.float("SEARCH_RECONCILE_EVERY", default=900.0),
    },
    "audit-retention": {"task": "audit.purge_expired", "schedule": 24 * 3600.0},
    "audit-checkpoint": {"task": "audit.checkpoint", "schedule": env.float("AUDIT_CHECKPOINT_EVERY", default=300.0)},
}
INGESTION = {
    # Seconds before the sweep re-sends a version still pending (its task never reached a worker)
    # or still processing (its worker died; longer than any retry back-off of a live task).
    "REQUEUE_PENDING_AFTER": env.int("INGESTION_REQUEUE_PENDING_AFTER", default=120),
    "REQUEUE_PROCESSING_AFTER": env.int("INGESTION_REQUEUE_PROCESSING_AFTER", default=1800),
    # Embed every section's sentences at ingestion, for the extractive generator (which otherwise
    # encodes its context's sentences on every ask). Off saves that ingestion time where answers
    # come from a chat model, or not at all.
    "SENTENCE_VECTORS": env.bool("INGEST_SENTENCE_VECTORS", default=True),
}

# --------------------------------------------------------------------------- search
SEARCH_BACKEND = env.str(
    "SEARCH_BACKEND",
    default="elasticsearch" if PLATFORM_PROFILE == PROFILE_FULL else "embedded",
)
SEARCH = {
    "EMBEDDED": {
        # Its own SQLite file, whatever the main database is: FTS5 + NumPy over stored vectors.
        "PATH": env.str("EMBEDDED_SEARCH_PATH", default=str(VAR_DIR / "search.sqlite3")),
    },
    "ELASTICSEARCH": {
        "URL": env.str("ELASTICSEARCH_URL", default="http://127.0.0.1:9200"),
        "USERNAME": env.str("ELASTICSEARCH_USERNAME", default=""),
        "PASSWORD": env.str("ELASTICSEARCH_PASSWORD", default=""),
        "API_KEY": env.str("ELASTICSEARCH_API_KEY", default=""),
        "CA_CERTS": env.str("ELASTICSEARCH_CA_CERTS", default=""),
        "VERIFY_CERTS": env.bool("ELASTICSEARCH_VERIFY_CERTS", default=True),
        "REQUEST_TIMEOUT": env.float("ELASTICSEARCH_REQUEST_TIMEOUT", default=10.0),
        "INDEX_PREFIX": env.str("ELASTICSEARCH_INDEX_PREFIX", default="kp"),
        "INT8": env.bool("ELASTICSEARCH_INT8_HNSW", default=False),  # int8-quantised HNSW vectors
        # Per tenant index (each tenant has its own: docs/search.md, "Tenant-isolated scoring").
        "SHARDS": env.int("ELASTICSEARCH_SHARDS", default=1),
        "REPLICAS": env.int("ELASTICSEARCH_REPLICAS", default=0),
    },
}

# --------------------------------------------------------------------------- embeddings
EMBEDDING = {
    # A sentence-transformers model folder; empty means all-MiniLM-L6-v2 from its PyPI package.
    "MODEL_PATH": env.str("EMBEDDING_MODEL_PATH", default=""),
    "BATCH_SIZE": env.int("EMBEDDING_BATCH_SIZE", default=32),
    "MAX_SEQ_LENGTH": env.int("EMBEDDING_MAX_SEQ_LENGTH", default=None),
    # Embed each chunk as "document title + chunk text": a chunk from the middle of a document
    # keeps what it is about (+0.011 dense nDCG@10 on Cranfield, docs/evaluation.md).
    "WITH_TITLE": env.bool("EMBEDDING_WITH_TITLE", default=True),
    # Torch's intra-op threads per process; 0 shares the machine's cores among the processes that
    # serve side by side (SERVING_PROCESSES, set by gunicorn.conf.py and the Celery worker), so
    # three gunicorn workers on two cores do not run six spinning threads (docs/benchmarks/throughput.md).
    "THREADS": env.int("EMBEDDING_THREADS", default=0),
    # What encodes a request's few short texts (the query, an answer's missing sentences):
    # "onnx", the same weights on ONNX Runtime, exported at install time (manage.py
    # export_query_encoder, run by bin/venv and the image), about half torch's time per query and
    # within cosine 0.999 of its vectors (checked at export); or "torch". Ingestion's batches stay
    # on torch, faster there (docs/benchmarks/throughput-profile.md).
    "QUERY_RUNTIME": env.str("EMBEDDING_QUERY_RUNTIME", default="onnx"),
    # Query vectors kept per serving process for the caller who asked (apps/answers/query_vectors.py),
    # in one LRU of this many entries per tenant (~1.7 KiB each): a repeated query skips the encoder;
    # never served to another caller, never evicted by another tenant. 0 turns it off.
    "QUERY_CACHE_SIZE": env.int("EMBEDDING_QUERY_CACHE_SIZE", default=256),
    # Where the exported encoder lives, one file per model, weights and length; empty: beside the
    # installed packages (<sys.prefix>/share/knowledge-platform/models).
    "ONNX_DIR": env.str("EMBEDDING_ONNX_DIR", default=""),
}

# --------------------------------------------------------------------------- answers
ANSWERS = {
    # "extractive" (offline, the default) or "openai": any OpenAI-compatible chat endpoint.
    "GENERATOR": env.str("ANSWER_GENERATOR", default="extractive"),
    "LLM_BASE_URL": env.str("LLM_BASE_URL", default=""),
    "LLM_MODEL": env.str("LLM_MODEL", default=""),
    "LLM_API_KEY": env.str("LLM_API_KEY", default=""),
    "LLM_TIMEOUT": env.float("LLM_TIMEOUT", default=30.0),
    # A sentence-transformers CrossEncoder folder; empty: re-ranking is off (nothing is downloaded).
    "RERANK_MODEL_PATH": env.str("RERANK_MODEL_PATH", default=""),
    "RERANK_DEPTH": env.int("RERANK_DEPTH", default=30),  # fused candidates the cross-encoder re-orders
    # Pseudo-relevance feedback (feedback=true): the query vector becomes
    # weight · query + (1 − weight) · mean(best chunk of each of the first N documents).
    "FEEDBACK_DOCUMENTS": env.int("FEEDBACK_DOCUMENTS", default=5),
    "FEEDBACK_QUERY_WEIGHT": env.float("FEEDBACK_QUERY_WEIGHT", default=0.5),
    # The extractive generator answers only from sentences at least this similar to the question.
    "MIN_SIMILARITY": env.float("ANSWER_MIN_SIMILARITY", default=0.35),
    "MAX_SENTENCES": env.int("ANSWER_MAX_SENTENCES", default=3),
    "CONTEXT_TOKENS": env.int("ANSWER_CONTEXT_TOKENS", default=1500),
    "MAX_QUERY_CHARS": env.int("ANSWER_MAX_QUERY_CHARS", default=1000),
}
if ANSWERS["FEEDBACK_DOCUMENTS"] < 1 or not 0.0 <= ANSWERS["FEEDBACK_QUERY_WEIGHT"] <= 1.0:
    raise ImproperlyConfigured("FEEDBACK_DOCUMENTS must be at least 1 and FEEDBACK_QUERY_WEIGHT between 0 and 1.")

# --------------------------------------------------------------------------- audit
AUDIT = {
    # Records older than this are removed by `manage.py audit_purge_expired`; empty keeps them forever.
    "RETENTION_DAYS": env.int("AUDIT_RETENTION_DAYS", default=None),
    # The key ring of the chain (apps/audit/keys.py): "key_id:secret,…", the current key first.
    # development.py and test.py give fixed keys; production.py refuses to start without it.
    "KEYS": env.str("AUDIT_KEYS", default=""),
}

# --------------------------------------------------------------------------- throttling
# Requests per key (or per signed-in member) and per tenant; DRF's rate syntax ("120/min").
API_THROTTLE_RATES = {
    "caller": env.str("API_THROTTLE_CALLER", default="600/min"),
    "tenant": env.str("API_THROTTLE_TENANT", default="3000/min"),
}
# Failed Basic-auth logins allowed per client IP and per username each minute; then 429 until it ends.
BASIC_AUTH_FAILURES_PER_MINUTE = env.int("BASIC_AUTH_FAILURES_PER_MINUTE", default=10)
# Counters every process that serves the API must share (the Basic-auth failure counts; the rate
# limits' windows below): the full profile keeps them in Redis (the broker's server, database 1)
# unless CACHE_URL names another cache.
_default_cache = "locmemcache://"
if PLATFORM_PROFILE == PROFILE_FULL and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    _default_cache = CELERY_BROKER_URL.rsplit("/", 1)[0] + "/1"
_cache_url = env.str("CACHE_URL", default=_default_cache)
CACHES = {"default": env.cache_url_config(_cache_url)}
# Where the API's rate-limit windows live: a `limits` storage URI (redis://, rediss://, memcached://,
# memory://). The cache's Redis URL when the cache is Redis (its query string, timeouts and TLS
# options included), else this process's memory: right for runserver's one process, per process
# under gunicorn (each worker then allows the full rate; point it at a shared store there).
API_THROTTLE_STORAGE = env.str(
    "API_THROTTLE_STORAGE", default=_cache_url if _cache_url.startswith(("redis://", "rediss://")) else "memory://"
)

# --------------------------------------------------------------------------- logging
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"elastic_transport": {"level": "WARNING"}},
}
