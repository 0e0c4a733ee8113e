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
    # A verified API key is trusted by the process that verified it for this long (revocation, expiry
    # and suspension elsewhere take effect within it); 0 looks every key up on every request.
    api_key_cache_seconds: float = Field(default=5.0, ge=0, le=60)
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
    # Steps wait on the database most of the time: more threads than cores keep the worker busy
    # (measured: 8 threads ran about 30 % more steps a second than 2).
    threads: int = 8


class EventSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_EVENTS_", extra="ignore")

    # How long the raw payload of each event is kept (the normalised event stays).
    raw_retention_days: int = Field(default=30, ge=1)
    # How long each connection's delivery log keeps its lines (accepted and refused alike).
    delivery_log_days: int = Field(default=14, ge=1)
    # How often the retention sweep runs, in seconds.
    retention_sweep_seconds: float = Field(default=3600, gt=0)


class MeteringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_METERING_", extra="ignore")

    # How often the usage collector meters what every tenant did, in seconds (0: never).
    collect_seconds: float = Field(default=60, ge=0)
    # Rows newer than this are left for the next pass: a transaction still open when a pass reads
    # may commit a row with an earlier time than rows already read.
    lag_seconds: float = Field(default=30, ge=0)


class PollingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_POLLING_", extra="ignore")

    # The poll scheduler (REST endpoints, drop folders) runs beside the outbox relay when workers run
    # in process; off: this process polls nothing.
    enabled: bool = True
    # How often due connections are looked for, in seconds.
    tick_seconds: float = Field(default=1.0, gt=0)
    # Connections this process polls at once.
    concurrency: int = Field(default=8, ge=1)
    # A claimed connection is this process's for so long (renewed with each page or file); a crashed
    # process's connections are taken up by another once it runs out.
    lease_seconds: int = Field(default=300, ge=30)
    # Pages (REST) or files (drop folder) per run; the rest follow in the next run, at once.
    max_batches: int = Field(default=20, ge=1)
    # The longest a vendor may take to answer one page, in seconds.
    timeout_seconds: float = Field(default=15.0, gt=0)
    max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # After failures the wait doubles from the connection's interval, up to this.
    max_backoff_seconds: int = Field(default=3600, ge=5)
    # Whether polled URLs may be loopback, private or link-local addresses (a tenant could otherwise
    # reach the servers' own network). None: allowed outside production only.
    allow_private_networks: bool | None = None
    # Drop folders live under <drop_root>/<customer id>/, and no customer reads outside its own.
    # None: <data_dir>/drop.
    drop_root: Path | None = None


class ConnectorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_CONNECTORS_", extra="ignore")

    # Whether outbound connections may call loopback, private or link-local addresses (a tenant could
    # otherwise reach the servers' own network). None: allowed outside production only. Systems inside
    # a plant's network are reached through its on-premise relay, never by opening this.
    allow_private_networks: bool | None = None


class LimitSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_LIMITS_", extra="ignore")

    # Events each tenant may send per second on the HTTP ingress paths (a token bucket per tenant,
    # shared by all processes through Redis); 0 turns the limit off.
    events_per_second: float = Field(default=500.0, ge=0)
    # The bucket's size: how many events a tenant may send at once after a quiet spell.
    events_burst: int = Field(default=1000, ge=1)


class ObservabilitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_OBSERVABILITY_", extra="ignore")

    # Scrapers of ``/metrics`` send ``Authorization: Bearer <token>``. Empty: open outside production,
    # absent (404) in production.
    metrics_token: SecretStr = SecretStr("")


class MqttSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_MQTT_", extra="ignore")

    # The broker edge gateways publish to: mqtt://host:1883, or mqtts://host:8883 for TLS. Empty: no
    # MQTT ingress (the embedded default: mqtt connections can be set up but receive nothing).
    url: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    # Each customer's topics live under <topic_root>/<customer id>/: a connection's topic filter (even
    # "#") never reaches another customer's messages. Broker ACLs keep each gateway inside its own.
    topic_root: str = Field(default="andon", pattern=r"^[^/+#$\x00][^/+#\x00]*$")
    # Client ids are <client_prefix>-<connection id>, stable across restarts, so the broker keeps each
    # subscription's session and the QoS 1 messages published while Andon was away.
    client_prefix: str = Field(default="andon", min_length=1, max_length=40)
    # How often the set of mqtt connections is read again (created, edited, disabled, deleted ones).
    reload_seconds: float = Field(default=10, gt=0)
    # While the broker is away: reconnect after this long, doubling up to the most.
    reconnect_min_seconds: float = Field(default=1, gt=0)
    reconnect_max_seconds: float = Field(default=30, gt=0)
    # Larger messages are refused (413) and logged on their connection.
    max_payload_bytes: int = Field(default=256 * 1024, ge=1)


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_ENGINE_", extra="ignore")

    # How long a worker holds a claimed step; past it (the worker died), the scheduler queues it again.
    lease_seconds: float = Field(default=60, gt=0)
    # A step queued this long without a worker taking it had its message lost: it is sent again. Keep
    # it above the normal queueing delay under load, or the sweep sends duplicates (harmless, wasted).
    stalled_after_seconds: float = Field(default=60, gt=0)
    # The scheduler runs inside the web process in embedded mode (with the in-process workers).
    scheduler_tick_seconds: float = Field(default=0.2, gt=0)
    # Steps of one tenant running at once across all workers (platform/workers/fairness.py); 0: no
    # limit. Set it below the total worker threads, so a flooding tenant leaves threads to the others.
    tenant_concurrency: int = Field(default=6, ge=0)


class StripeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ANDON_STRIPE_", extra="ignore")

    # Empty: no Stripe sync, webhook or reconciliation (each says so); needs the ``stripe`` extra.
    api_key: SecretStr = SecretStr("")
    # The endpoint's signing secret (whsec_...), from the webhook endpoint Stripe's dashboard shows.
    webhook_secret: SecretStr = SecretStr("")
    # How old a webhook's signed timestamp may be, in seconds (Stripe's own default is 300).
    webhook_tolerance_seconds: int = Field(default=300, ge=1)
    # Empty: Stripe's API; the contract tests point it at their fake Stripe.
    api_base: str = ""


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
    # ``andon dev`` plays plant traffic into the demo every so many seconds (0: never).
    demo_traffic_seconds: float = Field(default=0, ge=0)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    events: EventSettings = Field(default_factory=EventSettings)
    metering: MeteringSettings = Field(default_factory=MeteringSettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    polling: PollingSettings = Field(default_factory=PollingSettings)
    connectors: ConnectorSettings = Field(default_factory=ConnectorSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    stripe: StripeSettings = Field(default_factory=StripeSettings)

    def private_networks_allowed(self, chosen: bool | None) -> bool:
        """A private-network switch as set, or by default: allowed outside production only."""
        return chosen if chosen is not None else self.environment is not Environment.PRODUCTION

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
