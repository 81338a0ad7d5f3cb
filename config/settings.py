"""All settings, read from the environment in one place.

Unset variables mean the embedded default: SQLite, an in-memory channel layer
and Celery tasks run eagerly, so `make run` needs nothing installed.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)
# The embedded default key is for development only; `core` warns at start-up
# (system check core.W001) when it is used outside DEBUG.
INSECURE_DEFAULT_SECRET_KEY = "dev-insecure-secret-key-change-me-0123456789abcdef"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY") or INSECURE_DEFAULT_SECRET_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "core",
    "streams",
    "accounts",
    "contacts",
    "messaging",
    "calls",
    "moments",
    "realtime",
    "notifications",
    "media",
    "exports",
    "payments",
    "redpackets",
    "corsheaders",
    "webclient",
    "moderation",
]

MIDDLEWARE = [
    # First, so that every answer a browser on another origin gets (a 503 too) carries CORS headers.
    "corsheaders.middleware.CorsMiddleware",
    "core.middleware.RequestLogMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise, plus the web client's built assets under /app/assets/.
    "webclient.middleware.WebClientWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

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
            ]
        },
    }
]

# --- Storage -----------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
# Read-only selectors marked `core.db.replica_ok` read from this streaming replica (config.routers);
# everything else, and every read inside a transaction, stays on the primary.
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
# Behind PgBouncer in transaction mode: no server-side prepared statements or cursors, no
# session-level startup options (set statement_timeout on the role instead; see deploy/).
DB_PGBOUNCER = env_bool("DB_PGBOUNCER", default=False)
# Connections per server process: a bounded pool (psycopg_pool). Under ASGI every request
# runs in a fresh thread-sensitive context, so per-thread persistent connections
# (CONN_MAX_AGE > 0) pile up until PostgreSQL refuses clients; pooled connections go back
# to the pool at the end of each request instead. A request that finds the pool busy
# waits up to DB_POOL_TIMEOUT seconds for a connection. DB_POOL_MAX_SIZE=0 turns the pool
# off (e.g. behind a pooler that must see one connection per transaction).
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 2)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 10)
DB_POOL_TIMEOUT = env_int("DB_POOL_TIMEOUT", 30)
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3)
# The socket's send path runs its one statement per batch on an async pool of its own
# (core.asyncdb), straight from the event loop: this many connections per process.
DB_ASYNC_POOL_SIZE = env_int("DB_ASYNC_POOL_SIZE", 4)
# Threads of the event loop's default executor, where socket work that needs the ORM runs
# (core/executor.py); they wait on round trips, so more than the CPUs, about the sync pool's size.
ASYNC_DB_THREADS = env_int("ASYNC_DB_THREADS", max(DB_POOL_MAX_SIZE, 8))

def postgres_database(url: str) -> dict:
    """One PostgreSQL alias (the primary or the replica) with the server's connection policy."""
    database = dj_database_url.parse(
        # No health check per request: it costs a round trip on every socket hop, and a
        # connection that broke is closed after the failing request anyway (503, then reconnect).
        url, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=False
    )
    if database["ENGINE"] != "django.db.backends.postgresql":
        return database
    options = database.setdefault("OPTIONS", {})
    # A dead database must fail fast (503), never hang a request.
    options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    # Names this server's connections in pg_stat_activity (operators, and the pool-bound test).
    options.setdefault("application_name", env_str("DB_APPLICATION_NAME", "messenger"))
    if DB_PGBOUNCER:
        # A transaction-mode pooler hands each transaction to any server connection: psycopg's
        # automatic prepared statements and Django's server-side cursors would land on the wrong one.
        options["prepare_threshold"] = None
        database["DISABLE_SERVER_SIDE_CURSORS"] = True
    else:
        options.setdefault("options", f"-c statement_timeout={env_int('DB_STATEMENT_TIMEOUT_MS', 15000)}")
    if DB_POOL_MAX_SIZE > 0:
        # Django's backend with a pool that waits for a busy pool but not for a dead database.
        database["ENGINE"] = "core.postgresql"
        database["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django must not
        options["pool"] = {
            "min_size": min(DB_POOL_MIN_SIZE, DB_POOL_MAX_SIZE),
            "max_size": DB_POOL_MAX_SIZE,
            "timeout": DB_POOL_TIMEOUT,
            "max_idle": 300,  # idle connections beyond min_size close after this many seconds
            # Background reconnection gives up quickly while the database is down; the next
            # request that needs a connection starts a new attempt, so recovery is prompt.
            "reconnect_timeout": max(5, 2 * DB_CONNECT_TIMEOUT),
        }
        # Checked at checkout (one round trip): after a database restart the pool replaces
        # its dead connections instead of failing one request for each.
        database["CONN_HEALTH_CHECKS"] = True
    return database


if DATABASE_URL:
    DATABASES = {"default": postgres_database(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH") or BASE_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = postgres_database(DATABASE_REPLICA_URL)
    # The test run has no replica of its own test database: the alias mirrors the primary there.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["core.db.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

REDIS_URL = env_str("REDIS_URL")
# Redis connections per server process for the cache, rate limits and the sunset gate (one
# blocking pool each for threads and for the event loop), and how long a caller waits for one.
REDIS_POOL_MAX_CONNECTIONS = env_int("REDIS_POOL_MAX_CONNECTIONS", 100)
REDIS_POOL_TIMEOUT = env_int("REDIS_POOL_TIMEOUT", 5)

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedPoolRedisCache",  # one connection pool per process
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "msgr"),
            # A burst of requests waits (up to REDIS_POOL_TIMEOUT s) for one of the process's
            # REDIS_POOL_MAX_CONNECTIONS connections; redis-py's default pool raises "Too many
            # connections" at its 100th concurrent user instead, which reached clients as 503.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2,
                        "pool_class": "redis.BlockingConnectionPool",
                        "max_connections": REDIS_POOL_MAX_CONNECTIONS, "timeout": REDIS_POOL_TIMEOUT},
        }
    }
    # channels-redis's pub/sub layer with pipelined multi-group sends (realtime/layers.py):
    # a doorbell needs no stored membership, and a batch of rings is one round trip.
    # Sharded over several Redis servers when CHANNEL_REDIS_URLS lists them (every process must
    # list the same servers in the same order: a group's shard is a hash of its name).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.PipelinedPubSubChannelLayer",
            "CONFIG": {"hosts": env_list("CHANNEL_REDIS_URLS") or [REDIS_URL],
                       "prefix": env_str("CHANNEL_LAYER_PREFIX", "asgi")},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

MEDIA_ROOT = env_str("MEDIA_ROOT") or str(BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"
STATIC_URL = "/static/"
STATIC_ROOT = env_str("STATIC_ROOT") or None  # only needed for `collectstatic` behind a CDN
# Static files (admin, API docs) are served by WhiteNoise straight from the apps in
# every mode, so neither `make run` nor a deployment needs collectstatic to show them.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- Celery --------------------------------------------------------------------

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A hard ceiling; tasks set their own lower limits (and soft limits) where they can.
CELERY_TASK_TIME_LIMIT = 300
# A task unacknowledged this long is redelivered (worker killed mid-task).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 600),
    "socket_connect_timeout": 3,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE: dict = {}
# Queues by kind, so each gets workers of its own (`celery -A config worker -Q push`) and a burst
# of one kind (an export, a 100,000-member fan-out) cannot starve another (an OTP SMS, a push).
# A worker started without -Q consumes all of them. Routes are by task name; the rest go to default.
CELERY_QUEUE_NAMES = ["default", "push", "fanout", "media", "exports"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = {name: {"routing_key": name} for name in CELERY_QUEUE_NAMES}
CELERY_TASK_ROUTES = {
    "notifications.*": {"queue": "push"},
    "messaging.fanout": {"queue": "fanout"},
    "messaging.fanout_sweep": {"queue": "fanout"},
    "messaging.receipt_counts": {"queue": "fanout"},
    "contacts.notify_contact_joined": {"queue": "fanout"},
    "contacts.announce_joined": {"queue": "fanout"},
    "exports.announce_batch": {"queue": "fanout"},
    "media.*": {"queue": "media"},
    "exports.*": {"queue": "exports"},
}
# Logging is Django's LOGGING (JSON or text); a worker must not replace it with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Background work that survives outages (core.durable): retries after an outage back off
# exponentially with jitter up to this many seconds; outbox rows whose task was lost are
# sent again by the sweep, at most once per OUTBOX_RESEND_SECONDS; done rows are kept for
# OUTBOX_RETENTION_DAYS.
TASK_RETRY_BACKOFF_MAX = env_int("TASK_RETRY_BACKOFF_MAX", 300)
OUTBOX_RESEND_SECONDS = env_int("OUTBOX_RESEND_SECONDS", 120)
OUTBOX_SWEEP_SECONDS = env_int("OUTBOX_SWEEP_SECONDS", 30)
OUTBOX_RETENTION_DAYS = env_int("OUTBOX_RETENTION_DAYS", 7)
CELERY_BEAT_SCHEDULE["core-outbox-sweep"] = {"task": "core.outbox_sweep", "schedule": float(OUTBOX_SWEEP_SECONDS)}
# Each worker writes a heartbeat this often; /healthz `workers` is `degraded` when the newest is older.
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 15)
WORKER_HEARTBEAT_STALE_SECONDS = env_int("WORKER_HEARTBEAT_STALE_SECONDS", 60)

# --- REST --------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.DeviceTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["core.renderers.ORJSONRenderer"],
    # JSON only; the upload endpoint declares its own multipart parser.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Messenger API",
    "DESCRIPTION": (
        "Phone-contacts-based messaging backend. See README for the WebSocket protocol.\n\n"
        "Query parameters an operation does not list are ignored (web clients add cache-busters "
        "such as `_=`); unknown fields in a JSON body are refused with 400 `validation_error`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.refuse_unknown_request_fields",
    ],
    # Swagger UI assets are served from this server (sidecar), so /api/docs/ works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"VisibilityEnum": "accounts.models.Visibility"},
}

# Request bodies beyond this are refused with 413 (uploads stream separately).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024

# --- Accounts and OTP ------------------------------------------------------------

SMS_BACKEND = env_str("SMS_BACKEND", "console")
SMS_FILE_PATH = env_str("SMS_FILE_PATH", str(BASE_DIR / "var" / "sms.jsonl"))
SMS_HTTP_URL = env_str("SMS_HTTP_URL")
SMS_HTTP_TOKEN = env_str("SMS_HTTP_TOKEN")
SMS_HTTP_SENDER = env_str("SMS_HTTP_SENDER")
OTP_TEST_NUMBERS = env_list("OTP_TEST_NUMBERS")
OTP_TEST_CODE = env_str("OTP_TEST_CODE", "000000")
OTP_TTL_SECONDS = env_int("OTP_TTL_SECONDS", 300)
OTP_RESEND_AFTER_SECONDS = env_int("OTP_RESEND_AFTER_SECONDS", 60)
OTP_MAX_ATTEMPTS = env_int("OTP_MAX_ATTEMPTS", 5)
# SMS send limits: (count, window seconds).
OTP_LIMIT_PER_NUMBER = (env_int("OTP_LIMIT_PER_NUMBER", 5), 3600)
OTP_LIMIT_PER_IP = (env_int("OTP_LIMIT_PER_IP", 20), 3600)
OTP_LIMIT_PER_PREFIX = (env_int("OTP_LIMIT_PER_PREFIX", 500), 3600)
# Wrong codes per number across all its codes (brute force over resends).
OTP_VERIFY_LIMIT_PER_NUMBER = (env_int("OTP_VERIFY_LIMIT_PER_NUMBER", 20), 3600)
OTP_VERIFY_LIMIT_PER_IP = (env_int("OTP_VERIFY_LIMIT_PER_IP", 100), 3600)
# Number of trusted reverse proxies in front of the server (X-Forwarded-For).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
DEVICE_ACTIVITY_RESOLUTION = timedelta(seconds=60)
# Other apps' reactions to account events, as dotted paths (accounts imports none of them).
# Run inside the sign-up transaction with user_id=..., when a number registers for the first
# time (what they write commits with the new user; they enqueue their tasks on commit):
ACCOUNT_REGISTERED_HOOKS: list[str] = []
# Run in order inside the deletion transaction with user_id=...:
ACCOUNT_DELETION_STEPS: list[str] = []
# Called by the socket consumer (realtime) with user_id=..., device_id=... when a socket
# opened (after it joined its groups) and when it closed (after presence was updated).
# Async callables are awaited on the event loop; sync ones run in a database thread hop.
# Keep them cheap: they run for every socket.
SOCKET_OPENED_HOOKS: list[str] = []
SOCKET_CLOSED_HOOKS: list[str] = []

# Each app below owns its own block: settings, CELERY_BEAT_SCHEDULE entries
# and its entries in the ACCOUNT_* hook lists.

# --- Contacts ---------------------------------------------------------------------

# (contacts settings)
# Discovery pepper: rotated every N days by the beat task; the previous one stays
# accepted for uploads during the grace period, then answers 409 stale_pepper.
CONTACTS_PEPPER_ROTATION_DAYS = env_int("CONTACTS_PEPPER_ROTATION_DAYS", 30)
CONTACTS_PEPPER_GRACE_DAYS = env_int("CONTACTS_PEPPER_GRACE_DAYS", 7)
# Users per batch when a new pepper's index of registered numbers is built.
CONTACTS_INDEX_BATCH = env_int("CONTACTS_INDEX_BATCH", 10000)
# Hashes per sync request, and numbers one stored address book may hold.
CONTACTS_MAX_BATCH = env_int("CONTACTS_MAX_BATCH", 5000)
CONTACTS_MAX_BOOK_SIZE = env_int("CONTACTS_MAX_BOOK_SIZE", 50000)
# Stored books are keyed under this secret (never the pepper); empty = derived from SECRET_KEY.
CONTACTS_BOOK_SECRET = env_str("CONTACTS_BOOK_SECRET")
# Anti-enumeration: never-before-seen hashes per UTC day, per user and per client IP,
# and sync requests per IP per hour. Re-syncing a stored book costs nothing.
CONTACTS_DAILY_NEW_HASHES = env_int("CONTACTS_DAILY_NEW_HASHES", 10000)
CONTACTS_DAILY_NEW_HASHES_PER_IP = env_int("CONTACTS_DAILY_NEW_HASHES_PER_IP", 50000)
CONTACTS_SYNC_LIMIT_PER_IP = (env_int("CONTACTS_SYNC_LIMIT_PER_IP", 600), 3600)
# contact.joined: owners per batch (one transaction each), and how long after signup
# a "contacts"-only user is still announced to owners once their own book holds them.
CONTACTS_JOINED_BATCH = env_int("CONTACTS_JOINED_BATCH", 500)
CONTACTS_JOINED_ANNOUNCE_DAYS = env_int("CONTACTS_JOINED_ANNOUNCE_DAYS", 30)
# Dotted path of the push for contact.joined (notifications.services.push_notify); empty = no push.
CONTACT_JOINED_PUSH = "notifications.services.push_notify"
CELERY_BEAT_SCHEDULE["contacts-rotate-pepper"] = {
    "task": "contacts.rotate_pepper",
    "schedule": env_int("CONTACTS_ROTATION_CHECK_SECONDS", 3600),
}
ACCOUNT_REGISTERED_HOOKS.append("contacts.services.contacts_user_registered")
ACCOUNT_DELETION_STEPS.append("contacts.services.contacts_user_deleted")
# A name of its own for the sync `mode` enum, so no other app's "mode" field collides with it.
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ContactsSyncModeEnum"] = "contacts.services.SYNC_MODES"

# --- Messaging ------------------------------------------------------------------

# (messaging settings)
MESSAGING_TEXT_MAX = 4096
MESSAGING_EDIT_WINDOW = timedelta(hours=env_int("MESSAGING_EDIT_WINDOW_HOURS", 48))
MESSAGING_RECALL_WINDOW = timedelta(hours=env_int("MESSAGING_RECALL_WINDOW_HOURS", 24))
# Conversations with more members than this fan events out in Celery batches
# (the sender's own event is still written in the send transaction), and
# emit no per-member receipts or presence.
MESSAGING_INLINE_FANOUT_MAX = env_int("MESSAGING_INLINE_FANOUT_MAX", 100)
MESSAGING_FANOUT_BATCH = env_int("MESSAGING_FANOUT_BATCH", 500)
# Failures of a fan-out job that are not outages before it is given up (shown in the admin).
MESSAGING_FANOUT_MAX_ATTEMPTS = env_int("MESSAGING_FANOUT_MAX_ATTEMPTS", 8)
MESSAGING_GROUP_MAX_MEMBERS = env_int("MESSAGING_GROUP_MAX_MEMBERS", 1000)
# Big groups' coalesced receipts (messaging/services/receipt_counts.py): one event per message
# per window, and at most this many of the newest messages a window moved.
MESSAGING_RECEIPT_COUNTS_WINDOW = env_int("MESSAGING_RECEIPT_COUNTS_WINDOW", 3)
MESSAGING_RECEIPT_COUNTS_MAX_MESSAGES = env_int("MESSAGING_RECEIPT_COUNTS_MAX_MESSAGES", 50)
MESSAGING_BROADCAST_MAX_MEMBERS = env_int("MESSAGING_BROADCAST_MAX_MEMBERS", 100000)
# Invitations for users whose `group_add` does not let the adder add them: how long one
# stays open, and how many unaccepted ones an inviter may send in any 24 hours (429 past it).
MESSAGING_GROUP_INVITATION_TTL = timedelta(days=env_int("MESSAGING_GROUP_INVITATION_TTL_DAYS", 7))
MESSAGING_GROUP_INVITATIONS_PER_DAY = env_int("MESSAGING_GROUP_INVITATIONS_PER_DAY", 50)
# Dotted path called inside the send transaction for each recipient of a new
# message (notifications.services.push_notify once the push branch is merged).
MESSAGING_PUSH_NOTIFY = "notifications.services.push_notify"
# New messages per sender per window, REST and socket together (429 / `rate_limited`);
# retries of a stored client_id are free. 0 turns the limit off (benchmarks).
MESSAGING_SEND_LIMIT = (env_int("MESSAGING_SEND_LIMIT", 600), env_int("MESSAGING_SEND_WINDOW_SECONDS", 60))
CELERY_BEAT_SCHEDULE["messaging-fanout-sweep"] = {"task": "messaging.fanout_sweep", "schedule": 60.0}
ACCOUNT_DELETION_STEPS.append("messaging.services.user_messages_erase")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "ConversationTypeEnum": "messaging.models.ConversationType",
    "MessageTypeEnum": "messaging.models.MessageType",
})

# --- Streams -------------------------------------------------------------------

# Doorbell groups between server processes (streams.hub), spread evenly over the channel layer's
# Redis hosts; 0 (the default) means one per host.
STREAMS_RING_GROUPS = env_int("STREAMS_RING_GROUPS", 0)

# --- Realtime ------------------------------------------------------------------

WS_FRAME_RATE = env_int("WS_FRAME_RATE", 20)
WS_FRAME_BURST = env_int("WS_FRAME_BURST", 100)
WS_MAX_FRAME_BYTES = 64 * 1024

# (realtime settings)
# Frames dropped by the flood limit within 10 s before the socket is closed with 4008.
WS_FLOOD_CLOSE_AFTER = env_int("WS_FLOOD_CLOSE_AFTER", WS_FRAME_BURST)
# A send to a client that stopped reading waits at most this long before the socket is
# closed with 4009 (the client resumes by cursor).
WS_SEND_TIMEOUT_SECONDS = env_int("WS_SEND_TIMEOUT_SECONDS", 10)
# Presence: each socket refreshes its key every WS_HEARTBEAT_SECONDS (and re-checks
# that its device is still active); a dead server's sockets expire after WS_PRESENCE_TTL.
WS_HEARTBEAT_SECONDS = env_int("WS_HEARTBEAT_SECONDS", 25)
WS_PRESENCE_TTL = env_int("WS_PRESENCE_TTL", 60)
# After hello, send the caller the presence of the peers it may see (at most this many).
WS_PRESENCE_SNAPSHOT = env_bool("WS_PRESENCE_SNAPSHOT", default=True)
WS_PRESENCE_SNAPSHOT_MAX = env_int("WS_PRESENCE_SNAPSHOT_MAX", 500)
# Presence reaches mutual contacts (friends) as well as conversation peers: at most this
# many of a user's friends, the most recently seen first.
WS_PRESENCE_CONTACTS_MAX = env_int("WS_PRESENCE_CONTACTS_MAX", 500)
# Replay: events per database page; live rings buffered during a replay before
# the buffer is dropped and the database re-read instead.
WS_REPLAY_PAGE = env_int("WS_REPLAY_PAGE", 200)
WS_REPLAY_BUFFER_MAX = env_int("WS_REPLAY_BUFFER_MAX", 2000)
# Group commit: at most this many message.send frames in one statement, and this many
# batches in flight per process (each on its own connection of the async pool).
WS_SEND_BATCH_MAX = env_int("WS_SEND_BATCH_MAX", 128)
WS_SEND_BATCHES_IN_FLIGHT = env_int("WS_SEND_BATCHES_IN_FLIGHT", 4)
# An event that arrives ahead of its predecessor waits this long for it before the socket
# reads the hole from the database. The predecessor is nearly always a moment behind (another
# batch's result, another process's doorbell); on a busy process the loop itself may lag by
# tens of milliseconds, and a wait shorter than that turns load into database reads.
WS_GAP_WAIT_SECONDS = float(env_str("WS_GAP_WAIT_SECONDS", "0.25"))
# Frames queued for a socket whose client stopped reading, before it is closed with 4009.
WS_BACKLOG_MAX = env_int("WS_BACKLOG_MAX", 10000)
# How often the process's housekeeper flushes stalled sockets.
WS_HOUSEKEEPING_SECONDS = float(env_str("WS_HOUSEKEEPING_SECONDS", "0.1"))
# Token lookups for connecting sockets in flight at once per process (a connect burst queues).
WS_CONNECT_CONCURRENCY = env_int("WS_CONNECT_CONCURRENCY", 32)
# At most one typing "start" relay per socket and conversation in this many seconds.
WS_TYPING_THROTTLE_SECONDS = env_int("WS_TYPING_THROTTLE_SECONDS", 2)
# Typing is not relayed in conversations with more other members than this.
WS_TYPING_MAX_RECIPIENTS = env_int("WS_TYPING_MAX_RECIPIENTS", 100)

# --- Push ----------------------------------------------------------------------

PUSH_BACKEND = env_str("PUSH_BACKEND", "log")
PUSH_FILE_PATH = env_str("PUSH_FILE_PATH", str(BASE_DIR / "var" / "push.jsonl"))

# (push settings)
# Providers used by PUSH_BACKEND=real; each one listed must have its credentials (checked at start).
PUSH_PROVIDERS = env_list("PUSH_PROVIDERS", "fcm,apns,webpush")
PUSH_HTTP_TIMEOUT_SECONDS = float(env_int("PUSH_HTTP_TIMEOUT_SECONDS", 10))
# How long a provider keeps an undeliverable push (device off) before dropping it.
PUSH_TTL_SECONDS = env_int("PUSH_TTL_SECONDS", 24 * 3600)
PUSH_CALL_TTL_SECONDS = env_int("PUSH_CALL_TTL_SECONDS", 45)
# Messages to one offline device in one conversation within this window make one notification.
PUSH_COLLAPSE_SECONDS = env_int("PUSH_COLLAPSE_SECONDS", 3)
PUSH_COLLAPSE_KINDS = ["message.new"]
# Transient provider errors (429, 5xx, timeouts): attempts per push, and the backoff bounds.
PUSH_MAX_ATTEMPTS = env_int("PUSH_MAX_ATTEMPTS", 8)
PUSH_RETRY_BASE_SECONDS = env_int("PUSH_RETRY_BASE_SECONDS", 2)
PUSH_RETRY_MAX_SECONDS = env_int("PUSH_RETRY_MAX_SECONDS", 300)
PUSH_RETRY_AFTER_MAX_SECONDS = env_int("PUSH_RETRY_AFTER_MAX_SECONDS", 3600)
# A SENDING row older than this lost its worker; the sweep re-queues it.
PUSH_SENDING_LEASE_SECONDS = env_int("PUSH_SENDING_LEASE_SECONDS", 120)
PUSH_SWEEP_GRACE_SECONDS = env_int("PUSH_SWEEP_GRACE_SECONDS", 60)
PUSH_DELIVERY_RETENTION_DAYS = env_int("PUSH_DELIVERY_RETENTION_DAYS", 7)
# Dotted path called as counter(user_id=...) -> int for the badge; empty means 0.
# Set to "messaging.selectors.unread_total" once messaging is merged.
PUSH_BADGE_COUNTER = "messaging.selectors.unread_total"
# FCM HTTP v1: a service account's JSON (inline or a file path). The token URI comes from it.
PUSH_FCM_CREDENTIALS_FILE = env_str("PUSH_FCM_CREDENTIALS_FILE")
PUSH_FCM_CREDENTIALS_JSON = env_str("PUSH_FCM_CREDENTIALS_JSON")
PUSH_FCM_ENDPOINT = env_str("PUSH_FCM_ENDPOINT", "https://fcm.googleapis.com")
PUSH_FCM_TOKEN_URI = env_str("PUSH_FCM_TOKEN_URI")  # overrides the JSON's token_uri
# APNs, token-based: the .p8 key (inline PEM or a file path), its key id, the team id, the app's bundle id.
PUSH_APNS_KEY = env_str("PUSH_APNS_KEY")
PUSH_APNS_KEY_FILE = env_str("PUSH_APNS_KEY_FILE")
PUSH_APNS_KEY_ID = env_str("PUSH_APNS_KEY_ID")
PUSH_APNS_TEAM_ID = env_str("PUSH_APNS_TEAM_ID")
PUSH_APNS_TOPIC = env_str("PUSH_APNS_TOPIC")
PUSH_APNS_ENDPOINT = env_str("PUSH_APNS_ENDPOINT", "https://api.push.apple.com")
# Call rings go to iOS as VoIP pushes (apns-push-type voip), on the app's VoIP topic.
PUSH_APNS_VOIP_TOPIC = env_str("PUSH_APNS_VOIP_TOPIC")  # empty: "<PUSH_APNS_TOPIC>.voip"
# Web Push: the VAPID key pair's private half (base64url raw or DER, or PEM) and its contact.
PUSH_WEBPUSH_VAPID_PRIVATE_KEY = env_str("PUSH_WEBPUSH_VAPID_PRIVATE_KEY")
PUSH_WEBPUSH_VAPID_SUBJECT = env_str("PUSH_WEBPUSH_VAPID_SUBJECT")
# Subscription endpoints come from clients: only these push services (and their subdomains) are contacted.
PUSH_WEBPUSH_ALLOWED_HOSTS = env_list(
    "PUSH_WEBPUSH_ALLOWED_HOSTS",
    "fcm.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com",
)
PUSH_WEBPUSH_REQUIRE_HTTPS = env_bool("PUSH_WEBPUSH_REQUIRE_HTTPS", default=True)
CELERY_BEAT_SCHEDULE["notifications.push_sweep"] = {"task": "notifications.push_sweep", "schedule": 60.0}
ACCOUNT_DELETION_STEPS.append("notifications.services.push_forget_user")

# --- Media -----------------------------------------------------------------------

# (media settings)

# Attachments live in the storage named here (Django's STORAGES): local files under
# MEDIA_ROOT by default, an S3-compatible bucket through django-storages when
# MEDIA_S3_BUCKET is set.
MEDIA_STORAGE_ALIAS = "default"


def s3_storage(**overrides: object) -> dict:
    """The STORAGES entry of an S3-compatible bucket (django-storages), from the environment.

    Files past MEDIA_S3_MULTIPART_THRESHOLD go up as multipart uploads in parts of
    MEDIA_S3_MULTIPART_CHUNK (boto3's transfer manager), so a 100 MiB video is never one PUT.
    """
    from boto3.s3.transfer import TransferConfig

    options = {
        "bucket_name": env_str("MEDIA_S3_BUCKET"),
        "endpoint_url": env_str("MEDIA_S3_ENDPOINT_URL") or None,
        "region_name": env_str("MEDIA_S3_REGION") or None,
        "access_key": env_str("MEDIA_S3_ACCESS_KEY_ID") or None,
        "secret_key": env_str("MEDIA_S3_SECRET_ACCESS_KEY") or None,
        "location": env_str("MEDIA_S3_PREFIX"),
        "default_acl": None,
        "file_overwrite": False,
        "querystring_auth": True,
        "querystring_expire": env_int("MEDIA_SIGNED_URL_TTL", 300),
        "signature_version": "s3v4",
        "transfer_config": TransferConfig(
            multipart_threshold=env_int("MEDIA_S3_MULTIPART_THRESHOLD", 8 * 1024 * 1024),
            multipart_chunksize=env_int("MEDIA_S3_MULTIPART_CHUNK", 8 * 1024 * 1024),
            use_threads=False,  # the caller is already a worker thread; parts go up one after another
        ),
    }
    options.update(overrides)
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}


if env_str("MEDIA_S3_BUCKET"):
    STORAGES = {
        "default": s3_storage(),
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
# Per-kind size caps in bytes; an upload past the largest is cut off while streaming.
MEDIA_MAX_SIZE = {
    "image": env_int("MEDIA_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
    "voice": env_int("MEDIA_MAX_VOICE_BYTES", 16 * 1024 * 1024),
    "video": env_int("MEDIA_MAX_VIDEO_BYTES", 100 * 1024 * 1024),
    "file": env_int("MEDIA_MAX_FILE_BYTES", 100 * 1024 * 1024),
}
# Images with more pixels than this (width x height) are refused (decompression bombs).
MEDIA_IMAGE_MAX_PIXELS = env_int("MEDIA_IMAGE_MAX_PIXELS", 50_000_000)
MEDIA_IMAGE_MAX_FRAMES = env_int("MEDIA_IMAGE_MAX_FRAMES", 300)
MEDIA_THUMBNAIL_SIZE = env_int("MEDIA_THUMBNAIL_SIZE", 320)
# Voice notes and videos longer than this are refused (400), whatever their size.
VOICE_MAX_SECONDS = env_int("VOICE_MAX_SECONDS", 300)
VIDEO_MAX_SECONDS = env_int("VIDEO_MAX_SECONDS", 600)
# FFmpeg (PyAV) runs on uploads in a child process bounded by these (media/avprocess.py).
MEDIA_AV_MEMORY_MB = env_int("MEDIA_AV_MEMORY_MB", 1024)
MEDIA_AV_CPU_SECONDS = env_int("MEDIA_AV_CPU_SECONDS", 60)
MEDIA_AV_TIMEOUT_SECONDS = env_int("MEDIA_AV_TIMEOUT_SECONDS", 120)
# Voice-note waveform: how many levels the waveform task computes.
MEDIA_WAVEFORM_LEVELS = env_int("MEDIA_WAVEFORM_LEVELS", 64)
# Off by default: re-encoding costs about real time per minute of 720p video on one core.
MEDIA_VIDEO_TRANSCODE = env_bool("MEDIA_VIDEO_TRANSCODE", False)
MEDIA_TRANSCODE_MAX_SIDE = env_int("MEDIA_TRANSCODE_MAX_SIDE", 1280)
MEDIA_TRANSCODE_CPU_SECONDS = env_int("MEDIA_TRANSCODE_CPU_SECONDS", 1800)
# Who besides the uploader may read an attachment: dotted path called as
# check(user_id=..., attachment_id=...) -> bool. Empty: the uploader only.
MEDIA_ACCESS_CHECK = "messaging.selectors.user_can_see_attachment"
# Further checks of the same signature, asked in turn when MEDIA_ACCESS_CHECK says no (the feature
# apps append theirs in their blocks below).
MEDIA_ACCESS_EXTRA_CHECKS: list[str] = []
# Uploads never sent in a message are deleted after this many seconds.
MEDIA_UNREFERENCED_TTL = timedelta(seconds=env_int("MEDIA_UNREFERENCED_TTL", 24 * 3600))
MEDIA_UPLOAD_LIMIT = (env_int("MEDIA_UPLOAD_LIMIT_PER_HOUR", 300), 3600)
# Content endpoints answer 302 to the storage's presigned URL (S3) instead of proxying the bytes.
MEDIA_SERVE_REDIRECT = env_bool("MEDIA_SERVE_REDIRECT", False)
# Lifetime of the signed content links from GET /attachments/{id}/signed (for <img>/<audio> tags).
MEDIA_SIGNED_URL_TTL = env_int("MEDIA_SIGNED_URL_TTL", 300)
CELERY_BEAT_SCHEDULE["media.delete_unreferenced"] = {
    "task": "media.delete_unreferenced",
    "schedule": timedelta(hours=1),
}
# Resumable uploads (tus 1.0, /api/v1/uploads): an unfinished upload expires this long after
# its last byte arrived; the beat sweep deletes it and its pieces.
MEDIA_RESUMABLE_TTL = timedelta(seconds=env_int("MEDIA_RESUMABLE_TTL", 24 * 3600))
# Per user: unfinished uploads at once, and their declared bytes together.
MEDIA_RESUMABLE_MAX_IN_FLIGHT = env_int("MEDIA_RESUMABLE_MAX_IN_FLIGHT", 20)
MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT = env_int("MEDIA_RESUMABLE_MAX_BYTES_IN_FLIGHT", 1024 * 1024 * 1024)
# Bytes of a PATCH buffered on local disk before they are stored as a piece (and acknowledged
# by the offset): a server that dies mid-request loses at most this much.
MEDIA_RESUMABLE_PIECE_BYTES = env_int("MEDIA_RESUMABLE_PIECE_BYTES", 8 * 1024 * 1024)
# A stored piece smaller than this is merged with the next one, so a flaky network that
# delivers a few KiB per connection does not leave thousands of objects.
MEDIA_RESUMABLE_MERGE_BELOW = env_int("MEDIA_RESUMABLE_MERGE_BELOW", 1024 * 1024)
# A finisher silent for this long is presumed dead; the sweep finishes the upload instead.
MEDIA_RESUMABLE_FINISH_TIMEOUT = timedelta(seconds=env_int("MEDIA_RESUMABLE_FINISH_TIMEOUT", 600))
# Avatars (PUT /me/avatar, PUT /conversations/{id}/avatar): square crops, in pixels per side.
MEDIA_AVATAR_SIZES = {"large": env_int("MEDIA_AVATAR_LARGE", 640), "small": env_int("MEDIA_AVATAR_SMALL", 160)}
MEDIA_AVATAR_LIMIT = (env_int("MEDIA_AVATAR_LIMIT_PER_HOUR", 20), 3600)
# Who may load a group's avatar: dotted path called as check(user_id=..., conversation_id=...) -> bool.
MEDIA_AVATAR_ACCESS_CHECK = "messaging.selectors.user_can_see_conversation_avatar"
ACCOUNT_DELETION_STEPS.append("media.services.avatars_user_deleted")
CELERY_BEAT_SCHEDULE["media.resumable_sweep"] = {
    "task": "media.resumable_sweep",
    "schedule": timedelta(minutes=5),
}

# --- Calls ---------------------------------------------------------------------------

# (calls settings)
# An offer nobody answered within this many seconds ends as missed (a Celery countdown
# task, and the beat sweep below as the safety net when that task is lost).
CALLS_RING_TIMEOUT_SECONDS = env_int("CALLS_RING_TIMEOUT_SECONDS", 45)
# An engaged device whose last socket closed in an active call and did not come back
# within this many seconds ends the call as failed (leaves it, in a group).
CALLS_RECONNECT_GRACE_SECONDS = env_int("CALLS_RECONNECT_GRACE_SECONDS", 30)
# Group calls are a mesh of the members' devices: at most this many members in the group.
CALLS_GROUP_MAX = env_int("CALLS_GROUP_MAX", 8)
# Bounds on what the signalling carries and keeps (the ring event stores the SDP once per callee).
CALLS_SDP_MAX_BYTES = env_int("CALLS_SDP_MAX_BYTES", 32 * 1024)
CALLS_CANDIDATE_MAX_BYTES = env_int("CALLS_CANDIDATE_MAX_BYTES", 2048)
# ICE candidates the caller's device may send before anyone answered (held for the answerer).
CALLS_ICE_HELD_MAX = env_int("CALLS_ICE_HELD_MAX", 64)
# New calls per caller per window (each rings people, and may push to their phones).
CALLS_OFFER_LIMIT = (env_int("CALLS_OFFER_LIMIT", 30), env_int("CALLS_OFFER_WINDOW_SECONDS", 60))
CALLS_SWEEP_SECONDS = env_int("CALLS_SWEEP_SECONDS", 15)
# Pushes for ringing and missed calls (notifications.services.push_notify); "" sends none.
CALLS_PUSH = env_str("CALLS_PUSH", "notifications.services.push_notify")
# TURN credentials in coturn's REST scheme (use-auth-secret, static-auth-secret = TURN_SECRET).
TURN_URLS = env_list("TURN_URLS")
TURN_SECRET = env_str("TURN_SECRET")
TURN_TTL = env_int("TURN_TTL", 24 * 3600)
CELERY_BEAT_SCHEDULE["calls-sweep"] = {"task": "calls.sweep", "schedule": float(CALLS_SWEEP_SECONDS)}
SOCKET_OPENED_HOOKS.append("calls.sockets.socket_opened")
SOCKET_CLOSED_HOOKS.append("calls.sockets.socket_closed")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "CallMediaEnum": "calls.models.Media",
    "CallStateEnum": "calls.models.CallState",
    "CallOutcomeEnum": "calls.models.Outcome",
    "CallEndReasonEnum": "calls.models.EndReason",
})

# --- Moments -----------------------------------------------------------------------------

# (moments settings)
MOMENTS_TEXT_MAX = env_int("MOMENTS_TEXT_MAX", 2000)
MOMENTS_COMMENT_MAX = env_int("MOMENTS_COMMENT_MAX", 1000)
MOMENTS_MAX_IMAGES = 9
# People an `only` / `except` list may name.
MOMENTS_AUDIENCE_MAX = env_int("MOMENTS_AUDIENCE_MAX", 5000)
MOMENTS_PAGE_DEFAULT = env_int("MOMENTS_PAGE_DEFAULT", 20)
MOMENTS_PAGE_MAX = env_int("MOMENTS_PAGE_MAX", 50)
# The push for likes and comments on one's own post (notifications.services.push_notify); "" sends none.
MOMENTS_PUSH = env_str("MOMENTS_PUSH", "notifications.services.push_notify")
MEDIA_ACCESS_EXTRA_CHECKS.append("moments.selectors.user_can_see_attachment")
ACCOUNT_DELETION_STEPS.append("moments.services.moments_user_deleted")
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "MomentVisibilityModeEnum": "moments.models.Visibility",
    "MomentsWindowEnum": "accounts.models.MomentsWindow",
})

# --- Exports and sunset ------------------------------------------------------------

# (exports settings)
# The sunset phase gate: after the shutdown time most of the API answers 503.
MIDDLEWARE.append("core.sunset.SunsetShutdownMiddleware")
SUNSET_CACHE_SECONDS = env_int("SUNSET_CACHE_SECONDS", 5)
SUNSET_ANNOUNCE_BATCH = env_int("SUNSET_ANNOUNCE_BATCH", 1000)
# Pushes for system.announcement and export.ready: dotted paths called with push_notify's
# keyword arguments; set to "" to send none.
SUNSET_ANNOUNCEMENT_PUSH = env_str("SUNSET_ANNOUNCEMENT_PUSH", "notifications.services.push_notify")
EXPORT_READY_PUSH = env_str("EXPORT_READY_PUSH", "notifications.services.push_notify")
# Archives live outside MEDIA_ROOT so a web server publishing /media/ never serves them.
EXPORT_ROOT = env_str("EXPORT_ROOT") or str(BASE_DIR / "var" / "exports")
EXPORT_TEMP_DIR = env_str("EXPORT_TEMP_DIR")  # empty: the system's temp directory
EXPORT_TTL = timedelta(days=env_int("EXPORT_TTL_DAYS", 7))
EXPORT_MIN_INTERVAL = timedelta(hours=env_int("EXPORT_MIN_INTERVAL_HOURS", 24))
EXPORT_INDEX_MAX_MESSAGES = env_int("EXPORT_INDEX_MAX_MESSAGES", 5000)  # per page of the offline index.html
EXPORT_HEARTBEAT_STALE = timedelta(seconds=env_int("EXPORT_HEARTBEAT_STALE_SECONDS", 120))
EXPORT_MAX_ATTEMPTS = env_int("EXPORT_MAX_ATTEMPTS", 3)
EXPORT_TASK_TIME_LIMIT = env_int("EXPORT_TASK_TIME_LIMIT", 3600)
EXPORT_PUBLIC_BASE_URL = env_str("EXPORT_PUBLIC_BASE_URL")  # for download_url in events; empty = path only
CELERY_BEAT_SCHEDULE["exports-expire"] = {"task": "exports.expire", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["exports-recover"] = {"task": "exports.recover", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["sunset-announce-due"] = {"task": "exports.announce_due", "schedule": 60.0}
ACCOUNT_DELETION_STEPS.append("exports.services.exports_erase_for_user")
ACCOUNT_REGISTERED_HOOKS.append("exports.services.announcement_deliver_to_new_user")

# --- Payments and red packets -------------------------------------------------------

# (payments settings)
# The payment provider for top-ups: "" (off: top-ups answer 403 payments_disabled), "test" (approves at once,
# collects nothing; development, tests and benchmarks only, warned outside DEBUG), or
# "http" (the real-provider adapter, docs/payments.md).
PAYMENTS_BACKEND = env_str("PAYMENTS_BACKEND")
# The one currency of every wallet and packet (ISO 4217); amounts are integer cents of it.
PAYMENTS_CURRENCY = env_str("PAYMENTS_CURRENCY", "CNY").upper()
PAYMENTS_TOPUP_MAX = env_int("PAYMENTS_TOPUP_MAX", 500000)
PAYMENTS_HTTP_URL = env_str("PAYMENTS_HTTP_URL")
PAYMENTS_HTTP_API_KEY = env_str("PAYMENTS_HTTP_API_KEY")
# Webhook signing secrets, comma-separated: several are accepted while one is rotated.
PAYMENTS_HTTP_WEBHOOK_SECRETS = env_list("PAYMENTS_HTTP_WEBHOOK_SECRETS")
PAYMENTS_HTTP_TIMEOUT_SECONDS = float(env_int("PAYMENTS_HTTP_TIMEOUT_SECONDS", 10))
# A webhook signed longer ago than this is refused (replay protection).
PAYMENTS_WEBHOOK_TOLERANCE_SECONDS = env_int("PAYMENTS_WEBHOOK_TOLERANCE_SECONDS", 300)
# Pending top-ups older than this are asked about at the provider by the beat sweep (lost webhooks).
PAYMENTS_RECONCILE_AFTER_SECONDS = env_int("PAYMENTS_RECONCILE_AFTER_SECONDS", 300)
# Reconciliations manage.py ledger_check runs besides the ledger's own: dotted paths of
# functions returning a list of problems.
PAYMENTS_LEDGER_CHECKS = ["redpackets.selectors.ledger_reconcile"]
CELERY_BEAT_SCHEDULE["payments-reconcile-topups"] = {"task": "payments.reconcile_topups", "schedule": 60.0}

# (red packets settings)
RED_PACKET_MAX_TOTAL = env_int("RED_PACKET_MAX_TOTAL", 20000)
RED_PACKET_MAX_COUNT = env_int("RED_PACKET_MAX_COUNT", 100)
RED_PACKET_GREETING_MAX = env_int("RED_PACKET_GREETING_MAX", 64)
# After this the remainder goes back to the sender (beat every minute) and claims get 410.
RED_PACKET_EXPIRY = timedelta(hours=env_int("RED_PACKET_EXPIRY_HOURS", 24))
# A refund task not finished this long after it was enqueued is enqueued again by the sweep.
RED_PACKET_REFUND_LEASE_SECONDS = env_int("RED_PACKET_REFUND_LEASE_SECONDS", 300)
# Pushes for red_packet.claimed and red_packet.refunded: a dotted path called with
# push_notify's keyword arguments; "" sends none.
RED_PACKET_PUSH = env_str("RED_PACKET_PUSH", "notifications.services.push_notify")
CELERY_BEAT_SCHEDULE["redpackets-refund-due"] = {"task": "redpackets.refund_due", "schedule": 60.0}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "RedPacketModeEnum": "redpackets.models.PacketMode",
    "RedPacketStatusEnum": "redpackets.models.PACKET_STATUSES",
    "TopUpStatusEnum": "payments.models.TopUpStatus",
    "TransactionKindEnum": "payments.models.TransactionKind",
    # Named here too, so the two "kind" enums do not collide.
    "AttachmentKindEnum": "media.models.AttachmentKind",
})
# --- Web client ----------------------------------------------------------------------

# (web client settings)
# The browser client's built files (`make web` writes them; they are committed), served at /app/.
WEB_CLIENT_DIR = env_str("WEB_CLIENT_DIR") or str(BASE_DIR / "web" / "dist")
# Browser origins allowed to call the API (CORS, django-cors-headers) and to open /ws/v1 from
# elsewhere, e.g. "https://chat.example.com,http://localhost:5173". The server's own pages
# (/app/) are same-origin and always allowed.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(api/|healthz$)"
# Bearer tokens, never cookies: no credentialed requests.
CORS_ALLOW_CREDENTIALS = False
CORS_EXPOSE_HEADERS = ["Retry-After", "Content-Range", "Content-Disposition", "Accept-Ranges", "ETag"]
CORS_PREFLIGHT_MAX_AGE = 86400
# Extra sources for the page's connect-src (e.g. an API served from another host).
WEB_CLIENT_CONNECT_SRC = env_list("WEB_CLIENT_CONNECT_SRC")

# --- Moderation ------------------------------------------------------------------------

# (moderation settings)
# The spam throttle (moderation.spam): accounts younger than SPAM_NEW_ACCOUNT_HOURS whose score
# reached SPAM_SCORE_LIMIT cannot open more conversations with strangers. 0 hours turns it off.
MESSAGING_SEND_SCREEN = "moderation.spam.sends_screen"
# Answers in the process (no query) whether a batch's senders need the screen at all.
MESSAGING_SEND_SCREEN_NEEDED = "moderation.spam.screening_needed"
SPAM_NEW_ACCOUNT_HOURS = env_int("SPAM_NEW_ACCOUNT_HOURS", 72)
SPAM_SCORE_LIMIT = env_int("SPAM_SCORE_LIMIT", 20)
SPAM_REPORT_WEIGHT = env_int("SPAM_REPORT_WEIGHT", 5)
SPAM_SENDS_PER_POINT = env_int("SPAM_SENDS_PER_POINT", 30)
SPAM_RETRY_AFTER_SECONDS = env_int("SPAM_RETRY_AFTER_SECONDS", 3600)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ReportReasonEnum"] = "moderation.models.ReportReason"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["ReportStatusEnum"] = "moderation.models.ReportStatus"

# --- Operations: logs and metrics --------------------------------------------------------

# Never log phone numbers, tokens or message text (core.logging scrubs and allow-lists fields).
LOG_FORMAT = env_str("LOG_FORMAT", "text")
if LOG_FORMAT not in {"json", "text"}:
    raise ValueError("LOG_FORMAT must be json or text")
from core.logging import logging_config  # noqa: E402 - the formatter module needs no settings

LOGGING = logging_config(log_format=LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))
# GET /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`; unset, it is 404.
METRICS_TOKEN = env_str("METRICS_TOKEN")

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
