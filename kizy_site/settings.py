"""Settings, all from the environment, with embedded defaults (SQLite, filesystem storage, embedded Redis).

`KIZY_ENV=production` switches on the hardened profile that `manage.py check --deploy` accepts.
"""
from __future__ import annotations

from pathlib import Path

import environ

from .home import REPO_ROOT, kizy_home, persisted_secret_key

env = environ.Env()
BASE_DIR = REPO_ROOT
KIZY_HOME: Path = kizy_home()
KIZY_ENV = env.str("KIZY_ENV", default="development")
PRODUCTION = KIZY_ENV == "production"

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if PRODUCTION:  # several containers must share one key, so it cannot be generated per machine
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("Set SECRET_KEY in production (50+ random characters, the same on every machine).")
    SECRET_KEY = persisted_secret_key(KIZY_HOME)
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
PORT = env.int("PORT", default=8000)
SITE_URL = env.str("KIZY_SITE_URL", default=f"http://127.0.0.1:{PORT}")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "allauth",
    "allauth.account",
    "accounts",
    "models_catalog",
    "studio",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "kizy_site.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.ActiveWorkspaceMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "kizy_site.urls"
ASGI_APPLICATION = "kizy_site.asgi.application"
SITE_ID = 1

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
                "accounts.context_processors.workspace",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{KIZY_HOME / 'kizy.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # WAL + a busy timeout let the web process and the worker share the file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "account_login"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="none")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapters.KizyAccountAdapter"
ACCOUNT_LOGOUT_ON_GET = False

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.smtp.EmailBackend" if PRODUCTION
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Kizy <noreply@localhost>")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = KIZY_HOME / "staticfiles"
MEDIA_ROOT = KIZY_HOME / "media"
KIZY_MODEL_STORE = Path(env.str("KIZY_MODEL_STORE", default=str(KIZY_HOME / "models")))

# --- Storage: private filesystem by default, S3/R2 when a bucket is configured ---------------
KIZY_SIGNED_URL_TTL = env.int("KIZY_SIGNED_URL_TTL", default=3600)
KIZY_S3_BUCKET = env.str("KIZY_S3_BUCKET", default="")
if KIZY_S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": KIZY_S3_BUCKET,
            "endpoint_url": env.str("KIZY_S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("KIZY_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("KIZY_S3_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("KIZY_S3_REGION", default="auto"),
            "default_acl": None,  # private objects; reads go through presigned URLs
            "querystring_auth": True,
            "querystring_expire": KIZY_SIGNED_URL_TTL,
            "file_overwrite": False,
            "signature_version": "s3v4",
            "addressing_style": env.str("KIZY_S3_ADDRESSING_STYLE", default="path"),
        },
    }
else:
    _default_storage = {
        "BACKEND": "kizy_site.storage.PrivateFileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Redis: Celery broker, channel layer, rate limits ----------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL and PRODUCTION:  # an embedded Redis per process: web and workers would never meet
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "Set REDIS_URL in production (e.g. redis://host:6379/0), the same on the web server and every worker: "
        "without it each process starts its own private Redis, and queued jobs never reach a worker."
    )
if not REDIS_URL:
    from .embedded_redis import embedded_redis_url

    REDIS_URL = embedded_redis_url()

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # redis-py 8 times out a silent receive() after 5 s unless told otherwise (FEASIBILITY.md).
            "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
            "prefix": env.str("KIZY_CHANNEL_PREFIX", default="kizy"),
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("KIZY_TASK_VISIBILITY_TIMEOUT", default=3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# --- API ----------------------------------------------------------------------------------------
KIZY_API_RATE_LIMIT = env.int("KIZY_API_RATE_LIMIT", default=600)  # requests per key per window
KIZY_API_RATE_WINDOW = env.int("KIZY_API_RATE_WINDOW", default=60)  # seconds
REST_FRAMEWORK = {
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.PerKeyRateThrottle"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.WorkspaceSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasWorkspaceScope"],
    "DEFAULT_PARSER_CLASSES": [
        "accounts.api.parsers.JsonObjectParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "accounts.api.errors.json_exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Kizy API",
    "DESCRIPTION": "Generate images and videos, manage models and LoRAs, fine-tune adapters.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "kizy_..."}}
    },
    "SECURITY": [{"ApiKey": []}],
    # Every model family in the catalog, and the subset an uploaded LoRA may declare.
    "ENUM_NAME_OVERRIDES": {
        "ModelFamilyEnum": "models_catalog.families.Family",
        "RunnableFamilyEnum": "models_catalog.families.RUNNABLE_FAMILY_CHOICES",
        "WebhookDeliveryStatusEnum": "studio.models.DeliveryStatus",
        "CatalogStatusEnum": "models_catalog.models.Status",
    },
}

# --- Compute ------------------------------------------------------------------------------------
KIZY_COMPUTE_BACKEND = env.str("KIZY_COMPUTE_BACKEND", default="local")
KIZY_NODE_PACKS = env.list("KIZY_NODE_PACKS", default=["kizy"])
KIZY_REUSE_NODE_OUTPUTS = env.bool("KIZY_REUSE_NODE_OUTPUTS", default=True)

# --- Security -----------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if "*" in ALLOWED_HOSTS:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("ALLOWED_HOSTS must name your hosts in production; '*' is refused.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
KIZY_DEVICE = env.str("KIZY_DEVICE", default="auto")  # auto: CUDA when torch sees a GPU, else CPU

CELERY_BEAT_SCHEDULE = {
    "requeue-stale-jobs": {"task": "studio.requeue_stale_jobs", "schedule": 60.0},
}
# Lets webhooks reach receivers on this machine or a private network (development only; the
# production profile ignores it).
KIZY_WEBHOOK_ALLOW_PRIVATE = env.bool("KIZY_WEBHOOK_ALLOW_PRIVATE", default=False)

# --- Model & LoRA catalog (models_catalog) -----------------------------------------------------
CIVITAI_API_BASE = env.str("CIVITAI_API_BASE", default="https://civitai.com/api/v1")
CIVITAI_TOKEN = env.str("CIVITAI_TOKEN", default="")
HF_ENDPOINT = env.str("HF_ENDPOINT", default="https://huggingface.co")
HF_TOKEN = env.str("HF_TOKEN", default="")
# Highest CivitAI content rating kept by syncs and imports: 1 PG, 2 PG-13, 4 R, 8 X, 16 XXX.
KIZY_CATALOG_NSFW_MAX = env.int("KIZY_CATALOG_NSFW_MAX", default=2)
KIZY_CATALOG_MAX_DOWNLOAD_BYTES = env.int("KIZY_CATALOG_MAX_DOWNLOAD_BYTES", default=30 * 1024**3)
KIZY_CATALOG_MAX_UPLOAD_BYTES = env.int("KIZY_CATALOG_MAX_UPLOAD_BYTES", default=2 * 1024**3)
KIZY_CATALOG_HTTP_ATTEMPTS = env.int("KIZY_CATALOG_HTTP_ATTEMPTS", default=5)
KIZY_CATALOG_SYNC_LIMIT = env.int("KIZY_CATALOG_SYNC_LIMIT", default=500)
# Nightly beat syncs: both sources in production; none in development unless set ("none" turns them off).
from models_catalog.schedule import beat_schedule, beat_sync_sources  # noqa: E402

KIZY_CATALOG_SYNC_SOURCES = beat_sync_sources(env.str("KIZY_CATALOG_SYNC_SOURCES", default=None), production=PRODUCTION)
# "auto": sentence embeddings when the bundled MiniLM package is installed, else lexical; "lexical": never.
KIZY_SUGGEST_ENGINE = env.str("KIZY_SUGGEST_ENGINE", default="auto")

CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    **beat_schedule(KIZY_CATALOG_SYNC_SOURCES, limit=KIZY_CATALOG_SYNC_LIMIT),
}

# --- Training (training, gpu_workers.training) ---------------------------------------------------
# A training's lease: a worker renews it every third of this; a killed worker's job is taken over
# (and resumed from its last checkpoint) once it expires.
KIZY_TRAINING_LEASE_SECONDS = env.int("KIZY_TRAINING_LEASE_SECONDS", default=60)
# Loose files Django parses in one request: training.uploads.UploadLimits.max_files (a test keeps the
# two equal). More than that is refused by the training views with the usual "zip them" message.
DATA_UPLOAD_MAX_NUMBER_FILES = 200
CELERY_BEAT_SCHEDULE["requeue-stale-trainings"] = {"task": "training.requeue_stale_trainings", "schedule": 60.0}
# Tests that run a real worker process beside the test run need it to share the test database; with
# SQLite that means a file (under the throwaway KIZY_HOME the test plugin sets) instead of memory.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", str(KIZY_HOME / "test-db.sqlite3"))
# ControlNet weights per model family and preprocessor, as model-store references. The default points
# at the tiny demo ControlNets that `load_demo_catalog` generates.
KIZY_CONTROLNETS = env.json("KIZY_CONTROLNETS", default={
    family: {"canny": f"local:tiny/{family}-controlnet", "depth": f"local:tiny/{family}-controlnet"}
    for family in ("sd15", "sdxl", "flux")
})
# Memory the worker may spend keeping pipelines warm (least recently used ones are dropped beyond it).
KIZY_PIPELINE_CACHE_BYTES = env.int("KIZY_PIPELINE_CACHE_BYTES", default=8 * 2**30)
# A generation job's lease: a killed worker's job is taken over (resuming from node checkpoints) after it.
KIZY_JOB_LEASE_SECONDS = env.int("KIZY_JOB_LEASE_SECONDS", default=60)
