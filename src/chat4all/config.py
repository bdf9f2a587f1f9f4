"""Settings: environment variables ``CHAT4ALL_*`` and an optional TOML file.

Precedence, highest first: constructor arguments, environment, the file named by
``CHAT4ALL_CONFIG_FILE``, defaults. Every backend is chosen by a URL; the embedded profile is
simply every default (SQLite in ``data_dir``, the log in the database, presence in memory).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHAT4ALL_", extra="ignore")

    # where the HTTP server listens and how it is reached from outside
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_base_url: str | None = None
    node_id: str = Field(default_factory=lambda: f"node-{secrets.token_hex(4)}")
    # addresses (comma-separated; CIDRs, or "*") whose X-Forwarded-For/-Proto are believed: the
    # gateway's. Anyone else's are ignored, so a client cannot choose its own address.
    forwarded_allow_ips: str = "127.0.0.1"

    data_dir: Path = Path("./data")

    # backends, chosen by URL
    database_url: str | None = None  # default: sqlite+aiosqlite:///<data_dir>/chat4all.db
    # R11.4: reads (history, conversation lists, statuses) go here while the primary is unreachable,
    # e.g. the replicas' port of an HAProxy that follows Patroni; unset, reads fail with the primary
    database_read_url: str | None = None
    event_log_url: str = "db"
    metadata_url: str = "db"
    presence_url: str = "memory://"
    # isolates deployments sharing servers: prefixes Kafka topics and groups, etcd and Redis keys
    namespace: str = Field("", pattern=r"^[a-z0-9_-]{0,40}$")
    database_pool_size: int = Field(10, ge=1)
    log_append_timeout_s: float = Field(5.0, gt=0)
    # Kafka topics: copies of each partition, and how many must have a record before it is
    # acknowledged (acks=all); 3 and 2 survive a broker's death without losing or refusing writes
    log_replication_factor: int = Field(1, ge=1, le=16)
    log_min_insync_replicas: int | None = Field(None, ge=1, le=16)  # default: the broker's setting
    router_session_timeout_ms: int = Field(10_000, ge=1000)
    presence_ttl_s: float = Field(300.0, gt=0)

    # auth
    jwt_secret: str | None = None  # default: generated once and kept in <data_dir>/jwt-secret
    access_token_ttl_s: int = Field(3600, gt=0)
    refresh_token_ttl_s: int = Field(30 * 24 * 3600, gt=0)
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    # a revoked session (logout, refresh-token reuse, password change) stops working within this
    # many seconds on every node: how long a process trusts its last look at a session's state
    auth_revocation_check_s: float = Field(2.0, gt=0, le=60)
    # a spent refresh token presented again this soon returns the same new pair (a client's retry)
    # instead of revoking the session
    auth_refresh_reuse_grace_s: float = Field(10.0, ge=0, le=300)
    # a socket that brings no token in its handshake must send {"type":"auth","token":...} this soon
    ws_auth_timeout_s: float = Field(5.0, gt=0, le=60)

    # browsers: origins (scheme://host[:port], comma-separated) allowed to call the REST API with
    # CORS and to open WebSockets; the server's own origin is always allowed for WebSockets
    cors_origins: str = ""

    # messaging
    max_text_chars: int = Field(10_000, gt=0)
    max_body_bytes: int = Field(1_048_576, gt=0)
    log_partitions: int = Field(8, ge=1, le=1024)
    router_batch_size: int = Field(500, ge=1)
    router_poll_interval_s: float = Field(0.2, gt=0)
    ws_heartbeat_timeout_s: float = Field(60.0, gt=0)
    ws_send_queue: int = Field(1000, ge=1)

    # observability
    log_level: str = "INFO"
    log_json: bool = True
    # OpenTelemetry: spans go to this OTLP/HTTP endpoint (e.g. http://collector:4318/v1/traces);
    # unset, no span is made at all and traces live only in traceparent, logs and events
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(1.0, ge=0.0, le=1.0)
    access_log: bool = True

    migrate_on_start: bool | None = None  # default: only for SQLite

    # files (R5): where the bytes go, and the rules of uploads
    blob_url: str | None = None  # default: file://<data_dir>/files; or s3://BUCKET?endpoint=…&access_key=…
    max_file_bytes: int = Field(2 * 1024**3, gt=0)
    # parts of an upload; the blob store may raise it (S3 needs 5 MiB), only local disk goes lower
    file_part_bytes: int = Field(8 * 1024**2, ge=64 * 1024)
    file_upload_url_ttl_s: int = Field(3600, ge=1)
    file_download_url_ttl_s: int = Field(3600, ge=1)
    # uploads still incomplete after this long are dropped; checked every file_cleanup_interval_s
    file_upload_max_age_s: int = Field(24 * 3600, ge=1)
    file_cleanup_interval_s: float = Field(600.0, gt=0)

    # webhooks (R6.5, R8.5): signed callbacks from a durable outbox
    webhooks_timeout_s: float = Field(5.0, gt=0, le=60)
    webhooks_max_retries: int = Field(3, ge=0, le=20)
    webhooks_retry_base_s: float = Field(1.0, gt=0)  # retries after base, 2×base, 4×base, ...
    # a webhook whose callbacks failed (every attempt) this many times in a row is disabled
    webhooks_disable_after: int = Field(20, ge=1)
    webhooks_max_per_user: int = Field(10, ge=1)
    # SSRF: private, loopback, link-local, ... addresses are refused unless allowed here
    webhooks_allow_private: bool = False
    webhooks_allowed_networks: str | None = None  # CIDRs, comma-separated, e.g. 127.0.0.0/8,::1/128 to try on one machine
    webhooks_poll_interval_s: float = Field(0.5, gt=0)
    webhooks_max_in_flight: int = Field(32, ge=1)
    webhooks_claim_ttl_s: float = Field(30.0, gt=0)  # a callback held by a worker that died is retried after this
    webhooks_retention_s: float = Field(7 * 24 * 3600, gt=0)  # finished callbacks and their attempts are kept this long

    # connectors (R9, R14): external channels, configured in the metadata store (chat4all connectors)
    connectors_refresh_interval_s: float = Field(5.0, gt=0)  # how often configuration changes are picked up
    connectors_poll_interval_s: float = Field(0.2, gt=0)  # the dispatcher's look for due deliveries when not woken
    connectors_max_attempts: int = Field(5, ge=1, le=50)
    connectors_retry_base_s: float = Field(1.0, gt=0)  # retries after base, 2×base, 4×base, 8×base (±jitter)
    connectors_retry_jitter: float = Field(0.2, ge=0, lt=1)
    connectors_breaker_failures: int = Field(5, ge=1)  # consecutive failures that open a connector's breaker
    connectors_breaker_open_s: float = Field(5.0, gt=0)  # how long it stays open before a probe
    connectors_claim_ttl_s: float = Field(60.0, gt=0)  # a delivery held by a dispatcher that died is retried after this
    # the simulated WhatsApp, Instagram and Messenger, configured at start if they are not; default: SQLite only
    connectors_simulated: bool | None = None

    # abuse limits (429 rate_limited): counted in Redis when limits_url (default: presence_url) is
    # redis://, else in this process's memory; defaults a person or an app never meets
    limits_url: str | None = None
    login_per_address_per_minute: int = Field(60, ge=1)
    login_per_account_per_minute: int = Field(30, ge=1)
    login_free_failures: int = Field(5, ge=0)  # wrong passwords in a row before back-off starts
    login_backoff_base_s: float = Field(1.0, gt=0)  # then locked base, 2×base, 4×base, ... seconds
    login_backoff_max_s: float = Field(900.0, gt=0)
    login_failures_forget_s: float = Field(3600.0, gt=0)  # a streak with no new failure this long is forgotten
    register_per_address_per_hour: int = Field(100, ge=1)
    send_messages_per_minute: int = Field(1200, ge=1)  # per sender
    send_recipients_per_minute: int = Field(3_000, ge=1)  # per sender: a message costs one per recipient
    group_max_members: int = Field(1000, ge=2, le=100_000)
    groups_per_user_per_hour: int = Field(100, ge=1)
    conversations_lookup_per_minute: int = Field(30, ge=1)  # conversation creations naming unknown users
    max_metadata_bytes: int = Field(16_384, gt=0)  # a message's metadata as JSON
    history_page_max_bytes: int = Field(4 * 1024**2, gt=0)  # a page of history stops before this many bytes
    # the status outbox's relay looks for events left by other processes this often (its own
    # commits wake it at once)
    outbox_poll_interval_s: float = Field(0.5, gt=0)
    # WebSocket: sockets per user on one node (a new one closes the oldest, 1008), client frame
    # size (1009) and pings per minute (1008)
    ws_max_sockets_per_user: int = Field(20, ge=1)
    ws_max_frame_bytes: int = Field(131_072, ge=1024)
    ws_pings_per_minute: int = Field(60, ge=1)
    # idempotency: a client-chosen message_id is remembered at accept time this long
    idempotency_ttl_s: int = Field(24 * 3600, ge=60)
    # channel identities are linked only when a code given to the claimant arrives from them;
    # off for applications that verified their users' identities themselves
    verify_channel_identities: bool = True
    channel_claim_ttl_s: float = Field(900.0, gt=0)
    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: str) -> str:
        for origin in (o.strip() for o in v.split(",") if o.strip()):
            if origin == "*" or not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValueError(
                    f"{origin!r} is not an origin: give scheme://host[:port] for each (credentials are "
                    "allowed, so '*' is not)"
                )
        return v

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/").lower() for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("log_level")
    @classmethod
    def _upper(cls, v: str) -> str:
        return v.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CHAT4ALL_CONFIG_FILE")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # derived values -------------------------------------------------------------------------

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'chat4all.db'}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def should_migrate_on_start(self) -> bool:
        return self.is_sqlite if self.migrate_on_start is None else self.migrate_on_start

    @property
    def resolved_webhooks_allowed_networks(self) -> str:
        """Nothing beyond public addresses unless an operator lists networks (loopback included:
        on a shared host a webhook to 127.0.0.1 reaches every local service)."""
        return self.webhooks_allowed_networks or ""

    @property
    def resolved_limits_url(self) -> str:
        if self.limits_url:
            return self.limits_url
        return self.presence_url if self.presence_url.startswith(("redis://", "rediss://", "redis+sentinel://")) else "memory://"

    @property
    def simulated_connectors_by_default(self) -> bool:
        return self.is_sqlite if self.connectors_simulated is None else self.connectors_simulated

    @property
    def resolved_public_base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or f"file://{self.data_dir / 'files'}"

    def resolved_jwt_secret(self) -> str:
        """The configured secret, or one generated on first start and kept in the data dir."""
        if self.jwt_secret:
            return self.jwt_secret
        path = self.data_dir / "jwt-secret"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secret)
        return secret


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
