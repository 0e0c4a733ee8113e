"""One typed settings object, read from ``ANDON_*`` environment variables.

Each group is its own ``BaseSettings`` with its own prefix, so the variables the architecture
names (``ANDON_DATABASE_URL``, ``ANDON_REDIS_URL``) map to ``settings.database.url`` and
``settings.redis.url`` without a nesting delimiter.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_DATABASE_", extra="ignore")

    url: str = "sqlite+aiosqlite:///.andon/andon.db"
    # Migrations and grants run as the schema owner; the app connects as a non-owner role so that
    # PostgreSQL row-level security applies to it. Empty means "same as url".
    admin_url: str = ""
    # The non-owner role that ``andon db upgrade`` grants table privileges to (PostgreSQL only).
    app_role: str = ""
    pool_size: int = 10
    echo: bool = False

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    @property
    def owner_url(self) -> str:
        return self.admin_url or self.url


class RedisSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_REDIS_", extra="ignore")

    # Empty: the in-process Dramatiq StubBroker (embedded mode).
    url: str = ""
    # Prefix of the queues' keys: deployments (or test workers) sharing one Redis stay apart.
    namespace: str = "andon"


class SecuritySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_SECURITY_", extra="ignore")

    secret_key: SecretStr = SecretStr("")
    # Largest request body accepted, in bytes; larger bodies get 413.
    max_body_bytes: int = 5 * 1024 * 1024
    # API keys are touched (last_used_at) at most this often, to keep reads read-only.
    api_key_touch_seconds: int = 60
    # Fernet keys (comma-separated, newest first) sealing stored secrets; empty: derived from secret_key.
    encryption_keys: str = ""
    # Local accounts: this many wrong passwords in a row lock the account for lockout_minutes.
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    min_password_length: int = 12


class SessionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_SESSION_", extra="ignore")

    cookie_name: str = "andon_session"
    idle_minutes: int = 30
    absolute_hours: int = 12
    # Touch last_seen_at at most this often (sliding idle timeout without a write per request).
    touch_seconds: int = 60
    # None: secure cookies exactly when the base URL is https.
    cookie_secure: bool | None = None


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_WORKERS_", extra="ignore")

    # The outbox relay and a Dramatiq worker run inside the web process (embedded mode, one process);
    # production turns this off and runs ``andon worker`` processes instead.
    in_process: bool = True
    threads: int = 2


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_HTTP_", extra="ignore")

    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".andon")
    log_level: str = "INFO"
    log_json: bool = True
    # Shows queued e-mails (with their reset and invitation links) at /dev/mailbox: never in production.
    dev_mailbox: bool = False
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)

    @property
    def secure_cookies(self) -> bool:
        if self.session.cookie_secure is not None:
            return self.session.cookie_secure
        return self.http.base_url.startswith("https://")

    def encryption_keys(self) -> list[str]:
        from andon.platform.crypto.secretbox import derive_key

        explicit = [k.strip() for k in self.security.encryption_keys.split(",") if k.strip()]
        return explicit or [derive_key(self.security.secret_key.get_secret_value())]

    @model_validator(mode="after")
    def _require_production_secrets(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            missing = []
            if len(self.security.secret_key.get_secret_value()) < 32:
                missing.append("ANDON_SECURITY_SECRET_KEY (at least 32 characters)")
            if not self.database.is_postgres:
                missing.append("ANDON_DATABASE_URL (postgresql+asyncpg://...)")
            if not self.redis.url:
                missing.append("ANDON_REDIS_URL")
            if self.dev_mailbox:
                missing.append("ANDON_DEV_MAILBOX must be off")
            if missing:
                raise ValueError("production settings missing: " + ", ".join(missing))
        elif not self.security.secret_key.get_secret_value():
            # Development and tests get a random key per process; nothing durable depends on it yet.
            self.security.secret_key = SecretStr(secrets.token_urlsafe(32))
        return self
