"""Configuration of every service: environment variables prefixed HAILONG_ (a `.env` file is read too)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "scoring", "workflow", "publisher")
DEFAULT_PORTS = {"intake": 8001, "scoring": 8002, "workflow": 8003, "publisher": 8004}


class MissingSecret(RuntimeError):
    """Raised at start-up outside dev mode when a secret is left unset."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAILONG_", env_file=".env", extra="ignore")

    # Where state lives. Unset database URL: one SQLite file per service under data_dir.
    database_url: str | None = None
    data_dir: Path = Path("var")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "hailong."
    kafka_partitions: int = Field(3, ge=1)

    intake_port: int = DEFAULT_PORTS["intake"]
    scoring_port: int = DEFAULT_PORTS["scoring"]
    workflow_port: int = DEFAULT_PORTS["workflow"]
    publisher_port: int = DEFAULT_PORTS["publisher"]

    # Dev mode lets the services start with the generated secrets of `make run`.
    dev_mode: bool = False
    jwt_secret: str | None = None
    respondent_hash_key: str | None = None

    # --- the bus (shared/bus) ---
    consumer_batch_size: int = Field(2000, ge=1)  # records per getmany; one transaction per partition batch
    consumer_max_retries: int = Field(3, ge=0)
    outbox_batch_size: int = Field(2000, ge=1)  # rows per relay round trip
    outbox_poll_seconds: float = Field(0.5, gt=0)
    # Services that publish from their request path (intake) relay in a child process of their own: the relay's
    # work then runs beside the requests instead of between them (shared/bus/relay_process.py). False: in process.
    outbox_relay_process: bool = True

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal
    # glibc malloc arenas per process (its default: 8 per core). Each SQLite connection runs in a thread of its
    # own, and each thread's arena kept its freed memory: 2 took ~50 MB off scoring's peak while catching up
    # (bench/notes/scoring.md). 0 leaves the C library's default.
    malloc_arena_max: int = Field(2, ge=0)

    # --- intake ---
    intake_pending_window_days: float = Field(30.0, gt=0)  # pending_dossier → unmatched after this
    intake_sweep_seconds: float = Field(60.0, gt=0)  # how often the unmatched sweep runs
    # Answers kept for Idempotency-Key retries; a kiosk retries within minutes, a portal sync within a day.
    intake_idempotency_retention_hours: float = Field(72.0, gt=0)
    intake_prune_seconds: float = Field(3600.0, gt=0)  # how often expired idempotency keys and officer ratings go
    intake_burst_max_ratings: int = Field(5, ge=1)  # more than N ratings from one kiosk …
    intake_burst_window_seconds: float = Field(60.0, gt=0)  # … within M seconds is a burst
    intake_repeat_max_ratings: int = Field(3, ge=1)  # more than N ratings by one respondent for one officer …
    intake_repeat_window_days: float = Field(90.0, gt=0)  # … within this window is suspicious
    intake_rate_limit_kiosk: str = "120/minute"  # per API key; items of a batch count one each
    intake_rate_limit_portal: str = "120000/minute"
    intake_rate_limit_default: str = "6000/minute"  # admins and other people's tokens
    intake_rate_limit_public: str = "600/minute"  # unauthenticated reads, per client address
    intake_max_body_bytes: int = Field(64 * 1024, ge=1024)  # single items
    intake_max_batch_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)  # batches and paper CSV imports
    intake_cache_seconds: float = Field(30.0, ge=0)  # API keys, unit tree and officers seen by other replicas

    # --- scoring ---
    # Fewer than this many ratings / dossiers (each profile says which): "insufficient data", ranked apart.
    scoring_minimum_count: int | None = Field(None, ge=0)  # unset: each profile's own default (5)
    # Named parameters per profile, e.g. {"hcmc-2024": {"a_grace_working_days": 5}}; shown at GET /v1/profiles.
    scoring_profile_parameters: dict[str, dict[str, object]] = Field(default_factory=dict)
    scoring_publish_interval_seconds: float = Field(0.05, ge=0)  # pause between score-publishing passes, at least
    # … and at least this many times as long as the last pass took: every figure it publishes is consumed again by
    # workflow and the publisher, so an unpaced scorer under steady load starves them and intake (bench/notes/freshness.md).
    scoring_publish_rest_factor: float = Field(3.0, ge=0)
    scoring_public_rate_limit: str = "600/minute"  # per client address, on the public read endpoints
    # Container allocations between two young-generation garbage collections (CPython's default is 700). A
    # consumed batch allocates millions of short-lived objects; at 700 the collector ran so often that it
    # took ~40 % of the consumer's CPU (bench/notes/scoring.md). 0 keeps the interpreter's default.
    scoring_gc_gen0_threshold: int = Field(50_000, ge=0)
    # Rankings are rendered this long after their figures first change, so a burst of changes costs one rendering.
    scoring_ranking_refresh_seconds: float = Field(1.0, ge=0)
    # SQLite only: page cache of each of scoring's connections (the shared default is 64 MiB). Scoring holds four
    # or five connections (consumer, score publisher, relay, rankings, reads): 64 MiB each would alone exceed its
    # memory budget once the database outgrows them; the operating system caches the file as well.
    scoring_sqlite_cache_mib: int = Field(16, ge=1)

    # --- workflow ---
    smtp_host: str | None = None  # unset: e-mail notifications are recorded but not sent
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(10.0, gt=0)
    mail_from: str = "hailong@localhost"
    home_affairs_email: str | None = None  # Sở Nội vụ: breaches and escalations
    peoples_committee_email: str | None = None  # UBND: escalations to the People's Committee
    notify_webhook_url: str | None = None  # optional: every notification also POSTed here as JSON
    notify_webhook_secret: str | None = None  # HMAC-SHA-256 of the body in X-Hailong-Signature
    workflow_tick_seconds: float = Field(30.0, gt=0)  # how often the duties (breaches, reminders, sampling) run
    verification_sample_rate: float = Field(0.25, ge=0.2, le=0.3)  # Đà Nẵng Art. 8.2: 20-30%
    verification_sample_seed: str | None = None  # unset: derived from the JWT secret (units cannot predict it)
    verification_sample_delay_working_days: int = Field(3, ge=0)  # late ratings of a month get this long
    verification_channels: str = "online,portal"  # the "online ratings" that phúc tra samples
    report_profile: str = "hcmc-2024"  # the scoring profile of Art. 6 reviews and the monthly ranking report
    public_base_url: str | None = None  # links in e-mails, e.g. https://hailong.example.gov.vn/workflow

    # --- publisher ---
    map_url: str | None = None
    map_token: str | None = None
    map_signing_secret: str | None = None
    map_timeout_seconds: float = Field(5.0, gt=0)
    map_max_backoff_seconds: float = Field(60.0, gt=0)
    map_concurrency: int = Field(4, ge=1, le=64)  # requests in flight to the map at once
    map_rate_per_second: float = Field(20.0, gt=0)  # requests started per second, at most
    # The contract's map URL has no profile, so one profile goes there: HCMC 104/2024 governs HCMC's map.
    map_profiles: str = "hcmc-2024"  # comma-separated profiles pushed to the map; empty: every profile
    # The national portal: the same push machinery as the map, unset URL: no pushes (it can poll /v1/sync/results).
    portal_url: str | None = None
    portal_token: str | None = None
    portal_signing_secret: str | None = None
    portal_timeout_seconds: float = Field(5.0, gt=0)
    portal_concurrency: int = Field(4, ge=1, le=64)
    portal_rate_per_second: float = Field(20.0, gt=0)
    portal_profiles: str = "qd766-satisfaction"  # the national portal ranks on QĐ 766's satisfaction group
    # Circuit breaker per target: this many failed attempts in a row open it for the cool-down (doubling, capped).
    delivery_breaker_failures: int = Field(5, ge=1)
    delivery_breaker_cooldown_seconds: float = Field(15.0, gt=0)
    # Public outputs: units with fewer ratings show "insufficient data" instead of figures.
    public_min_ratings: int = Field(5, ge=1)
    public_rate_limit: str = "300/minute"  # per client address, on every public endpoint
    public_default_profile: str = "hcmc-2024"  # the page's profile when the visitor picks none (if it has data)
    # Official snapshots freeze a quarter's and a year's rankings once the period has closed (UTC+7) and this
    # long has passed, so scores of the last minutes' ratings are in; older closed periods are not frozen
    # automatically (an operator can) so that a projection rebuilt from the topics does not freeze history.
    snapshot_settle_minutes: float = Field(5.0, ge=0)
    snapshot_catch_up_days: int = Field(92, ge=1)
    snapshot_check_seconds: float = Field(30.0, gt=0)
    # Retention of the publisher's history (0: kept for good). The changes feed keeps every result's newest entry
    # whatever its age, so a portal that starts over from cursor 0 still gets every result; older, superseded
    # entries go after this many days — keep it longer than the portal's longest absence. The delivery attempt
    # log (each push's outcome) goes after its own number of days; the deliveries themselves are kept.
    publisher_changes_retention_days: float = Field(30.0, ge=0)
    publisher_attempts_retention_days: float = Field(14.0, ge=0)
    publisher_prune_every_seconds: float = Field(600.0, gt=0)  # how often the pruner looks
    publisher_prune_batch_rows: int = Field(1000, ge=1, le=100_000)  # rows deleted per transaction

    # (end of service sections)

    def port_of(self, service: str) -> int:
        return int(getattr(self, f"{service}_port"))

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / f'{service}.db').resolve()}"

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    def require_secrets(self, *names: str) -> None:
        """Refuse to start in production with a secret left unset."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            env = ", ".join(f"HAILONG_{name.upper()}" for name in missing)
            raise MissingSecret(f"set {env} (or HAILONG_DEV_MODE=true for local development)")


@lru_cache
def get_settings() -> Settings:
    return Settings()
