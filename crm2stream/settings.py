"""Settings from the environment (``CRM2STREAM_*``), validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm2stream.core.config import CoreConfig
from crm2stream.engine.results import EngineError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM2STREAM_", extra="ignore")

    data_dir: Path = Path("crm2stream-data")
    currency: str = Field("CNY", pattern=r"^[A-Za-z]{3}$")
    id_key: str = ""
    half_life_days: float = Field(30.0, gt=0)
    score_change_delta: float = Field(5.0, gt=0)
    #: how long after its arrival an event may be dated (``future_timestamp`` beyond)
    future_tolerance_seconds: int = Field(86_400, ge=0)
    #: how rows outside the identity table name a person: ``masked`` (its anchor as
    #: ``phone:+86138****1111``) or ``raw`` (the anchor itself: an operator's opt-in)
    labels: Literal["masked", "raw"] = "masked"
    #: ``serve`` and ``worker`` refuse an empty ``id_key`` (anyone could recompute a
    #: person id from a phone number) unless this says it is a test
    allow_empty_id_key: bool = False
    #: lines per batch: one WriteBatch and one score-change evaluation each
    batch_size: int = Field(50_000, ge=1)
    #: write the in-memory facts after this many events, or this many seconds
    checkpoint_events: int = Field(1_000_000, ge=1)
    checkpoint_seconds: float = Field(60.0, gt=0)
    #: megabytes of identifier bodies (what grows with each identifier's history: day
    #: buckets, ties, consent, sums) kept in memory; the store keeps them all, and a batch
    #: reads back the ones it needs
    cache_mb: int = Field(512, ge=0)
    #: there is one core, the compiled one: the Python one was retired (a data directory
    #: it wrote is rebuilt from its log at the first start)
    core: str = "native"
    #: the Kafka cluster of ``topology``: ``kafka://host:port`` (several: comma-separated)
    broker: str = "kafka://127.0.0.1:9092"
    #: prefixes every Kafka topic and consumer group: installations sharing a cluster
    namespace: str = Field("", pattern=r"^[A-Za-z0-9._-]*$")
    #: the workers' application version: its accepted topic, changelog and consumer group
    #: (``replay --broker`` builds the next one)
    app_version: int = Field(1, ge=1)
    #: ``serve``, ``demo`` and ``worker``: the table topics are published (with a
    #: checkpoint, or a worker's changelog commit) at most this long after a change
    publish_seconds: float = Field(1.0, gt=0)
    #: ``serve``: when set, every route but /metrics, /healthz (a bare status) and the page
    #: shell needs this bearer token; visible ASCII only (an HTTP header carries no other)
    api_token: str = ""
    #: ``serve``: the largest request body POST /events takes (413 above it)
    api_max_body_bytes: int = Field(16 << 20, ge=1024)

    @field_validator("api_token")
    @classmethod
    def _header_safe(cls, value: str) -> str:
        if any(not "!" <= c <= "~" for c in value):
            raise ValueError(
                "the token must be visible ASCII characters (no spaces): HTTP headers "
                "arrive as Latin-1, so a request could never present any other token"
            )
        return value

    @field_validator("core")
    @classmethod
    def _one_core(cls, value: str) -> str:
        if value != "native":
            raise ValueError(
                "the Python core was retired and the compiled one is the only core: "
                "unset CRM2STREAM_CORE"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def core_config(self) -> CoreConfig:
        return CoreConfig(
            currency=self.currency,
            id_key=self.id_key.encode("utf-8"),
            half_life_days=self.half_life_days,
            score_change_delta=self.score_change_delta,
            future_tolerance_seconds=self.future_tolerance_seconds,
            raw_labels=self.labels == "raw",
        )

    def require_id_key(self, command: str) -> None:
        """A long-running command refuses to key person ids with the empty key."""
        if not self.id_key and not self.allow_empty_id_key:
            raise EngineError(
                f"{command} needs CRM2STREAM_ID_KEY: with the empty key anyone can recompute "
                "a person id from a phone number (set CRM2STREAM_ALLOW_EMPTY_ID_KEY=true "
                "only for tests)"
            )
