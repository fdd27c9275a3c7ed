"""HyperInfer settings, driven by environment variables (each documented in README.md).

With no variables set, the project runs whole on one machine (the embedded default):
SQLite, in-process cache, Celery tasks run in-process.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, metrics_dir, usd_to_micro

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Environment and security -------------------------------------------------------------
HYPERINFER_ENV = env_str("HYPERINFER_ENV", "development")
if HYPERINFER_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured("HYPERINFER_ENV must be development, production or test")
IS_PRODUCTION = HYPERINFER_ENV == "production"

_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", _DEV_SECRET_KEY)
DEBUG = env_bool("DEBUG", not IS_PRODUCTION)


def _is_insecure_secret_key(key: str) -> bool:
    # The same bar as Django's security.W009 check.
    return key.startswith("django-insecure-") or len(key) < 50 or len(set(key)) < 5


if IS_PRODUCTION:
    if _is_insecure_secret_key(SECRET_KEY):
        raise ImproperlyConfigured(
            "Refusing to start in production with an insecure SECRET_KEY: set SECRET_KEY to a random "
            "string of at least 50 characters."
        )
    if DEBUG:
        raise ImproperlyConfigured("Refusing to start in production with DEBUG on: set DEBUG=false.")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", [] if IS_PRODUCTION else ["127.0.0.1", "localhost", "[::1]", "testserver"]
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Shared secret for internal endpoints (POST /api/v1/playground-keys).
INTERNAL_TOKEN = env_str("INTERNAL_TOKEN", "")
if IS_PRODUCTION and len(INTERNAL_TOKEN) < 32:
    raise ImproperlyConfigured(
        "Set INTERNAL_TOKEN to a random string of at least 32 characters in production."
    )

if IS_PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    # Browsers keep to HTTPS for a year once they have seen the site over it (sent on HTTPS responses only).
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- Applications -------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",  # makes `manage.py runserver` serve config.asgi:application
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "console",
    "billing",
    "catalog",
    "gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.csp.ContentSecurityPolicyMiddleware",
    "console.middleware.CurrentWorkspaceMiddleware",
]

if IS_PRODUCTION:
    # Serves `collectstatic` output; in development runserver serves static files itself.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.workspaces",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "")
# PostgreSQL through a psycopg connection pool per process (DB_POOL, on by default): a worker thread takes a
# connection for one piece of ORM work and gives it back (gateway/http.py in_thread), so a process holds at
# most DB_POOL_MAX_SIZE connections whatever its threads do; docs/scaling.md sizes it. Without the pool, a
# connection per thread is kept open DB_CONN_MAX_AGE seconds.
DB_POOL = bool(DATABASE_URL) and env_bool("DB_POOL", True)
if DATABASE_URL:
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL, conn_max_age=0 if DB_POOL else env_int("DB_CONN_MAX_AGE", 60)
        )
    }
    # A PostgreSQL that stops answering (a partition, a stuck host) fails a connection in seconds rather than
    # hanging a thread on it for the kernel's minutes: libpq's timeout for a new connection, and for an open
    # one, unacknowledged data and keepalives (gateway/outage.py copes with a server that acknowledges and
    # never answers). Options in DATABASE_URL's query win.
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5),
        "tcp_user_timeout": env_int("DB_TCP_USER_TIMEOUT_MS", 10_000),
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        **DATABASES["default"].get("OPTIONS", {}),
    }
    if DB_POOL:
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": env_int("DB_POOL_MIN_SIZE", 2),
            "max_size": env_int("DB_POOL_MAX_SIZE", 10),
            "timeout": env_int("DB_POOL_TIMEOUT", 10),  # seconds to wait for a free connection
        }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # Writers wait for each other instead of failing with "database is locked"; WAL lets readers
            # (the gateway's key and catalog lookups) proceed while a settlement writes.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            # A file, not shared memory: the gateway's worker threads then lock as production does.
            # One per process, so that parallel test runs do not share it.
            "TEST": {"NAME": str(Path(tempfile.gettempdir()) / f"hyperinfer-test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, Celery ------------------------------------------------------------------------
# No channel layer: Channels serves only as config/asgi.py's ProtocolTypeRouter (no consumers, no groups).
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
# Without a broker, tasks run in-process (the embedded default).
CELERY_TASK_ALWAYS_EAGER = env_bool(
    "CELERY_TASK_ALWAYS_EAGER", not (REDIS_URL or env_str("CELERY_BROKER_URL"))
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "hyperinfer")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
# Where the Redis meter keeps its mirror, holds and queues (ADR 0017): REDIS_URL unless set apart; with
# METER_REDIS_CLUSTER, a Redis Cluster (the URL names any node) — the cache and Celery stay on REDIS_URL,
# which must be a plain Redis (neither supports a cluster).
METER_REDIS_URL = env_str("METER_REDIS_URL", "")
METER_REDIS_CLUSTER = env_bool("METER_REDIS_CLUSTER", False)
# Workspaces are spread over this many shards, each a hash tag (one cluster slot) with its own queue and
# holds. Change it only with every gateway stopped, the meter's queues drained and no hold left.
METER_REDIS_SHARDS = env_int("METER_REDIS_SHARDS", 16)
if METER_REDIS_CLUSTER and not METER_REDIS_URL:
    raise ImproperlyConfigured("METER_REDIS_CLUSTER needs METER_REDIS_URL (a node of the cluster)")
if not 1 <= METER_REDIS_SHARDS <= 16384:
    raise ImproperlyConfigured(f"METER_REDIS_SHARDS must be 1 to 16384, not {METER_REDIS_SHARDS}")
# The gateway's meter (design §4, ADR 0006): "redis" admits and settles each request with one atomic Redis
# script and writes PostgreSQL in batches (production); "sql" reserves and settles in the database directly.
GATEWAY_METER = env_str(
    "GATEWAY_METER",
    "redis"
    if (REDIS_URL or METER_REDIS_URL) and DATABASE_URL.startswith(("postgres://", "postgresql://"))
    else "sql",
)
if GATEWAY_METER not in ("redis", "sql"):
    raise ImproperlyConfigured(f"GATEWAY_METER must be redis or sql, not {GATEWAY_METER!r}")
if GATEWAY_METER == "redis" and not (REDIS_URL or METER_REDIS_URL):
    raise ImproperlyConfigured("GATEWAY_METER=redis needs REDIS_URL or METER_REDIS_URL")
# Who writes the Redis meter's settled records to PostgreSQL (gateway/metering/writer.py, ADR 0022): "server",
# each gateway process, in its event loop with a thread for the ORM; "process", `manage.py meter_writer`, run
# beside the gateway processes (production), which then spend none of their interpreter's time on it.
METER_WRITER = env_str("METER_WRITER", "server")
if METER_WRITER not in ("server", "process"):
    raise ImproperlyConfigured(f"METER_WRITER must be server or process, not {METER_WRITER!r}")

CELERY_BEAT_SCHEDULE = {
    "billing-reap-expired-reservations": {
        "task": "billing.tasks.reap_expired_reservations",
        "schedule": 60.0,
    },
    # The backstop of the gateway processes' own writers: settled records to PostgreSQL, dead writers'
    # batches requeued, expired holds released.
    "gateway-flush-metering": {"task": "gateway.tasks.flush_metering", "schedule": 5.0},
    # Usage per hour and day, workspace, key, model and provider, recomputed from generation records.
    "gateway-roll-up-usage": {"task": "gateway.tasks.roll_up_usage", "schedule": 60.0},
    # The catalog's live figures: weekly and daily volume from the rollups, last day's performance.
    "gateway-refresh-model-figures": {"task": "gateway.tasks.refresh_model_figures", "schedule": 60.0},
    # Auto top-up's backstop: the gateway's meters trigger it after each settlement that needs it.
    "console-auto-top-up-sweep": {"task": "console.tasks.auto_top_up_sweep", "schedule": 60.0},
    # Every micro-dollar accounted for (gateway/audit.py); findings are logged as critical.
    "gateway-audit-ledger": {"task": "gateway.tasks.audit_ledger", "schedule": 900.0},
}

# Without a broker there is no `celery beat` either: the ASGI process runs the schedule in a thread.
EMBEDDED_BEAT = env_bool("EMBEDDED_BEAT", CELERY_TASK_ALWAYS_EAGER and not IS_PRODUCTION)

# --- Auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "console.User"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "console:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Keys of the log-in and sign-up throttles (console/services/throttle.py) live under this name in the cache.
THROTTLE_NAMESPACE = env_str("THROTTLE_NAMESPACE", "hi")

# Where people reach the dashboard, for links in e-mails.
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# --- Stripe (credits) ----------------------------------------------------------------------
# With real keys the same code talks to Stripe. Without STRIPE_SECRET_KEY, `make run` starts localstripe (a
# stateful Stripe double with a fake Stripe.js) on STRIPE_API_BASE and the dashboard says "test mode".
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "pk_test_localstripe")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "whsec_localstripe")
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "" if STRIPE_SECRET_KEY else "http://127.0.0.1:8420")
STRIPE_JS_URL = env_str(
    "STRIPE_JS_URL",
    f"{STRIPE_API_BASE}/js.stripe.com/v3/" if STRIPE_API_BASE else "https://js.stripe.com/v3/",
)
STRIPE_TEST_MODE = not STRIPE_SECRET_KEY.startswith("sk_live_")
if IS_PRODUCTION and STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET == "whsec_localstripe":
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET must be set with STRIPE_SECRET_KEY in production")
# Credits a card may buy at once, in whole US dollars.
CREDITS_MIN_USD = env_int("CREDITS_MIN_USD", 5)
CREDITS_MAX_USD = env_int("CREDITS_MAX_USD", 1_000)
CREDITS_PRESETS_USD = (10, 25, 50, 100)

# --- E-mail (password resets) -------------------------------------------------------------
# Development prints e-mails to the console; production sets an SMTP server.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
_LOG_ONLY_EMAIL = ("console", "locmem", "dummy", "filebased")
if IS_PRODUCTION and any(f".{kind}." in EMAIL_BACKEND for kind in _LOG_ONLY_EMAIL):
    raise ImproperlyConfigured(
        f"EMAIL_BACKEND is {EMAIL_BACKEND} in production: password resets and payment e-mails would never "
        "leave the server. Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and EMAIL_HOST."
    )
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "HyperInfer <no-reply@hyperinfer.local>")

# --- I18N, static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "core.drf.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HyperInfer API",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
}

# --- HyperInfer ---------------------------------------------------------------------------
# Credits granted to a new sign-up's personal workspace, in USD (stored as micro-USD).
SIGNUP_GRANT_MICRO_USD = usd_to_micro("SIGNUP_GRANT_USD", "1.00")
# How long a reservation may stay open before the reaper releases it.
RESERVATION_TTL_SECONDS = env_int("RESERVATION_TTL_SECONDS", 900)
PLAYGROUND_KEY_TTL_SECONDS = 600
# Gateway request bodies above this size are refused with payload_too_large.
GATEWAY_MAX_BODY_BYTES = env_int("GATEWAY_MAX_BODY_BYTES", 10 * 1024 * 1024)
# A stream silent this long gets an SSE comment, so proxies and clients keep the connection open.
GATEWAY_KEEPALIVE_SECONDS = 15.0
# A client whose socket takes none of its response's bytes this long is dropped (core/http_server.py).
CLIENT_STALL_SECONDS = env_int("CLIENT_STALL_SECONDS", 60)
# Where each gateway process journals its requests until their bills are in PostgreSQL (ADR 0010). It must
# outlive the process: a local disk, or a volume that the replacement of a crashed process mounts again.
GATEWAY_JOURNAL_DIR = Path(env_str("GATEWAY_JOURNAL_DIR", str(BASE_DIR / ".local" / "journal")))
# How many entries a journal holds in memory (~1.3 KB each) while PostgreSQL cannot confirm their bills; past
# it the oldest finished ones wait in spill segments in the same directory (gateway/metering/journal.py).
GATEWAY_JOURNAL_MAX_IN_MEMORY = env_int("GATEWAY_JOURNAL_MAX_IN_MEMORY", 100_000)
CATALOG_PATH = Path(env_str("CATALOG_PATH", str(BASE_DIR / "providers.yaml")))

# --- Metrics: GET /metrics for Prometheus (gateway/metrics_scrape.py) -------------------------
# The bearer token a scraper sends; unset, /metrics does not exist (404).
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
if IS_PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be a random string of at least 32 characters.")
# Every gateway process of a deployment writes its figures here and a scrape sums them (prometheus_client's
# multiprocess mode); set before any metric exists. The default: config/env.py's metrics_dir.
PROMETHEUS_MULTIPROC_DIR = metrics_dir()

# --- Server tools (ADR 0013; `manage.py check` checks these: gateway/tools/registry.py) ---------
# web_search's backend: `sandbox` (the bundled offline corpus), `searxng` (WEB_SEARCH_URL: the instance) or
# `brave` (WEB_SEARCH_API_KEY; WEB_SEARCH_URL only to point elsewhere than api.search.brave.com).
WEB_SEARCH_BACKEND = env_str("WEB_SEARCH_BACKEND", "sandbox")
WEB_SEARCH_URL = env_str("WEB_SEARCH_URL", "")
WEB_SEARCH_API_KEY = env_str("WEB_SEARCH_API_KEY", "")
# Networks web_fetch may reach besides the public internet (CIDRs, comma-separated): none by default.
WEB_FETCH_ALLOWED_NETWORKS = env_list("WEB_FETCH_ALLOWED_NETWORKS", [])
# Upstream steps one request with server tools may take; the last one may not call a tool.
SERVER_TOOL_MAX_STEPS = env_int("SERVER_TOOL_MAX_STEPS", 5)
# The `image` tool's backend: "" (none: the tool is not offered), `openai` (an OpenAI-compatible images
# endpoint at IMAGE_GENERATION_URL, e.g. https://api.openai.com/v1) or `sandbox` (an offline picture drawn
# from the prompt; the default outside production, so `make run` shows the tool).
IMAGE_GENERATION_BACKEND = env_str("IMAGE_GENERATION_BACKEND", "" if IS_PRODUCTION else "sandbox")
IMAGE_GENERATION_URL = env_str("IMAGE_GENERATION_URL", "")
IMAGE_GENERATION_API_KEY = env_str("IMAGE_GENERATION_API_KEY", "")
IMAGE_GENERATION_MODEL = env_str("IMAGE_GENERATION_MODEL", "gpt-image-1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
