"""Django settings for ClaudeBench, all from environment variables (README lists them)."""

from __future__ import annotations

import os
import time

from claudebench import embedded
from claudebench.env import env_bool, env_database, env_int, env_list, env_str, env_url

BASE_DIR = embedded.BASE_DIR

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "claudebench-insecure-development-key-set-SECRET_KEY-in-production")
HOST = env_str("HOST", "127.0.0.1")
PORT = env_int("PORT", 3000, minimum=1, maximum=65535)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CORS_ORIGIN = env_str("CORS_ORIGIN", "http://localhost:3001")

# SPEC §13 / §18.5: one id per server, fixed by the supervisor and shared by every process.
INSTANCE_ID = env_str("INSTANCE_ID", f"worker-{int(time.time() * 1000)}")
INSTANCE_ROLE = env_str("INSTANCE_ROLE", "worker")

DATABASES = {"default": env_database("DATABASE_URL", embedded.DATABASE_URL)}
REDIS_URL = env_url("REDIS_URL", embedded.REDIS_URL, schemes=("redis", "rediss", "unix"))
CB_USES_EMBEDDED_POSTGRES = not os.environ.get("DATABASE_URL")
CB_USES_EMBEDDED_REDIS = not os.environ.get("REDIS_URL")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "channels",
    "claudebench.apps.ClaudeBenchConfig",
    "claudebench.security",  # issue 10: API tokens
    "django_structlog",
    "events",
    "tasks",
    "instances",
    "hooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_structlog.middlewares.RequestMiddleware",  # issue 10: one structured line per Django request
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "claudebench.urls"
ASGI_APPLICATION = "claudebench.asgi.application"

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
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = embedded.DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_LAYERS = {
    "default": {
        # channels_redis's core layer (not pubsub: runworker's named channels need queued,
        # one-consumer delivery), whose receive a stopping runworker can end in a second.
        "BACKEND": "events.channel_layer.BackgroundChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "cb:channels", "channel_capacity": {"cb-background*": 10_000}},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- ClaudeBench knobs (SPEC §13); names carry their unit ---------------------------------------
CB_HANDLER_MODULES = [
    "tasks.handlers",
    "hooks.handlers",
    "instances.handlers",
    "claudebench.handlers",
    "events.handlers",
]
CB_ENABLE_TEST_HANDLERS = env_bool("CB_ENABLE_TEST_HANDLERS", False)
CB_STREAM_MAXLEN = env_int("CB_STREAM_MAXLEN", 10_000, minimum=1)
CB_STREAM_TTL_S = env_int("CB_STREAM_TTL", 86_400, minimum=1)
CB_PROCESSED_EVENT_TTL_S = env_int("CB_PROCESSED_EVENT_TTL", 86_400, minimum=1)
CB_MAX_BODY_BYTES = env_int("CB_MAX_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
CB_MAX_BATCH_LENGTH = env_int("CB_MAX_BATCH_LENGTH", 1000, minimum=1)
CB_HEARTBEAT_TIMEOUT_MS = env_int("HEALTH_HEARTBEAT_TIMEOUT", 30_000, minimum=100)
CB_HEALTH_CHECK_INTERVAL_MS = env_int("HEALTH_CHECK_INTERVAL", 5_000, minimum=50)
CB_PG_POOL_MIN = env_int("CB_PG_POOL_MIN", 2, minimum=1)
CB_PG_POOL_MAX = env_int("CB_PG_POOL_MAX", 10, minimum=1)
CB_REDIS_MAX_CONNECTIONS = env_int("CB_REDIS_MAX_CONNECTIONS", 64, minimum=2)
CB_HYDRATE_ON_START = env_bool("CB_HYDRATE_ON_START", True)
CB_WEB_WORKERS = env_int("CB_WEB_WORKERS", 2, minimum=1)
CB_OPERATOR_USERNAME = env_str("CB_OPERATOR_USERNAME", "operator")
CB_OPERATOR_PASSWORD = env_str("CB_OPERATOR_PASSWORD", "")

# --- event bus: durable subscribers, consume_streams, background workers (issue 8) ---------------
# SPEC §13/§14: the bus adapter (redis in production, memory for single-process use and unit tests).
EVENT_BUS_ADAPTER = env_str("EVENT_BUS_ADAPTER", "redis")
EVENT_BUS_DEFAULT_MAX_RETRIES = env_int("EVENT_BUS_DEFAULT_MAX_RETRIES", 3, minimum=1)
EVENT_BUS_DEFAULT_USE_DLQ = env_bool("EVENT_BUS_DEFAULT_USE_DLQ", False)
EVENT_BUS_MEMORY_MAX_HISTORY = env_int("EVENT_BUS_MEMORY_MAX_HISTORY", 1000, minimum=1)
CB_SUBSCRIPTION_MODULES = env_list("CB_SUBSCRIPTION_MODULES", ["events.subscribers", "hooks.subscribers"])
CB_BUS_RETRY_DELAY_MS = env_int("CB_BUS_RETRY_DELAY_MS", 1000, minimum=0)
CB_BUS_BLOCK_MS = env_int("CB_BUS_BLOCK_MS", 1000, minimum=1)
CB_BUS_DISCOVER_INTERVAL_MS = env_int("CB_BUS_DISCOVER_INTERVAL_MS", 5000, minimum=10)
CB_BUS_CLAIM_INTERVAL_MS = env_int("CB_BUS_CLAIM_INTERVAL_MS", 5000, minimum=10)
CB_BUS_CLAIM_IDLE_MS = env_int("CB_BUS_CLAIM_IDLE_MS", 60_000, minimum=10)
CB_BUS_TRANSIENT_BACKOFF_MAX_MS = env_int("CB_BUS_TRANSIENT_BACKOFF_MAX_MS", 30_000, minimum=1)
CB_BUS_STATS_INTERVAL_S = env_int("CB_BUS_STATS_INTERVAL_S", 60, minimum=1)
# Events the buffered publish of the events bus holds per event loop (events/outbox.py); a publish
# waits for room when it is full.
CB_BUS_OUTBOX_MAX = env_int("CB_BUS_OUTBOX_MAX", 10_000, minimum=1)
CB_BUS_DONE_TTL_S = env_int("CB_BUS_DONE_TTL", 86_400, minimum=1)
CB_DLQ_TTL_S = env_int("CB_DLQ_TTL", 7 * 86_400, minimum=1)
CB_DLQ_MAXLEN = env_int("CB_DLQ_MAXLEN", 10_000, minimum=1)
# JSON-RPC notifications and pub/sub-triggered runs go to `runworker <CB_BACKGROUND_CHANNEL>` when
# set (`manage.py up` sets it for the processes it supervises); unset, they run in the web process.
CB_BACKGROUND_HANDOFF = env_bool("CB_BACKGROUND_HANDOFF", False)
CB_BACKGROUND_CHANNEL = env_str("CB_BACKGROUND_CHANNEL", "cb-background")
CB_BACKGROUND_CONCURRENCY = env_int("CB_BACKGROUND_CONCURRENCY", 64, minimum=1)
CB_PG_POOL_TIMEOUT_S = env_int("CB_PG_POOL_TIMEOUT", 10, minimum=1)  # wait for a pooled connection

# --- MCP over Streamable HTTP (issue 9, SPEC §2.7) ---
# An MCP session that sees no request for this long expires (0 = never). Long, because a client
# holding an expired id gets the original's 400 and most do not re-initialize on their own.
CB_MCP_SESSION_IDLE_S = env_int("CB_MCP_SESSION_IDLE", 86_400, minimum=0)
# Interval of the `ping` events on the GET /mcp server stream.
CB_MCP_PING_INTERVAL_MS = env_int("CB_MCP_PING_INTERVAL_MS", 30_000, minimum=10)
LOGGING["loggers"]["mcp"] = {"level": "WARNING"}  # the SDK logs every stateless request at INFO

# --- instances and coordination (instances/, `manage.py gossip`; SPEC §8, §12.1) ----------------
CB_INSTANCE_TTL_S = env_int("CB_INSTANCE_TTL", 30, minimum=1)          # instance hash and its sets
CB_LEADER_TTL_MS = env_int("CB_LEADER_TTL_MS", 30_000, minimum=100)    # leadership expiry
CB_GOSSIP_TTL_S = env_int("CB_GOSSIP_TTL", 300, minimum=1)
CB_GOSSIP_DROP_AFTER_MS = env_int("CB_GOSSIP_DROP_AFTER_MS", 300_000, minimum=100)
CB_ALLOW_FLUSH = env_bool("CB_ALLOW_FLUSH", True)                        # system.flush guard
CB_PG_QUERY_TIMEOUT_MS = env_int("CB_PG_QUERY_TIMEOUT_MS", 5_000, minimum=10)
CB_FAILOVER_TO_WORKER = env_bool("CB_FAILOVER_TO_WORKER", False)       # else back to the pending queue
CB_TASK_AUTO_ASSIGN = env_bool("CB_TASK_AUTO_ASSIGN", False)           # SPEC §18.5: off by default
CB_TASK_AUTO_ASSIGN_DELAY_MS = env_int("TASK_AUTO_ASSIGN_DELAY", 5_000, minimum=0)
CB_TASK_MAX_PER_WORKER = env_int("TASK_MAX_PER_WORKER", 10, minimum=1)
CB_BATCH_LOCK_TTL_S = env_int("CB_BATCH_LOCK_TTL", 60, minimum=1)

# --- hooks (issue 6): hook audit, session state processor, block style (SPEC §10.9, §13) -----------
CB_PERSIST_HOOK_AUDIT = env_bool("CB_PERSIST_HOOK_AUDIT", True)
CB_PERSIST_HOOK_STATE = env_bool("PERSIST_HOOK_STATE", True)
CB_PERSIST_SESSION_STATE = env_bool("PERSIST_SESSION_STATE", True)
CB_PERSIST_SNAPSHOTS = env_bool("PERSIST_SNAPSHOTS", True)
CB_SESSION_PROCESSOR = env_bool("CB_SESSION_PROCESSOR", False)  # also a pub/sub listener in the web
CB_HOOK_BLOCK_AS_ERROR = env_bool("CB_HOOK_BLOCK_AS_ERROR", False)  # block as -32003 instead of allow:false
CB_HOOK_RULES_REFRESH_MS = env_int("CB_HOOK_RULES_REFRESH_MS", 250, minimum=0)  # rule-change check interval
CB_HOOK_HEARTBEAT_MS = env_int("CB_HOOK_HEARTBEAT_MS", 5_000, minimum=100)  # hook events keep instances alive
CB_HOOK_VALIDATION_RULES = env_str("HOOK_VALIDATION_RULES", "")  # JSON groups; replace the stored rules
CB_HOOK_SAFE_PATTERNS = env_str("HOOK_SAFE_PATTERNS", "")  # JSON list of regexes

# --- pipeline: rate limits, circuit breakers, cache, audit, metrics (issue 4) ----------------------
# Per-handler overrides of the declared Limits, as JSON: {"task.create": {"rate": 5, "per_ms": 1000}}.
# Fields: rate, per_ms, timeout_ms, trip_after, open_ms (tests and operators shorten windows here).
def _limit_overrides(name: str) -> dict:
    import json

    from django.core.exceptions import ImproperlyConfigured

    raw = os.environ.get(name, "").strip()
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        raise ImproperlyConfigured(f"{name} is not valid JSON") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ImproperlyConfigured(f'{name} must be a JSON object of objects: {{"event": {{"rate": 5}}}}')
    fields = {"rate", "per_ms", "timeout_ms", "trip_after", "open_ms"}
    for event, limits in value.items():
        for field, number in limits.items():
            if field not in fields:
                raise ImproperlyConfigured(f"{name}: {event}.{field} is not one of {', '.join(sorted(fields))}")
            if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
                raise ImproperlyConfigured(f"{name}: {event}.{field} must be a positive integer or null")
    return value


CB_LIMIT_OVERRIDES = _limit_overrides("CB_LIMIT_OVERRIDES")
CB_CIRCUIT_HALF_OPEN_TRIALS = env_int("CB_CIRCUIT_HALF_OPEN_TRIALS", 3, minimum=1)
CB_CIRCUIT_HALF_OPEN_WINDOW_MS = env_int("CB_CIRCUIT_HALF_OPEN_WINDOW_MS", 60_000, minimum=10)
CB_CIRCUIT_CLOSE_AFTER = env_int("CB_CIRCUIT_CLOSE_AFTER", 3, minimum=1)
CB_CIRCUIT_MAX_OPEN_MS = env_int("CB_CIRCUIT_MAX_OPEN_MS", 300_000, minimum=10)
CB_AUDIT_MAXLEN = env_int("CB_AUDIT_MAXLEN", 10_000, minimum=1)
CB_AUDIT_TTL_S = env_int("CB_AUDIT_TTL", 86_400, minimum=1)
# Run the post-call bookkeeping script before answering instead of off the request path.
CB_PIPELINE_OUTCOME_INLINE = env_bool("CB_PIPELINE_OUTCOME_INLINE", False)
# How long the post-call writer waits to gather outcomes before its pipelined round trip. 0: it
# sends as soon as the answer is out, and outcomes of calls that finish while a round trip is in
# flight go together in the next (bursts still batch; a lone client's calls are not held up by a
# lump of its earlier calls' bookkeeping every few ms, B2's p90 and p99).
CB_PIPELINE_OUTCOME_DELAY_MS = env_int("CB_PIPELINE_OUTCOME_DELAY_MS", 0, minimum=0, maximum=1000)

# --- operator's view (issue 7): live view, dashboard pages, admin, DRF API, static files ---------
INSTALLED_APPS += ["rest_framework.authtoken", "drf_spectacular", "drf_spectacular_sidecar", "dashboard"]
# servestatic serves /static/ under ASGI (whitenoise is WSGI-only); right after SecurityMiddleware.
MIDDLEWARE.insert(1, "servestatic.middleware.ServeStaticMiddleware")
SERVESTATIC_USE_FINDERS = True  # straight from static/ and the apps: `make run` needs no collectstatic
SERVESTATIC_AUTOREFRESH = DEBUG
LOGIN_URL = "/admin/login/"
# The live view's Channels groups are per process (events/fanout.py: each process's pub/sub listener
# serves its own sockets), so they live in an in-memory layer: B5 measured the Redis layer at ~1,000
# messages/s per process with drops past its per-channel capacity (one message per socket per event).
CHANNEL_LAYERS["live"] = {"BACKEND": "channels.layers.InMemoryChannelLayer",
                          "CONFIG": {"capacity": env_int("CB_WS_QUEUE_CAPACITY", 10_000, minimum=10), "expiry": 60}}
CB_DASHBOARD_POLL_MS = env_int("CB_DASHBOARD_POLL_MS", 2000, minimum=100)  # overview refresh
CB_API_PAGE_SIZE = env_int("CB_API_PAGE_SIZE", 50, minimum=1, maximum=1000)
SPECTACULAR_SETTINGS = {
    "TITLE": "ClaudeBench operator API",
    "DESCRIPTION": "Tasks, instances, the audit trail and the handler registry, for operators (staff).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from static/, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- trust boundary and operations (issue 10: claudebench/security, claudebench/ops) ---------------
# Clients on a loopback address may call handlers up to this scope without a token (agent, operator,
# admin); false = every caller needs a token. Behind a reverse proxy on the same machine every client
# looks like loopback: set CB_ALLOW_LOOPBACK_ANONYMOUS=false there.
CB_ALLOW_LOOPBACK_ANONYMOUS = env_bool("CB_ALLOW_LOOPBACK_ANONYMOUS", True)
CB_LOOPBACK_SCOPE = env_str("CB_LOOPBACK_SCOPE", "agent")
if CB_LOOPBACK_SCOPE not in ("agent", "operator", "admin"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"CB_LOOPBACK_SCOPE={CB_LOOPBACK_SCOPE!r} must be agent, operator or admin")
# Nested arrays/objects a body may have. 254 by default: orjson writes at most 254 levels, and the
# request record stores the params, so a deeper body that parsed would fail later with -32603.
CB_MAX_JSON_DEPTH = env_int("CB_MAX_JSON_DEPTH", 254, minimum=2, maximum=1000)
CB_MAX_WS_MESSAGE_BYTES = env_int("CB_MAX_WS_MESSAGE_BYTES", 1024 * 1024, minimum=1024)
CB_PROBE_TIMEOUT_MS = env_int("CB_PROBE_TIMEOUT_MS", 2_000, minimum=50)  # each /readyz check
# /readyz also needs this instance's gossip heartbeat (cb:instance:{INSTANCE_ID}) to be fresh;
# `manage.py up` sets it when it runs a gossip worker.
CB_READY_REQUIRES_GOSSIP = env_bool("CB_READY_REQUIRES_GOSSIP", False)
CB_LOG_JSON = env_bool("CB_LOG_JSON", False)  # one JSON object per line instead of readable text
# Level of the per-request (claudebench.access) and per-handler-call (claudebench.calls) lines.
CB_REQUEST_LOG_LEVEL = env_str("CB_REQUEST_LOG_LEVEL", "INFO").upper()
from claudebench.ops.logs import configure as _configure_logs  # noqa: E402

_configure_logs(LOGGING, json=CB_LOG_JSON, request_level=CB_REQUEST_LOG_LEVEL)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication",
                                       "rest_framework.authentication.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
