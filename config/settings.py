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
    "realtime",
    "notifications",
    "media",
    "exports",
    "moderation",
]

MIDDLEWARE = [
    "core.middleware.RequestLogMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.query.UnknownQueryParametersMiddleware",
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
    options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 3))
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
            "reconnect_timeout": max(5, 2 * env_int("DB_CONNECT_TIMEOUT", 3)),
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
            "NAME": BASE_DIR / "db.sqlite3",
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

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "msgr"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
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
    "contacts.notify_contact_joined": {"queue": "fanout"},
    "exports.announce_batch": {"queue": "fanout"},
    "media.*": {"queue": "media"},
    "exports.*": {"queue": "exports"},
}
# Logging is Django's LOGGING (JSON or text); a worker must not replace it with its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

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
    "DESCRIPTION": "Phone-contacts-based messaging backend. See README for the WebSocket protocol.",
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
# Run after commit with user_id=..., when a number registers for the first time:
ACCOUNT_REGISTERED_HOOKS: list[str] = []
# Run in order inside the deletion transaction with user_id=...:
ACCOUNT_DELETION_STEPS: list[str] = []

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
MESSAGING_GROUP_MAX_MEMBERS = env_int("MESSAGING_GROUP_MAX_MEMBERS", 1000)
MESSAGING_BROADCAST_MAX_MEMBERS = env_int("MESSAGING_BROADCAST_MAX_MEMBERS", 100000)
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
# Replay: events per database page; live rings buffered during a replay before
# the buffer is dropped and the database re-read instead.
WS_REPLAY_PAGE = env_int("WS_REPLAY_PAGE", 200)
WS_REPLAY_BUFFER_MAX = env_int("WS_REPLAY_BUFFER_MAX", 2000)
# Group commit: most message.send frames handled in one transaction per process.
WS_SEND_BATCH_MAX = env_int("WS_SEND_BATCH_MAX", 64)
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
if env_str("MEDIA_S3_BUCKET"):
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
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
            },
        },
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
# Who besides the uploader may read an attachment: dotted path called as
# check(user_id=..., attachment_id=...) -> bool. Empty: the uploader only.
MEDIA_ACCESS_CHECK = "messaging.selectors.user_can_see_attachment"
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
EXPORT_INDEX_MAX_MESSAGES = env_int("EXPORT_INDEX_MAX_MESSAGES", 5000)  # per conversation, in index.html
EXPORT_HEARTBEAT_STALE = timedelta(seconds=env_int("EXPORT_HEARTBEAT_STALE_SECONDS", 120))
EXPORT_MAX_ATTEMPTS = env_int("EXPORT_MAX_ATTEMPTS", 3)
EXPORT_TASK_TIME_LIMIT = env_int("EXPORT_TASK_TIME_LIMIT", 3600)
EXPORT_PUBLIC_BASE_URL = env_str("EXPORT_PUBLIC_BASE_URL")  # for download_url in events; empty = path only
CELERY_BEAT_SCHEDULE["exports-expire"] = {"task": "exports.expire", "schedule": 3600.0}
CELERY_BEAT_SCHEDULE["exports-recover"] = {"task": "exports.recover", "schedule": 300.0}
CELERY_BEAT_SCHEDULE["sunset-announce-due"] = {"task": "exports.announce_due", "schedule": 60.0}
ACCOUNT_DELETION_STEPS.append("exports.services.exports_erase_for_user")
ACCOUNT_REGISTERED_HOOKS.append("exports.services.announcement_deliver_to_new_user")

# --- Moderation ------------------------------------------------------------------------

# (moderation settings)
# The spam throttle (moderation.spam): accounts younger than SPAM_NEW_ACCOUNT_HOURS whose score
# reached SPAM_SCORE_LIMIT cannot open more conversations with strangers. 0 hours turns it off.
MESSAGING_SEND_SCREEN = "moderation.spam.sends_screen"
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
