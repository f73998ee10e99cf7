"""cloudops settings: one file, driven by environment variables.

Every value an operator can set is read here, once, through the `_env_*` readers below, and a
bad value stops the process with a message naming the variable. Database URLs are parsed by
django-environ. Runtime-editable settings (provider configuration, metrics configuration) live
in the database instead. The code each library part calls into the apps with is named in the
wiring block at the end.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from cloudops.keyfile import KeyFileError, read_or_create_key
from cloudops.structured_logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_str(name: str, default: str = "") -> str:
    """The variable exactly as set. (django-environ's own reader would take a value starting
    with `$` for the name of another variable, and a secret key may start with `$`.)"""
    value = os.environ.get(name)
    return default if value is None else value


def _env_list(name: str, default: list[str]) -> list[str]:
    """Comma-separated items, blanks dropped; unset is `default`, empty is []."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def _env_path(name: str, default: str) -> Path:
    return Path(_env_str(name, default=default)).expanduser().resolve()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def _env_number(name: str, default: float, cast: type[int] | type[float], minimum: float = 0) -> Any:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        number = cast(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a valid {cast.__name__}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r} must be at least {minimum}")
    return number


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    return _env_number(name, default, int, minimum)


def _env_float(name: str, default: float, minimum: float = 0) -> float:
    return _env_number(name, default, float, minimum)


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env_str(name, default=default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _env_networks(name: str, default: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    raw = _env_str(name, default=default)
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or CIDR network ({exc})") from exc
    return tuple(networks)


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _env_s3_hosts(name: str) -> frozenset[str]:
    """Comma-separated DNS names, lower-cased (Host matching ignores case); no port, scheme,
    path or wildcard, and not the host of SIMPLETUNER_PUBLIC_URL, which serves the API."""
    hosts = frozenset(host.lower().rstrip(".") for host in _env_list(name, default=[]))
    for host in hosts:
        if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
            raise ImproperlyConfigured(
                f"{name}: {host!r} is not a host name (letters, digits, hyphens and dots; no port, scheme or path)"
            )
    if _public is not None and _public.hostname in hosts:
        raise ImproperlyConfigured(
            f"{name}: {_public.hostname!r} is the host of SIMPLETUNER_PUBLIC_URL; an S3 host serves only S3, "
            "so give the S3 endpoint a host name of its own"
        )
    return hosts


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


# --- Paths -----------------------------------------------------------------------------------
# SIMPLETUNER_HOME holds everything the server writes: config/ (database, generated keys),
# outputs/ (job uploads), backups. Tests point it at a temporary directory.
SIMPLETUNER_HOME = _env_path("SIMPLETUNER_HOME", "~/.simpletuner")
CONFIG_DIR = _private_dir(SIMPLETUNER_HOME / "config")
CLOUD_DIR = _private_dir(CONFIG_DIR / "cloud")
OUTPUTS_DIR = SIMPLETUNER_HOME / "outputs"
DEFAULT_SQLITE_PATH = CLOUD_DIR / "jobs.db"

# --- Core ------------------------------------------------------------------------------------
DEBUG = _env_bool("DEBUG", default=False)

try:
    SECRET_KEY = _env_str("SECRET_KEY", default="") or read_or_create_key(CONFIG_DIR / "secret_key")
except (OSError, KeyFileError) as exc:
    raise ImproperlyConfigured(
        f"SECRET_KEY is not set and cannot be persisted under {CONFIG_DIR}: {exc}. "
        "Set SECRET_KEY or make SIMPLETUNER_HOME writable."
    ) from exc

SIMPLETUNER_PUBLIC_URL = _env_str("SIMPLETUNER_PUBLIC_URL", default="").rstrip("/")
_public = urlsplit(SIMPLETUNER_PUBLIC_URL) if SIMPLETUNER_PUBLIC_URL else None
if _public is not None and (_public.scheme not in ("http", "https") or not _public.hostname):
    raise ImproperlyConfigured(f"SIMPLETUNER_PUBLIC_URL={SIMPLETUNER_PUBLIC_URL!r} must be an absolute http(s) URL")

# Where the docs site (docs/, MkDocs) is served; setup hints (GET /api/cloud/hints) link into
# it. The default is where `mkdocs serve` puts it; point it at your team's copy.
SIMPLETUNER_DOCS_URL = _env_str("SIMPLETUNER_DOCS_URL", default="http://127.0.0.1:8000/").rstrip("/") + "/"
if urlsplit(SIMPLETUNER_DOCS_URL).scheme not in ("http", "https") or not urlsplit(SIMPLETUNER_DOCS_URL).hostname:
    raise ImproperlyConfigured(f"SIMPLETUNER_DOCS_URL={SIMPLETUNER_DOCS_URL!r} must be an absolute http(s) URL")

ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", default=[])
if _public is not None and _public.hostname:  # validated above: an http(s) URL with a host
    ALLOWED_HOSTS.append(_public.hostname)
    CSRF_TRUSTED_ORIGINS.append(f"{_public.scheme}://{_public.netloc}")

# Peers allowed to tell us the client address through X-Forwarded-For / X-Real-IP.
# Loopback by default because tunnels (cloudflared, ngrok) connect from localhost.
TRUSTED_PROXIES = _env_networks("TRUSTED_PROXIES", "127.0.0.1/32,::1/128")

SIMPLETUNER_ALLOW_REGISTRATION = _env_bool("SIMPLETUNER_ALLOW_REGISTRATION", default=False)

INSTALLED_APPS = [
    "daphne",
    "cloudops.apps.AdminConfig",  # django.contrib.admin with cloudops.admin_site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "cloudops",
    "audit",
    "providers",
    "storage",
    "governance",
    "notifications",
    "cloudops.metrics",
    "cloudops.ratelimit",
]

MIDDLEWARE = [
    # Django's own metrics (django-prometheus), first and last as it places them; they record
    # only while the `django` metrics category is exported (cloudops/metrics/django_process.py).
    "cloudops.metrics.django_process.DjangoMetricsBeforeMiddleware",
    "cloudops.middleware.RequestContextMiddleware",
    "cloudops.ratelimit.middleware.RateLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "cloudops.static.StaticFilesMiddleware",
    # Below static files (not counted), above everything that can answer early (CSRF, auth).
    "cloudops.metrics.http.HttpMetricsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Innermost but for the metrics one: turns an action the audit trail refused into a 503
    # for the admin too.
    "cloudops.middleware.AuditRefusalMiddleware",
    "cloudops.metrics.django_process.DjangoMetricsAfterMiddleware",
]
# django-prometheus's histogram buckets (request and query latency, in seconds), from 0.5 ms:
# its default starts at 10 ms, below which all our API requests and queries would fall.
PROMETHEUS_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    float("inf"),
)

ROOT_URLCONF = "cloudops.urls"
ASGI_APPLICATION = "cloudops.asgi.application"

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

# --- Database --------------------------------------------------------------------------------
DATABASES = {"default": environ.Env.db_url_config(_env_str("DATABASE_URL", default=f"sqlite:///{DEFAULT_SQLITE_PATH}"))}
_db = DATABASES["default"]
_SUPPORTED_ENGINES = ("django.db.backends.sqlite3", "django.db.backends.postgresql", "django.db.backends.mysql")
if _db.get("ENGINE") not in _SUPPORTED_ENGINES:
    raise ImproperlyConfigured(
        "DATABASE_URL must be sqlite:///path, postgres://user@host:port/db or mysql://user@host:port/db"
    )


def _tune_database(config: dict[str, Any]) -> None:
    """Server tuning for a database connection (the main one, and a separate rate-limit state one)."""
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A server with several writers: WAL lets readers run beside the writer, IMMEDIATE takes
        # the write lock at BEGIN (so no transaction fails half-way on lock upgrade), and the busy
        # timeout makes writers queue instead of raising "database is locked".
        config.setdefault("OPTIONS", {}).update(
            {
                "transaction_mode": "IMMEDIATE",
                "timeout": _env_float("SQLITE_BUSY_TIMEOUT", default=30.0),
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
            }
        )
        if config["NAME"] != ":memory:":
            Path(config["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    elif config["ENGINE"] == "django.db.backends.mysql":
        config.setdefault("OPTIONS", {}).update(
            {
                "charset": "utf8mb4",
                "isolation_level": "read committed",
                "init_command": "SET sql_mode='STRICT_ALL_TABLES'",
            }
        )
    # SQLite connections are a file handle: kept by each request thread (cloudops/handler.py)
    # instead of opened per request. A server database's default stays one connection per
    # request; a connection pooler or CONN_MAX_AGE is the operator's choice there.
    sqlite = config["ENGINE"] == "django.db.backends.sqlite3"
    config["CONN_MAX_AGE"] = _env_int("CONN_MAX_AGE", default=600 if sqlite else 0)
    config["CONN_HEALTH_CHECKS"] = True


_tune_database(_db)
# Parallel checkouts on one machine share the database servers; each can name its own test DB.
# (SQLite test databases are files in each run's own SIMPLETUNER_HOME: see tests/settings.py.)
if _env_str("CLOUDOPS_TEST_DB_NAME", default="") and _db["ENGINE"] != "django.db.backends.sqlite3":
    _db["TEST"] = {"NAME": _env_str("CLOUDOPS_TEST_DB_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, caches, channels -----------------------------------------------------------------
REDIS_URL = _env_str("REDIS_URL", default="").strip()
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured("REDIS_URL must be a redis://host:port/db, rediss:// or unix:// URL")
# Seconds a connect or a call to REDIS_URL (cache, channel layer) may take before it degrades as
# cloudops/redis_backends.py and the README's "When Redis is down or hung" say. A healthy Redis
# answers in well under a millisecond; 1 s absorbs a fork or a slow network, and a request that
# waits on it once stays far inside clients' and Prometheus' (10 s) timeouts.
REDIS_TIMEOUT = _env_float("REDIS_TIMEOUT", default=1.0, minimum=0.01)
if REDIS_URL:
    _redis_timeouts = {"socket_connect_timeout": REDIS_TIMEOUT, "socket_timeout": REDIS_TIMEOUT}
    CACHES = {
        "default": {"BACKEND": "cloudops.redis_backends.RedisCache", "LOCATION": REDIS_URL, "OPTIONS": _redis_timeouts}
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "cloudops.redis_backends.RedisChannelLayer",
            "CONFIG": {"url": REDIS_URL, "timeout": REDIS_TIMEOUT},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Rate limiting -------------------------------------------------------------------------
# The middleware's default rule (RATE_LIMIT_CALLS per RATE_LIMIT_PERIOD seconds, per client;
# RATE_LIMIT_CALLS=0 turns rate limiting off) and the state every process shares:
# STATE_BACKEND=database (default; the Django database, or STATE_BACKEND_URL's database as
# alias `ratelimit`), redis (STATE_BACKEND_URL, else REDIS_URL; the default when REDIS_URL is
# set) or memory (tests only). See cloudops/ratelimit/ and the README's "Rate limiting".
RATE_LIMIT_CALLS = _env_int("RATE_LIMIT_CALLS", default=100)
RATE_LIMIT_PERIOD = _env_int("RATE_LIMIT_PERIOD", default=60, minimum=1)
# When the state backend is down: admit (true, default) or refuse with 503 (false) requests
# of rules without their own mode. The auth rules (login, register, API keys) always refuse.
RATE_LIMIT_FAIL_OPEN = _env_bool("RATE_LIMIT_FAIL_OPEN", default=True)
# Audit the first refusal per IP and window as `rate_limited`.
RATE_LIMIT_AUDIT = _env_bool("RATE_LIMIT_AUDIT", default=True)
# STATE_BACKEND=database on SQLite: a process that is the only one using the state decides in
# memory and writes the logs within 50 ms (cloudops/ratelimit/backends/writebehind.py); false:
# every check is a statement in the database.
RATE_LIMIT_WRITE_BEHIND = _env_bool("RATE_LIMIT_WRITE_BEHIND", default=True)


def _env_rate_limit_rules(name: str) -> list[Any]:
    """Extra rules, matched before the defaults: JSON [[pattern, calls, period, methods], ...]."""
    import json

    raw = _env_str(name, default="").strip()
    if not raw:
        return []
    try:
        rules = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON ({exc})") from None
    if not isinstance(rules, list) or not all(isinstance(rule, list) for rule in rules):
        raise ImproperlyConfigured(f"{name} must be a JSON list of [pattern, calls, period, methods] lists")
    from cloudops.ratelimit.spec import parse_rule_spec

    for rule in rules:
        try:
            parse_rule_spec(rule)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {exc}") from None
    return rules


RATE_LIMIT_RULES = _env_rate_limit_rules("RATE_LIMIT_RULES")
STATE_BACKEND = _env_choice("STATE_BACKEND", "redis" if REDIS_URL else "database", ("database", "redis", "memory"))
STATE_BACKEND_URL = _env_str("STATE_BACKEND_URL", default="").strip()
RATE_LIMIT_REDIS_URL = (STATE_BACKEND_URL or REDIS_URL) if STATE_BACKEND == "redis" else ""
if STATE_BACKEND == "redis" and urlsplit(RATE_LIMIT_REDIS_URL).scheme not in ("redis", "rediss", "unix"):
    raise ImproperlyConfigured("STATE_BACKEND=redis needs STATE_BACKEND_URL or REDIS_URL as redis://host:port/db")
# Seconds a Redis connect or command may take before the rule's fail mode applies.
RATE_LIMIT_REDIS_TIMEOUT = _env_float("RATE_LIMIT_REDIS_TIMEOUT", default=1.0, minimum=0.01)
RATE_LIMIT_DATABASE = "default"
if STATE_BACKEND == "database" and STATE_BACKEND_URL:
    _state_db = environ.Env.db_url_config(STATE_BACKEND_URL)
    if _state_db.get("ENGINE") not in _SUPPORTED_ENGINES:
        raise ImproperlyConfigured(
            "STATE_BACKEND_URL must be a sqlite, postgres or mysql URL with STATE_BACKEND=database"
        )
    _tune_database(_state_db)  # BEGIN IMMEDIATE on SQLite is the per-check lock
    DATABASES["ratelimit"] = _state_db
    RATE_LIMIT_DATABASE = "ratelimit"
    DATABASE_ROUTERS = ["cloudops.ratelimit.router.StateDatabaseRouter"]

# --- Auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Refresh ApiKey.last_used_at at most this often, so authentication is not a write per request.
API_KEY_LAST_USED_RESOLUTION_SECONDS = _env_int("API_KEY_LAST_USED_RESOLUTION_SECONDS", default=60)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so unauthenticated calls get 401 with a WWW-Authenticate header, not 403.
        "cloudops.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON for API clients; DRF's browsable pages only for a browser (cloudops/browsable.py).
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "cloudops.browsable.BrowserContentNegotiation",
    # JSON within limits (depth, finite numbers, 64-bit integers, valid Unicode): cloudops/jsonbody.py.
    "DEFAULT_PARSER_CLASSES": ["cloudops.jsonbody.StrictJSONParser"],
    # drf-spectacular, plus the error answers every operation shares (cloudops/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "cloudops.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "cloudops.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "cloudops API",
    "DESCRIPTION": "Operations server for SimpleTuner cloud training.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Static files ----------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Secrets ---------------------------------------------------------------------------------
# The chain cloudops/secrets.py reads every token and key from, highest priority first:
# environment, a private file under SIMPLETUNER_HOME, AWS Secrets Manager, Vault/OpenBao.
# A remote store is used only when its name/path is set. Vault and AWS credentials themselves
# (VAULT_TOKEN, AWS_ACCESS_KEY_ID, ...) are read by the client when it is created, not here,
# so they never sit in the settings module.
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _env_secret_names(name: str, default: str) -> list[str]:
    names = [item.strip() for item in _env_str(name, default=default).split(",") if item.strip()]
    for item in names:
        if not _SECRET_NAME.match(item):
            raise ImproperlyConfigured(f"{name}: {item!r} is not a valid secret name")
    return list(dict.fromkeys(names))


def _env_secrets_file(name: str) -> Path | None:
    raw = _env_str(name, default="").strip()
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ImproperlyConfigured(f"{name}={raw!r} must end in .json, .yaml or .yml")
    return path


def _env_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{name}={value!r} must be an http(s) URL")
    return value.rstrip("/")


# Each process caches what a remote store returned for this long; rotation shows within it.
SIMPLETUNER_SECRETS_TTL = _env_float("SIMPLETUNER_SECRETS_TTL", default=300.0)
# After a failed read a store is not asked again for this long (the failure is reported and
# lower-priority stores answer meanwhile), so an outage does not add a timeout to every request.
SIMPLETUNER_SECRETS_RETRY = _env_float("SIMPLETUNER_SECRETS_RETRY", default=10.0)
SIMPLETUNER_SECRETS_TIMEOUT = _env_float("SIMPLETUNER_SECRETS_TIMEOUT", default=5.0, minimum=0.1)
# Unset: $SIMPLETUNER_HOME/secrets.json, secrets.yaml or secrets.yml, whichever exists.
SIMPLETUNER_SECRETS_FILE = _env_secrets_file("SIMPLETUNER_SECRETS_FILE")
# Keys that health and `manage.py secrets_check` require; a missing one degrades health.
SIMPLETUNER_REQUIRED_SECRETS = _env_secret_names("SIMPLETUNER_REQUIRED_SECRETS", "")

SIMPLETUNER_AWS_SECRET_NAME = _env_str("SIMPLETUNER_AWS_SECRET_NAME", default="").strip()
# boto3 reads AWS_DEFAULT_REGION, profiles and AWS_ENDPOINT_URL itself; AWS_REGION is the
# name most other SDKs and platforms (Lambda, ECS) use, so it is honoured too.
SIMPLETUNER_AWS_REGION = _env_str("AWS_REGION", default="").strip() or None

SIMPLETUNER_VAULT_PATH = _env_str("SIMPLETUNER_VAULT_PATH", default="").strip().strip("/")
SIMPLETUNER_VAULT_MOUNT = _env_str("SIMPLETUNER_VAULT_MOUNT", default="secret").strip().strip("/")
# OpenBao's own CLI reads BAO_ADDR / BAO_TOKEN; either spelling works, VAULT_* first.
_vault_addr_var = "VAULT_ADDR" if _env_str("VAULT_ADDR", default="").strip() else "BAO_ADDR"
_vault_addr = _env_str(_vault_addr_var, default="").strip()
SIMPLETUNER_VAULT_ADDR = _env_url(_vault_addr_var, _vault_addr) if _vault_addr else ""
SIMPLETUNER_VAULT_NAMESPACE = _env_str("VAULT_NAMESPACE", default="").strip() or None
SIMPLETUNER_VAULT_SKIP_VERIFY = _env_bool("VAULT_SKIP_VERIFY", default=False)
if SIMPLETUNER_VAULT_PATH and not SIMPLETUNER_VAULT_ADDR:
    raise ImproperlyConfigured("SIMPLETUNER_VAULT_PATH is set but VAULT_ADDR (or BAO_ADDR) is not")
if SIMPLETUNER_VAULT_PATH and not SIMPLETUNER_VAULT_MOUNT:
    raise ImproperlyConfigured("SIMPLETUNER_VAULT_MOUNT must not be empty (the KV v2 mount, default secret)")

# --- Audit trail -----------------------------------------------------------------------------
# The chain key is SIMPLETUNER_AUDIT_KEY from the secrets chain (audit/chain.py); without it the
# server generates this file once (mode 0600) and the health `audit` component warns.
AUDIT_KEY_FILE = CONFIG_DIR / "audit_key"
# Days of entries `manage.py prune_audit` keeps; 0 keeps everything (nothing is ever pruned).
SIMPLETUNER_AUDIT_RETENTION_DAYS = _env_int("SIMPLETUNER_AUDIT_RETENTION_DAYS", default=0)

# --- Logging ---------------------------------------------------------------------------------
SIMPLETUNER_LOG_LEVEL = _env_choice(
    "SIMPLETUNER_LOG_LEVEL", "INFO", ("debug", "info", "warning", "error", "critical")
).upper()
SIMPLETUNER_LOG_FORMAT = _env_choice("SIMPLETUNER_LOG_FORMAT", "json", ("json", "text"))
SIMPLETUNER_LOG_FILE = _env_str("SIMPLETUNER_LOG_FILE", default="") or None
LOGGING = logging_config(
    level=SIMPLETUNER_LOG_LEVEL, json_output=SIMPLETUNER_LOG_FORMAT == "json", log_file=SIMPLETUNER_LOG_FILE
)

# --- Providers and jobs ----------------------------------------------------------------------
REPLICATE_API_BASE_URL = _env_str("REPLICATE_API_BASE_URL", default="https://api.replicate.com/v1").rstrip("/")
if urlsplit(REPLICATE_API_BASE_URL).scheme not in ("http", "https"):
    raise ImproperlyConfigured(f"REPLICATE_API_BASE_URL={REPLICATE_API_BASE_URL!r} must be an http(s) URL")
# The SimpleTuner trainer on Replicate; a provider's `model` / `version_override` win over it.
REPLICATE_MODEL = _env_str("REPLICATE_MODEL", default="simpletuner/advanced-trainer")

# Outbound HTTP to providers. A provider's own proxy_url / ssl_ca_bundle / ssl_verify /
# http_timeout (admin or API) win over these; NO_PROXY applies to both.
OUTBOUND_HTTPS_PROXY = _env_str("HTTPS_PROXY", default="") or _env_str("https_proxy", default="")
OUTBOUND_HTTP_PROXY = _env_str("HTTP_PROXY", default="") or _env_str("http_proxy", default="")
OUTBOUND_NO_PROXY = _env_str("NO_PROXY", default="") or _env_str("no_proxy", default="")
for _name, _proxy in (("HTTPS_PROXY", OUTBOUND_HTTPS_PROXY), ("HTTP_PROXY", OUTBOUND_HTTP_PROXY)):
    if _proxy and (urlsplit(_proxy).scheme not in ("http", "https") or not urlsplit(_proxy).hostname):
        raise ImproperlyConfigured(f"{_name}={_proxy!r} must be an http(s)://host:port proxy URL")
SIMPLETUNER_CA_BUNDLE = _env_str("SIMPLETUNER_CA_BUNDLE", default="")
if SIMPLETUNER_CA_BUNDLE and not Path(SIMPLETUNER_CA_BUNDLE).expanduser().is_file():
    raise ImproperlyConfigured(f"SIMPLETUNER_CA_BUNDLE={SIMPLETUNER_CA_BUNDLE!r} is not a readable file")
SIMPLETUNER_SSL_VERIFY = _env_bool("SIMPLETUNER_SSL_VERIFY", default=True)
SIMPLETUNER_HTTP_TIMEOUT = _env_float("SIMPLETUNER_HTTP_TIMEOUT", default=30.0, minimum=0.001)
# Retries of idempotent provider calls on 429 / 5xx / connection errors: exponential backoff
# with full jitter, honouring Retry-After up to SIMPLETUNER_HTTP_RETRY_AFTER_MAX seconds.
SIMPLETUNER_HTTP_RETRIES = _env_int("SIMPLETUNER_HTTP_RETRIES", default=3)
SIMPLETUNER_HTTP_BACKOFF = _env_float("SIMPLETUNER_HTTP_BACKOFF", default=0.5)
SIMPLETUNER_HTTP_BACKOFF_MAX = _env_float("SIMPLETUNER_HTTP_BACKOFF_MAX", default=10.0)
SIMPLETUNER_HTTP_RETRY_AFTER_MAX = _env_float("SIMPLETUNER_HTTP_RETRY_AFTER_MAX", default=60.0)
# Circuit breaker per provider, shared by every server process through the database.
SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD = _env_int("SIMPLETUNER_CIRCUIT_FAILURE_THRESHOLD", default=5, minimum=1)
SIMPLETUNER_CIRCUIT_OPEN_SECONDS = _env_float("SIMPLETUNER_CIRCUIT_OPEN_SECONDS", default=60.0)
SIMPLETUNER_CIRCUIT_HALF_OPEN_PROBES = _env_int("SIMPLETUNER_CIRCUIT_HALF_OPEN_PROBES", default=1, minimum=1)

# Where the server itself answers on this machine; the last fallback for the URLs given to
# jobs (after a provider's s3_public_url and SIMPLETUNER_PUBLIC_URL).
SIMPLETUNER_LOCAL_URL = _env_str(
    "SIMPLETUNER_LOCAL_URL",
    default=f"{'https' if _env_str('SIMPLETUNER_SSL_CERT', default='') else 'http'}://127.0.0.1:"
    f"{_env_int('PORT', default=8080, minimum=1)}",
).rstrip("/")

# Background sync: polls active jobs whose status has not been pushed for
# SIMPLETUNER_SYNC_STALE_SECONDS, every SIMPLETUNER_SYNC_INTERVAL seconds, in one process at a
# time (a lease in the database). Started by the ASGI server process (cloudops/asgi.py);
# set SIMPLETUNER_BACKGROUND_SYNC=false there to run `manage.py sync_jobs --loop` instead.
SIMPLETUNER_BACKGROUND_SYNC = _env_bool("SIMPLETUNER_BACKGROUND_SYNC", default=True)
SIMPLETUNER_SYNC_INTERVAL = _env_float("SIMPLETUNER_SYNC_INTERVAL", default=30.0, minimum=1)
SIMPLETUNER_SYNC_STALE_SECONDS = _env_float("SIMPLETUNER_SYNC_STALE_SECONDS", default=120.0)
# A job left `pending` this long (the server died between recording and submitting it) fails.
SIMPLETUNER_SUBMIT_TIMEOUT = _env_float("SIMPLETUNER_SUBMIT_TIMEOUT", default=3600.0, minimum=1)
# A recorded job whose start at the provider has not happened this long after a process took
# it on (the process died) is started again by a retry of its submission or by the sync.
# Keep it above the slowest start (a dataset upload to Replicate).
SIMPLETUNER_SUBMIT_CLAIM_SECONDS = _env_float("SIMPLETUNER_SUBMIT_CLAIM_SECONDS", default=600.0, minimum=10)

# Approvals (governance): a held submission is cancelled when nobody decided within this many
# hours; a job that declares no `max_runtime_minutes` is estimated at this run time by the
# `cost_exceeds` rules (its hardware's price per second times this).
SIMPLETUNER_APPROVAL_TTL_HOURS = _env_float("SIMPLETUNER_APPROVAL_TTL_HOURS", default=72.0, minimum=0.01)
SIMPLETUNER_APPROVAL_DEFAULT_RUNTIME_MINUTES = _env_float(
    "SIMPLETUNER_APPROVAL_DEFAULT_RUNTIME_MINUTES", default=60.0, minimum=1
)

# The local provider: one directory per job (config, output.log, exit status), commands.
SIMPLETUNER_LOCAL_JOBS_DIR = _env_path("SIMPLETUNER_LOCAL_JOBS_DIR", str(SIMPLETUNER_HOME / "jobs"))
# Who may run a custom `config.command`: staff (default), all (every user) or none.
SIMPLETUNER_LOCAL_COMMANDS = _env_choice("SIMPLETUNER_LOCAL_COMMANDS", "staff", ("staff", "all", "none"))
# Seconds between SIGTERM and SIGKILL when a local job is cancelled.
SIMPLETUNER_LOCAL_CANCEL_GRACE = _env_float("SIMPLETUNER_LOCAL_CANCEL_GRACE", default=10.0)
# Seconds a local job reported ended (by its own webhook) may keep running for final uploads
# before it is stopped like a cancelled one.
SIMPLETUNER_LOCAL_EXIT_GRACE = _env_float("SIMPLETUNER_LOCAL_EXIT_GRACE", default=300.0)
# Server variables a local job inherits; nothing else (no tokens, no DATABASE_URL) leaks to it.
SIMPLETUNER_LOCAL_ENV_PASSTHROUGH = _env_list(
    "SIMPLETUNER_LOCAL_ENV_PASSTHROUGH",
    default=["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "CUDA_VISIBLE_DEVICES", "HF_HOME"],
)
# Datasets a job may name with `dataset` (a .zip or a directory, uploaded for Replicate).
SIMPLETUNER_DATASETS_DIR = _env_path("SIMPLETUNER_DATASETS_DIR", str(SIMPLETUNER_HOME / "datasets"))
# Job logs kept in the database and returned by /logs: the last this many bytes.
SIMPLETUNER_JOB_LOG_MAX_BYTES = _env_int("SIMPLETUNER_JOB_LOG_MAX_BYTES", default=65536, minimum=1024)

# --- Output storage (S3-compatible endpoint) ---------------------------------------------------
# Objects live at {root}/{bucket}/{key}; the root is OUTPUTS_DIR unless a provider's
# s3_output_path says otherwise. Limits fail uploads with S3 errors before a byte is written.
SIMPLETUNER_S3_MAX_OBJECT_BYTES = _env_int("SIMPLETUNER_S3_MAX_OBJECT_BYTES", default=5 * 1024**4, minimum=1)
SIMPLETUNER_S3_MIN_FREE_BYTES = _env_int("SIMPLETUNER_S3_MIN_FREE_BYTES", default=1024**3)
# A job's upload credentials end with it: at once when it is cancelled or fails, this long
# after it completed (its final uploads may race the completion webhook; as long as a local
# job may keep running after reporting completion, SIMPLETUNER_LOCAL_EXIT_GRACE).
SIMPLETUNER_UPLOAD_GRACE_SECONDS = _env_int("SIMPLETUNER_UPLOAD_GRACE_SECONDS", default=300, minimum=0)
# Multipart uploads (and stray temporary files) untouched this long are removed by
# `manage.py storage_cleanup`.
SIMPLETUNER_S3_MULTIPART_TTL_SECONDS = _env_int("SIMPLETUNER_S3_MULTIPART_TTL_SECONDS", default=86400, minimum=60)
SIMPLETUNER_S3_MAX_SKEW_SECONDS = _env_int("SIMPLETUNER_S3_MAX_SKEW_SECONDS", default=900, minimum=1)
# How long the download links of GET /api/cloud/jobs/{id}/outputs work (SigV4 allows 7 days).
SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS = _env_int("SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS", default=900, minimum=1)
if SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS > 7 * 24 * 3600:
    raise ImproperlyConfigured("SIMPLETUNER_OUTPUT_URL_EXPIRES_SECONDS is at most 604800 (7 days, SigV4's limit)")
# fsync each object before it becomes visible, so a power loss cannot leave a torn file behind
# a committed name. Turn off only on storage that is already synchronous.
SIMPLETUNER_S3_FSYNC = _env_bool("SIMPLETUNER_S3_FSYNC", default=True)
# Write uploaded bodies around the page cache (O_DIRECT) where the file system allows: less CPU
# per byte, and uploads do not push other files out of the cache (storage/direct.py).
SIMPLETUNER_S3_DIRECT_WRITES = _env_bool("SIMPLETUNER_S3_DIRECT_WRITES", default=True)
# Host names whose root is the S3 endpoint (`http://<host>/{bucket}/{key}`), for clients that
# cannot sign for an endpoint with a path such as /api/cloud/storage (s3cmd, the MinIO client).
# Such a host serves nothing else (docs/storage-hosts.md); each is allowed in ALLOWED_HOSTS.
SIMPLETUNER_S3_HOSTS = _env_s3_hosts("SIMPLETUNER_S3_HOSTS")
ALLOWED_HOSTS.extend(sorted(SIMPLETUNER_S3_HOSTS - set(ALLOWED_HOSTS)))
# Accept the legacy `X-Upload-Token: <access key id>` header (bearer, no signature).
SIMPLETUNER_S3_LEGACY_UPLOAD_TOKEN = _env_bool("SIMPLETUNER_S3_LEGACY_UPLOAD_TOKEN", default=True)

# --- Request bodies ----------------------------------------------------------------------------
# Largest request body outside the S3 endpoint (which streams bodies under its own limits) and
# webhooks (SIMPLETUNER_WEBHOOK_MAX_BYTES): 413 past it, before Django reads more than this + 1
# bytes, held in memory, never spooled to disk (cloudops/bodies.py). The default leaves a job
# submit room for its 256 KiB of configs written out with whitespace and escapes.
SIMPLETUNER_MAX_REQUEST_BYTES = _env_int("SIMPLETUNER_MAX_REQUEST_BYTES", default=1024 * 1024, minimum=1024)
# Django parses what the bound admits in memory too: a file field of an admin form is kept in
# memory up to this size (Django's default, 2.5 MiB, unless the bound is higher).
FILE_UPLOAD_MAX_MEMORY_SIZE = max(2621440, SIMPLETUNER_MAX_REQUEST_BYTES)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2621440, SIMPLETUNER_MAX_REQUEST_BYTES)

# --- Inbound webhooks and live events --------------------------------------------------------
# POST /api/webhooks/{provider} (providers/webhooks/). Larger bodies are refused with 413
# before they are read whole.
SIMPLETUNER_WEBHOOK_MAX_BYTES = _env_int("SIMPLETUNER_WEBHOOK_MAX_BYTES", default=1024 * 1024, minimum=1024)
# A webhook-id is remembered for the Standard Webhooks timestamp tolerance (5 minutes, fixed)
# past its timestamp plus this margin, so a replay is always caught.
SIMPLETUNER_WEBHOOK_REPLAY_MARGIN = _env_int("SIMPLETUNER_WEBHOOK_REPLAY_MARGIN", default=300, minimum=60)
# How long a signing secret fetched from Replicate stays in the cache (REPLICATE_WEBHOOK_SECRET
# from the secrets chain always wins); on a mismatch it is re-fetched at most once per
# SIMPLETUNER_WEBHOOK_SECRET_REFETCH seconds, so bad signatures cannot hammer Replicate's API.
SIMPLETUNER_WEBHOOK_SECRET_TTL = _env_int("SIMPLETUNER_WEBHOOK_SECRET_TTL", default=3600, minimum=60)
SIMPLETUNER_WEBHOOK_SECRET_REFETCH = _env_int("SIMPLETUNER_WEBHOOK_SECRET_REFETCH", default=60, minimum=1)
# GET /api/events/stream (server-sent events, providers/stream.py): heartbeat comment interval,
# how many recent events any process can replay for Last-Event-ID (kept in the database), and
# how many undelivered events one connection may queue before it is dropped as too slow.
SIMPLETUNER_EVENTS_HEARTBEAT = _env_float("SIMPLETUNER_EVENTS_HEARTBEAT", default=15.0, minimum=0.1)
SIMPLETUNER_EVENTS_BUFFER = _env_int("SIMPLETUNER_EVENTS_BUFFER", default=1000, minimum=10)
SIMPLETUNER_EVENTS_QUEUE = _env_int("SIMPLETUNER_EVENTS_QUEUE", default=256, minimum=1)
# Open streams re-check their API key / session and user this often: a revoked key stops
# streaming, and a user who lost (or gained) the right to see every job reconnects.
SIMPLETUNER_EVENTS_REAUTH_SECONDS = _env_float("SIMPLETUNER_EVENTS_REAUTH_SECONDS", default=60.0, minimum=0.1)
# Open streams at once, per user and for the whole instance (every process), counted in the
# rate limiter's state (cloudops/ratelimit/slots.py); 429 with Retry-After past either. A stream
# holds its slot as a lease refreshed every third of SIMPLETUNER_EVENTS_SLOT_LEASE seconds, so
# the slots of a process killed without cleanup come free when their leases run out.
SIMPLETUNER_EVENTS_MAX_PER_USER = _env_int("SIMPLETUNER_EVENTS_MAX_PER_USER", default=10, minimum=1)
SIMPLETUNER_EVENTS_MAX_STREAMS = _env_int("SIMPLETUNER_EVENTS_MAX_STREAMS", default=500, minimum=1)
SIMPLETUNER_EVENTS_SLOT_LEASE = _env_float("SIMPLETUNER_EVENTS_SLOT_LEASE", default=60.0, minimum=1)

# --- Outbound notifications (docs/notifications.md) -----------------------------------------------
# Channels may point at private, loopback and link-local addresses only with this set (an
# internal receiver); otherwise such destinations are refused at creation and at every send.
SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE = _env_bool("SIMPLETUNER_NOTIFICATIONS_ALLOW_PRIVATE", default=False)
# The delivery worker of each server process (where SIMPLETUNER_BACKGROUND_SYNC runs) looks for
# due deliveries this often; one send may take SIMPLETUNER_NOTIFICATIONS_TIMEOUT seconds; a
# claimed delivery whose worker died is taken over after SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS.
SIMPLETUNER_NOTIFICATIONS_INTERVAL = _env_float("SIMPLETUNER_NOTIFICATIONS_INTERVAL", default=2.0, minimum=0.1)
SIMPLETUNER_NOTIFICATIONS_TIMEOUT = _env_float("SIMPLETUNER_NOTIFICATIONS_TIMEOUT", default=10.0, minimum=0.1)
SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS = _env_float(
    "SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS", default=300.0, minimum=1
)
if SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS < 10 * SIMPLETUNER_NOTIFICATIONS_TIMEOUT + 1:
    raise ImproperlyConfigured(
        "SIMPLETUNER_NOTIFICATIONS_LEASE_SECONDS must exceed 10 x SIMPLETUNER_NOTIFICATIONS_TIMEOUT "
        "(a worker sends up to 10 claimed deliveries in a row)"
    )
# After a webhook secret is rotated, the old one still signs (beside the new) this long.
SIMPLETUNER_NOTIFICATIONS_SECRET_GRACE_HOURS = _env_float(
    "SIMPLETUNER_NOTIFICATIONS_SECRET_GRACE_HOURS", default=24.0, minimum=0
)
# Delivered and failed deliveries that finished more than this many days ago are deleted, with
# their attempts, by each process's retention loop (notifications.retention); 0 keeps them all.
# Pending deliveries are never deleted, whatever their age.
SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS = _env_int("SIMPLETUNER_NOTIFICATIONS_RETENTION_DAYS", default=30)
# Email channels send through this SMTP server; the password comes from the secrets chain
# (SIMPLETUNER_SMTP_PASSWORD) when a message is sent.
SIMPLETUNER_SMTP_HOST = _env_str("SIMPLETUNER_SMTP_HOST", default="").strip()
SIMPLETUNER_SMTP_PORT = _env_int("SIMPLETUNER_SMTP_PORT", default=587, minimum=1)
SIMPLETUNER_SMTP_TLS = _env_bool("SIMPLETUNER_SMTP_TLS", default=True)
SIMPLETUNER_SMTP_USER = _env_str("SIMPLETUNER_SMTP_USER", default="").strip()
SIMPLETUNER_SMTP_FROM = _env_str("SIMPLETUNER_SMTP_FROM", default="cloudops@localhost").strip()

# --- Prometheus metrics ------------------------------------------------------------------------
# What the scrape exports is runtime configuration (admin, /api/cloud/metrics/config); the
# optional scrape token SIMPLETUNER_METRICS_TOKEN comes from the secrets chain at request time.
# Each server process adds its HTTP request counts to the database this often (seconds).
SIMPLETUNER_METRICS_FLUSH_SECONDS = _env_float("SIMPLETUNER_METRICS_FLUSH_SECONDS", default=10.0, minimum=0.1)
# Aggregates that scan tables (jobs, cost limits) are served from the cache while younger than
# this, and recomputed by each server's metrics thread before then. 0: computed on every scrape.
SIMPLETUNER_METRICS_CACHE_SECONDS = _env_float("SIMPLETUNER_METRICS_CACHE_SECONDS", default=30.0)

# --- HTTPS and the server ----------------------------------------------------------------------
# With both set, `manage.py serve` (and `make run`) speak TLS themselves.
SIMPLETUNER_SSL_CERT = _env_str("SIMPLETUNER_SSL_CERT", default="") or None
SIMPLETUNER_SSL_KEY = _env_str("SIMPLETUNER_SSL_KEY", default="") or None
if bool(SIMPLETUNER_SSL_CERT) != bool(SIMPLETUNER_SSL_KEY):
    raise ImproperlyConfigured("SIMPLETUNER_SSL_CERT and SIMPLETUNER_SSL_KEY must be set together")
for _name, _file in (("SIMPLETUNER_SSL_CERT", SIMPLETUNER_SSL_CERT), ("SIMPLETUNER_SSL_KEY", SIMPLETUNER_SSL_KEY)):
    if _file and not os.access(_file, os.R_OK):
        raise ImproperlyConfigured(f"{_name}={_file!r} is not a readable file")
# uvicorn applies back-pressure to request bodies; daphne holds each one whole in memory
# (django/daphne#483), which multi-GB uploads cannot afford. See the README's figures.
SIMPLETUNER_SERVER = _env_choice("SIMPLETUNER_SERVER", "uvicorn", ("uvicorn", "daphne"))
# Threads that run requests' middleware and views (cloudops/handler.py): at most this many
# requests of a process run their Python at once, and (with CONN_MAX_AGE) each thread keeps
# one database connection, so this also bounds a process's connections. Requests beyond it wait.
# As many more threads are lent to S3 requests for their short database calls (their bodies
# stream on the event loop); S3 requests beyond those get a thread of their own, as Django's.
SIMPLETUNER_REQUEST_THREADS = _env_int("SIMPLETUNER_REQUEST_THREADS", default=16, minimum=1)

# --- Backup and restore ----------------------------------------------------------------------
# The SQLite database's backups (cloudops/backup): where `manage.py backup` writes by default,
# what `list_backups` shows, and where `restore` keeps the safety copy of the database it
# replaces. Created on first use, mode 0700 (backups hold the whole database).
SIMPLETUNER_BACKUP_DIR = _env_path("SIMPLETUNER_BACKUP_DIR", str(SIMPLETUNER_HOME / "backups"))
# Longest a restore waits for the migrations that bring an older backup up to date.
SIMPLETUNER_RESTORE_MIGRATE_TIMEOUT = _env_float("SIMPLETUNER_RESTORE_MIGRATE_TIMEOUT", default=3600.0, minimum=1)

# --- Wiring ----------------------------------------------------------------------------------
# The app code the library calls, by dotted path (docs/architecture.md: the library in
# cloudops/ imports no app; these names are how it reaches them). A new provider, health check
# or metric source is one line here.

# Provider clients by name; the name is what jobs and /api/cloud/providers/{provider} use.
PROVIDER_CLIENTS = {
    "local": "providers.local.LocalProvider",
    "replicate": "providers.replicate.ReplicateProvider",
}
# Health checks, in the order the health document lists them; each returns a
# cloudops.health.Component or None (not configured).
HEALTH_CHECKS = [
    "cloudops.health.check_database",
    "cloudops.health.check_secrets",
    "cloudops.health.check_background",
    "audit.health.check_audit",
    "cloudops.ratelimit.health.check_rate_limit_backend",
    "providers.health.check_circuit_breakers",
    "storage.health.check_output_storage",
    *(["providers.health.check_channel_layer"] if REDIS_URL else []),
    "providers.health.check_webhook_signatures",
]
READINESS_CHECKS = ["cloudops.health.check_database"]
# Live checks of each configured provider, added by ?include_providers=true.
PROVIDER_HEALTH_CHECKS = ["providers.health.check_local", "providers.health.check_replicate"]
# Secrets the health document requires beyond SIMPLETUNER_REQUIRED_SECRETS: functions returning
# the keys enabled features need right now (e.g. the Replicate token only while replicate is on).
HEALTH_SECRET_REQUIREMENTS = ["providers.health.required_secrets"]
# Prometheus sources per category (dotted paths of `collect() -> Iterable[Metric]`). rate_limits
# reads the rate limiter's shared state; approvals exports nothing until the approvals feature
# exists (no made-up zeros).
METRICS_SOURCES: dict[str, list[str]] = {
    "jobs": ["providers.metrics.collect_jobs"],
    "http": ["cloudops.metrics.sources.http.collect"],
    "rate_limits": ["cloudops.ratelimit.metrics.collect"],
    "approvals": ["governance.metrics.collect_approvals", "governance.metrics.collect_quotas"],
    "audit": ["audit.metrics.collect_activity", "audit.metrics.collect_verification"],
    "health": ["cloudops.metrics.sources.health.collect", "audit.metrics.collect_last_backup"],
    "circuit_breakers": ["providers.metrics.collect_circuit_breakers"],
    "provider": ["providers.metrics.collect_cost_limits", "providers.metrics.collect_credit_balances"],
    "django": ["cloudops.metrics.django_process.collect"],
    "notifications": ["notifications.metrics.collect"],
}
# Setup hints (GET /api/cloud/hints): functions returning the cloudops.hints.Hint list whose
# condition holds now.
HINT_SOURCES = [
    "providers.hints.public_url_hints",
    "providers.hints.provider_token_hints",
    "providers.hints.webhook_signature_hints",
    "cloudops.metrics.hints.metrics_export_hints",
]
# Who may do what by role (viewer, researcher, lead, admin): the module the library asks
# (cloudops.permissions) for a user's role, the actions a role may not do, and the columns
# loaded with a user so the role costs no extra query.
ROLE_POLICY = "governance.roles"
# How code outside the notifications app queues an event (cloudops.notify.notify).
NOTIFIER = "notifications.outbox.notify"
# How library code records an audit entry (cloudops.auditing.record).
AUDIT_RECORDER = "audit.services.audit_record"
# Rate-limit keys apps contribute, by the name rules use as their `key` (cloudops.ratelimit.keys).
RATE_LIMIT_KEYS = {"storage": "storage.ratelimit.STORAGE_KEY"}
# Functions turning an access key id into a storage.credentials.Credential (first match wins).
S3_CREDENTIAL_RESOLVERS = [
    "storage.credentials.api_key_credential",
    "storage.credentials.download_credential",
    "storage.credentials.job_credential",
]
# How the admin's job page lists and downloads a job's output files (storage.job_outputs).
JOB_OUTPUTS = "storage.job_outputs"
