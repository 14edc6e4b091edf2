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

    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal

    # --- intake ---

    # --- scoring ---
    # Fewer than this many ratings / dossiers (each profile says which): "insufficient data", ranked apart.
    scoring_minimum_count: int | None = Field(None, ge=0)  # unset: each profile's own default (5)
    # Named parameters per profile, e.g. {"hcmc-2024": {"a_grace_working_days": 5}}; shown at GET /v1/profiles.
    scoring_profile_parameters: dict[str, dict[str, object]] = Field(default_factory=dict)
    scoring_publish_interval_seconds: float = Field(0.05, ge=0)  # pause between score-publishing passes
    scoring_public_rate_limit: str = "600/minute"  # per client address, on the public read endpoints

    # --- workflow ---

    # --- publisher ---
    map_url: str | None = None
    map_token: str | None = None
    map_signing_secret: str | None = None
    map_timeout_seconds: float = Field(5.0, gt=0)
    map_max_backoff_seconds: float = Field(60.0, gt=0)

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
