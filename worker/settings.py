"""`IngestSettings`: every knob of the worker, read from the environment once, then passed down.

This module is the only reader of the environment. `read_settings()` maps each variable to its
field (`CLINIA_BASE_URL`, `CLINIA_API_KEY`, `INGEST_REDIS_URL`, `INGEST_<UPPER_NAME>` for the rest),
reads the `*_FILE` variant of every secret, and refuses a secret set both ways. Code and tests build
`IngestSettings(...)` from keyword arguments: the model itself never looks at `os.environ`.
Validation errors name the variable or field and the reason, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from api_client.config import ClientConfig
from api_client.retry import RetryPolicy
from worker.domain.bulk import BulkCaps
from worker.domain.coalesce import CoalesceMode
from worker.domain.foresight import ForesightPolicy
from worker.domain.plan import PlanCaps
from worker.domain.refusals import RefusalPolicy

__all__ = ["ENV_NAMES", "SECRET_FIELDS", "IngestSettings", "SettingsError", "read_settings"]

_SPECIAL_ENV: Final = {
    "base_url": "CLINIA_BASE_URL",
    "api_key": "CLINIA_API_KEY",
}
SECRET_FIELDS: Final = ("api_key", "redis_url", "broker_url")
"""Fields that also accept a `<VARIABLE>_FILE` holding the value."""


class SettingsError(ValueError):
    """The environment or the arguments cannot make valid settings; names the variable."""


class IngestSettings(BaseSettings):
    """The configuration: Registry, Redis, planning, claims, polls, results, ticker, Celery.

    Frozen: read once at the entry point, then handed to whoever needs it.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # -- the Registry ----------------------------------------------------------------------------
    base_url: str = "http://127.0.0.1:8700"
    """The Registry (or the emulator); `CLINIA_BASE_URL`."""
    api_key: SecretStr = SecretStr("")
    """`CLINIA_API_KEY` or `CLINIA_API_KEY_FILE`; needed to submit, not to read status."""
    http_connect_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """Seconds to open a connection to the Registry (capped by `http_deadline_s`)."""
    http_read_timeout_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    """Seconds to wait for each chunk of an answer (capped by `http_deadline_s`)."""
    http_deadline_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Wall-clock budget of one Registry request, retries included; below the claim TTL."""

    # -- Redis -----------------------------------------------------------------------------------
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    """The state store (ready logs, records, results, dead letters); may carry a password."""
    broker_url: SecretStr | None = None
    """Celery's broker; None means `redis_url`."""
    redis_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    """Seconds to connect to Redis and to wait for one answer."""

    # -- the ready log and planning ---------------------------------------------------------------
    linger_ms: int = Field(default=1000, ge=0)
    """A source's planning is due this long after its last event (debounce)..."""
    max_age_ms: int = Field(default=5000, ge=0)
    """... but never later than this after its oldest event waiting to be planned."""
    max_bundle_ops: int = Field(default=500, ge=1)
    """Operations per bundle; a source with this many events waiting is due at once."""
    max_bundle_bytes: int = Field(default=500_000, ge=1000)
    """Bytes per bundle request (the documented 500 KB); this many bytes waiting: due at once."""
    max_bulk_ops: int = Field(default=10_000, ge=1)
    """Operations per bulk request (bulk mode); more events go in the next request."""
    max_bulk_bytes: int = Field(default=50_000_000, ge=1000, le=5_000_000_000)
    """Bytes per bulk request; the documented cap is 5 GB, worker memory wants far less."""
    flush_read_limit: int = Field(default=2000, ge=1)
    """Events one planning round reads at most (worker memory stays flat however long the
    backlog); an atomic batch is read whole."""
    flush_read_bytes: int = Field(default=4_000_000, ge=1000)
    """Stored event bytes one planning round reads at most (at least one event, or one atomic
    batch), so large events keep worker memory flat too."""
    flush_chunk: int = Field(default=250, ge=1)
    """Events one call of the read or the commit script handles at most: a round reads and
    commits in several calls (a read call ends between atomic batches, a commit call holds whole
    bundles), so no call holds Redis for long (a few ms)."""
    record_chunk: int = Field(default=100, ge=1)
    """Final outcomes (APPLIED, COALESCED, FAILED) one call of the record scripts settles at
    most, a dead letter counting as three, and half the held keys one call releases: a bundle's
    record is cut in calls (settle.lua, record.lua, then release.lua), so recording a bundle of
    500 operations does not hold Redis for tens of ms; each call settles its events for good."""
    plan_lease_ms: int = Field(default=10_000, ge=1)
    """The planning lease of a source (one planner at a time); released when its round commits,
    so this only bounds how long a planner that died holds the source's planning up."""
    coalesce_mode: CoalesceMode = CoalesceMode.SUPERSEDE
    """`supersede` merges where the coalescing table allows; `strict` sends every event alone."""

    send_concurrency: int = Field(default=4, ge=1, le=64)
    """Bundles one worker process has in flight at once. The bundles a round makes ready share
    no entity (commit.lua makes ready only what follows nothing unfinished), so they may go side
    by side: while one waits for the Registry, the process plans, records or sends another.
    1 sends them one after another."""

    # -- claims, retries and polls ---------------------------------------------------------------
    claim_ttl_ms: int = Field(default=120_000, ge=1)
    """A worker's hold on a bundle record; renewed while it works; above the HTTP deadline."""
    retry_base_ms: int = Field(default=1000, ge=1)
    """First wait before submitting again a bundle that certainly was not processed."""
    retry_cap_ms: int = Field(default=60_000, ge=1)
    """Longest such wait (a `Retry-After` hint is also capped by it)."""
    publish_retry_base_ms: int = Field(default=500, ge=1)
    """First wait before `ingest.publish` tries again the events Redis refused for now."""
    publish_retry_cap_ms: int = Field(default=4000, ge=1)
    """Longest such wait: it is a Celery countdown, held unacknowledged in the worker."""
    poll_first_ms: int = Field(default=500, ge=1)
    """First wait before polling an accepted task."""
    poll_multiplier: float = Field(default=2.0, ge=1.0, allow_inf_nan=False)
    """Each further wait is this many times the previous one..."""
    poll_cap_ms: int = Field(default=30_000, ge=1)
    """... up to this cap (jitter draws below it)."""
    poll_deadline_ms: int = Field(default=3_600_000, ge=1)
    """A task still PENDING this long after acceptance is STALE (still polled, never failed)."""
    poll_slow_cap_ms: int = Field(default=300_000, ge=1)
    """The wait between polls of a STALE task."""
    max_event_attempts: int = Field(default=1000, ge=1)
    """Submissions of an event CANCELLED by a neighbour's failure before it is dead-lettered.

    A loop breaker, not a tuning knob: every cancellation is paid for by a neighbour dead-lettered
    in the same bundle, so the count grows with the failures of the stream around the event."""
    max_bisect_depth: int = Field(default=8, ge=0)
    """How many times a request refused as a whole (400/413, no receipts) is halved at most."""
    readback_settle_ms: int = Field(default=60_000, ge=0)
    """After an outcome unknown, how long the read-back waits for what was sent to appear before
    resending what did not (a lost answer may still apply later, above all an ACCEPTED one)."""
    readback_interval_ms: int = Field(default=2000, ge=1)
    """The wait between two read-backs of a bundle whose outcome is unknown."""
    max_bundle_recoveries: int = Field(default=5, ge=1)
    """Times in a row a bundle or a poll is found with its worker gone (claim expired, never
    renewed) before it is treated as poison: its events dead-lettered (what the read-back shows
    applied is kept). A claim released normally (a poll written, a retry time set) starts the
    count again."""
    shrink_recovery_ms: int = Field(default=60_000, ge=1)
    """After a request refused as a whole or timed out, a source's bundles are halved; the cap
    doubles back every this many milliseconds."""
    refusal_bulk: bool = True
    """Whether the rest of a bundle refused with one failure named goes as bulk requests when
    the source's refusal rate says it holds several more (docs/pipeline.md, "Refusals")."""
    refusal_halflife_ops: float = Field(default=2000.0, gt=0, allow_inf_nan=False)
    """Operations recorded after which an old refusal weighs half in the source's rate."""
    refusal_min_failures: float = Field(default=1.5, ge=0, allow_inf_nan=False)
    """Weighted refusals a source needs before its rate is trusted: more than one."""
    refusal_bulk_expected: float = Field(default=6.0, gt=0, allow_inf_nan=False)
    """Failures expected in the rest of a refused bundle (rate x operations left) at or above
    which it goes as bulk requests."""
    foresight: bool = True
    """Whether planning sets operations expected to fail apart (alone, or in bundles of their own
    kind where the Registry names every failure), from what the source's answers said exists
    (docs/pipeline.md, "Foresight")."""
    foresight_min_precision: float = Field(default=0.2, gt=0, le=1, allow_inf_nan=False)
    """Share of a kind of expectation's operations that must have been refused for that kind to
    set operations apart."""
    foresight_known_max: int = Field(default=1_000_000, ge=1)
    """The most entities a source's foresight remembers; past it, it forgets them all and
    learns again (placement only: nothing is lost but a few refusals' worth of requests)."""
    bulk_poll_first_ms: int = Field(default=100, ge=1)
    """First wait before polling a bulk task (at most `poll_cap_ms`); each further wait grows
    by `poll_multiplier` up to `poll_cap_ms`, as for other tasks."""
    pause_base_ms: int = Field(default=1000, ge=1)
    """First pause of a source after a configuration error (401, 403, unreachable Registry)."""
    pause_cap_ms: int = Field(default=300_000, ge=1)
    """Longest pause of a source (backoff and `Retry-After` alike)."""

    # -- profiles (pre-validation at publish) ----------------------------------------------------
    profile_validation: bool = True
    """Whether publish judges each event against its source's profiles (read from the Registry
    and cached in Redis) and refuses what the Registry would refuse as off-profile."""
    profile_ttl_s: int = Field(default=300, ge=1)
    """How long a profile or relationship definition read from the Registry is trusted before
    it is read again (a refusal is always checked against a fresh read first)."""
    profile_retry_ms: int = Field(default=60_000, ge=1)
    """After a source's profiles could not be read, how long publish goes on without
    pre-validation for it before trying again."""
    profile_timeout_s: float = Field(default=5.0, gt=0, allow_inf_nan=False)
    """The budget of one profile read (one attempt, no retry: publish never waits long for it)."""

    # -- results ---------------------------------------------------------------------------------
    results_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    """How long finished outcomes, refs and event ids (the dedupe window) are kept."""
    dlq_page_size: int = Field(default=500, ge=1, le=100_000)
    """Dead letters read per page by `clinia-ingest dlq` (purge and replay act a page at a time)."""

    # -- the ticker ------------------------------------------------------------------------------
    ticker_enabled: bool = True
    """Whether this worker runs the ticker (safe in any number of copies)."""
    tick_interval_ms: int = Field(default=250, ge=1)
    """How often the ticker looks for due groups, due polls and expired claims."""
    tick_batch: int = Field(default=200, ge=1)
    """Ids per message the ticker sends."""
    due_lease_ms: int = Field(default=10_000, ge=1)
    """What the ticker re-scores a taken entry to (now + lease), so no two tickers send it; the
    first wait before it hands out again an entry whose message was not handled."""
    due_lease_cap_ms: int = Field(default=300_000, ge=1)
    """The longest such wait: each time the ticker hands out again an entry nobody handled (the
    message is lost, or still queued behind others), the lease doubles, up to this cap."""

    # -- Celery ----------------------------------------------------------------------------------
    task_soft_time_limit_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    """Celery's soft time limit of our tasks."""
    task_time_limit_s: float = Field(default=360.0, gt=0, allow_inf_nan=False)
    """Celery's hard time limit; above the claim TTL."""
    visibility_timeout_s: float = Field(default=3600.0, gt=0, allow_inf_nan=False)
    """The Redis transport's redelivery delay; above the hard time limit."""
    worker_concurrency: int | None = Field(default=None, ge=1)
    """Pool processes; None keeps Celery's default (the number of CPUs)."""
    soft_shutdown_timeout_s: float = Field(default=20.0, ge=0, allow_inf_nan=False)
    """Time-limited wait before a cold shutdown; shorter than the container grace period."""

    # -- the metrics exporter --------------------------------------------------------------------
    metrics_port: int = Field(default=9540, ge=1, le=65535)
    """Port of `clinia-ingest metrics` (`--port` overrides it)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: `read_settings` is the one reader of the environment."""
        return (init_settings,)

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; use CLINIA_API_KEY")
        return value.rstrip("/")

    @field_validator("redis_url", "broker_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _check_durations(self) -> Self:
        problems: list[str] = []
        if self.claim_ttl_ms <= self.http_deadline_s * 1000:
            problems.append(
                "claim_ttl_ms: must exceed http_deadline_s * 1000, so that a claim outlives "
                "the whole HTTP request it covers"
            )
        if self.task_time_limit_s * 1000 <= self.claim_ttl_ms:
            problems.append("task_time_limit_s: must exceed claim_ttl_ms / 1000")
        if self.task_soft_time_limit_s >= self.task_time_limit_s:
            problems.append("task_soft_time_limit_s: must be below task_time_limit_s")
        if self.visibility_timeout_s <= self.task_time_limit_s:
            problems.append("visibility_timeout_s: must exceed task_time_limit_s")
        if self.max_age_ms < self.linger_ms:
            problems.append("max_age_ms: must be at least linger_ms")
        if self.poll_cap_ms < self.poll_first_ms:
            problems.append("poll_cap_ms: must be at least poll_first_ms")
        if self.due_lease_cap_ms < self.due_lease_ms:
            problems.append("due_lease_cap_ms: must be at least due_lease_ms")
        if self.retry_cap_ms < self.retry_base_ms:
            problems.append("retry_cap_ms: must be at least retry_base_ms")
        if self.publish_retry_cap_ms < self.publish_retry_base_ms:
            problems.append("publish_retry_cap_ms: must be at least publish_retry_base_ms")
        if self.publish_retry_cap_ms >= self.visibility_timeout_s * 1000:
            problems.append(
                "publish_retry_cap_ms: must be below visibility_timeout_s * 1000, or a retry "
                "still counting down would be delivered a second time"
            )
        if self.pause_cap_ms < self.pause_base_ms:
            problems.append("pause_cap_ms: must be at least pause_base_ms")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- derived objects ------------------------------------------------------------------------

    @property
    def effective_broker_url(self) -> SecretStr:
        """The broker's URL: `broker_url`, else the state store's."""
        return self.broker_url if self.broker_url is not None else self.redis_url

    def first_poll_ms(self, *, bulk: bool) -> int:
        """The wait before a task's first poll: bulk tasks have their own, within the cap."""
        return min(self.bulk_poll_first_ms, self.poll_cap_ms) if bulk else self.poll_first_ms

    def refusal_policy(self) -> RefusalPolicy:
        """When the rest of a refused bundle goes as bulk requests."""
        return RefusalPolicy(
            halflife_ops=self.refusal_halflife_ops,
            min_failures=self.refusal_min_failures,
            bulk_expected=self.refusal_bulk_expected,
            enabled=self.refusal_bulk,
        )

    def foresight_policy(self) -> ForesightPolicy:
        """When a kind of expectation isolates operations."""
        return ForesightPolicy(enabled=self.foresight, min_precision=self.foresight_min_precision)

    def plan_caps(self) -> PlanCaps:
        """The bundle limits the planner keeps."""
        return PlanCaps(max_operations=self.max_bundle_ops, max_bytes=self.max_bundle_bytes)

    def bulk_caps(self) -> BulkCaps:
        """The limits of one bulk request."""
        return BulkCaps(max_operations=self.max_bulk_ops, max_bytes=self.max_bulk_bytes)

    def profile_client_config(self) -> ClientConfig:
        """The configuration of the client that reads profiles: one attempt within
        `profile_timeout_s`, a throttle answered at once.

        Raises:
            SettingsError: no API key is configured.
        """
        budget = self.profile_timeout_s
        retry = RetryPolicy(max_attempts=1, deadline_s=budget, on_throttle="return")
        return self.client_config().model_copy(
            update={
                "connect_timeout_s": budget,
                "read_timeout_s": budget,
                "write_timeout_s": budget,
                "pool_timeout_s": budget,
                "retry": retry,
            }
        )

    def client_config(self) -> ClientConfig:
        """The Registry client's configuration: one request ends within `http_deadline_s`.

        Throttling (429, 503) returns at once instead of sleeping, so the pipeline decides. Each
        attempt's connect and read timeouts are capped so that the last attempt the retry deadline
        lets start still ends inside `http_deadline_s` (timeouts bound each read, so this is the
        budget of a well-behaved server, not a hard kill).

        Raises:
            SettingsError: no API key is configured.
        """
        if not self.api_key.get_secret_value():
            raise SettingsError("CLINIA_API_KEY (or CLINIA_API_KEY_FILE) is not set")
        deadline = self.http_deadline_s
        connect = min(self.http_connect_timeout_s, deadline / 4)
        read = min(self.http_read_timeout_s, deadline / 2)
        retry = RetryPolicy(
            deadline_s=max(deadline - connect - read, deadline / 4),
            cap_s=min(20.0, deadline / 2),
            retry_after_cap_s=self.retry_cap_ms / 1000,
            on_throttle="return",
        )
        try:
            return ClientConfig(
                base_url=self.base_url,
                api_key=self.api_key,
                connect_timeout_s=connect,
                read_timeout_s=read,
                write_timeout_s=read,
                pool_timeout_s=connect,
                retry=retry,
                max_connections=max(10, self.send_concurrency + 2),
                max_keepalive_connections=max(5, self.send_concurrency),
            )
        except ValidationError as exc:
            raise SettingsError(_problems(exc)) from None


ENV_NAMES: Final[Mapping[str, str]] = {
    name: _SPECIAL_ENV.get(name, f"INGEST_{name.upper()}") for name in IngestSettings.model_fields
}
"""field name -> the environment variable that sets it."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        where = ENV_NAMES.get(field, field) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _read_file(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read the file it names ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise SettingsError(f"{variable}: the file it names is not UTF-8 text") from None


def read_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> IngestSettings:
    """The settings the environment describes (`os.environ` unless given), then `overrides`.

    Raises:
        SettingsError: a secret set both directly and by `*_FILE`, an unreadable file, or an
            invalid value; the message names the variable and the reason, never the value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, variable in ENV_NAMES.items():
        direct = env.get(variable)
        from_file = env.get(f"{variable}_FILE") if name in SECRET_FIELDS else None
        if direct is not None and from_file is not None:
            raise SettingsError(f"{variable} and {variable}_FILE are both set; set only one")
        if from_file is not None:
            direct = _read_file(f"{variable}_FILE", from_file)
        if direct is not None and direct != "":
            values[name] = direct
    values.update(overrides)
    try:
        return IngestSettings(**values)
    except ValidationError as exc:
        raise SettingsError(_problems(exc)) from None
