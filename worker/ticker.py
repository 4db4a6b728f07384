"""The ticker: periodic work driven from every worker's event loop, safe in any number of copies.

Every `tick_interval_ms` it claims what is due (groups to flush, bundles to poll, claims that
expired) with `pipeline.claim_due`, which re-scores what it returns to now + a lease, so three
tickers never dispatch one item twice within the lease; then it sends one message per source and
kind with up to `tick_batch` ids. Every few ticks it refreshes the autoscaling signal
(`pipeline.refresh_backlog`). A message lost on the way changes nothing but timing: the lease
runs out and the item is claimed again. An item handed out again and again without being handled
(its messages queued behind a backlog) gets a lease twice as long each time, up to
`due_lease_cap_ms`, so the queue does not fill with copies; a copy that arrives after the work
was done finds its entry not due and does nothing (claim.lua).

Why a Consumer bootstep on the event-loop timer (`c.timer.call_repeatedly`), not beat nor a
thread: beat is a singleton to deploy and keep alive, and a thread in the prefork parent is a fork
hazard for redis-py (a child forked while the thread holds a pool lock hangs). The timer runs on
the loop's thread, one callback at a time, between forks; Consumer steps are stopped and started
again on every broker reconnect, so the timer comes back with the connection. A tick never
raises: a redis ConnectionError escaping a timer callback would be taken for a lost broker
connection and restart the consumer. Its Redis client is its own, with short timeouts, so a
stalled Redis delays the loop by at most those.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from celery import Celery, bootsteps

from worker.logging import get_logger
from worker.tasks import FLUSH, POLL, RECOVER

if TYPE_CHECKING:
    from worker.pipeline import Deps
    from worker.settings import IngestSettings

TICKER_SOCKET_TIMEOUT_S: Final = 1.0
TICKER_CONNECT_TIMEOUT_S: Final = 1.0
BACKLOG_REFRESH_MS: Final = 1000
"""How often (about) the ticker refreshes `ingest:backlog`."""
ERROR_LOG_INTERVAL_S: Final = 30.0
"""While ticks keep failing, one error line per this many seconds (the first one at once)."""

log = get_logger(__name__)


class DueWorkLike(Protocol):
    """What `pipeline.claim_due` returns: ids per source, per kind of work."""

    @property
    def flush(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def poll(self) -> Mapping[str, Sequence[str]]: ...
    @property
    def recover(self) -> Mapping[str, Sequence[str]]: ...


class Send(Protocol):
    """Sends one task message by name (`Celery.send_task`'s shape)."""

    def __call__(self, name: str, *, args: Sequence[Any], retry: bool) -> Any: ...


@dataclass
class TickReport:
    """What one tick did: messages sent per task name, and whether anything failed."""

    sent: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    backlog_refreshed: bool = False
    failed: bool = False


class Ticker:
    """One process's ticker; `tick()` is the timer callback and never raises.

    Args:
        deps: the ticker's own dependencies (its own Redis client, never shared with tasks).
        send: sends a message by task name (`app.send_task`).
        batch: most ids per message (`tick_batch`).
        backlog_every: refresh the backlog value on every Nth tick.
        claim_due: `pipeline.claim_due` (injectable for tests).
        refresh_backlog: `pipeline.refresh_backlog` (injectable for tests).
        clock: a monotonic clock in seconds, for spacing error lines.
        error_log_interval_s: while ticks keep failing, one error line per this many seconds.
    """

    def __init__(
        self,
        deps: Deps,
        send: Send,
        *,
        batch: int,
        backlog_every: int,
        claim_due: Callable[..., DueWorkLike] | None = None,
        refresh_backlog: Callable[[Deps], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        error_log_interval_s: float = ERROR_LOG_INTERVAL_S,
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch: must be at least 1, got {batch}")
        if backlog_every < 1:
            raise ValueError(f"backlog_every: must be at least 1, got {backlog_every}")
        if claim_due is None or refresh_backlog is None:
            from worker import pipeline

            claim_due = claim_due or pipeline.claim_due
            refresh_backlog = refresh_backlog or pipeline.refresh_backlog
        self.deps = deps
        self._send = send
        self._batch = batch
        self._backlog_every = backlog_every
        self._claim_due = claim_due
        self._refresh_backlog = refresh_backlog
        self._clock = clock
        self._error_log_interval_s = error_log_interval_s
        self._ticks = 0
        self._failures = 0
        self._last_error_log: float | None = None

    def tick(self) -> TickReport:
        """Claim due work and send it; refresh the backlog every few ticks. Never raises."""
        report = TickReport()
        self._ticks += 1
        try:
            self._dispatch(report)
        except Exception as exc:
            report.failed = True
            self._failed("claiming or sending due work", exc)
        if self._ticks % self._backlog_every == 0:
            try:
                self._refresh_backlog(self.deps)
                report.backlog_refreshed = True
            except Exception as exc:
                report.failed = True
                self._failed("refreshing the backlog", exc)
        if not report.failed and self._failures:
            log.info("ticker recovered", failed_ticks=self._failures)
            self._failures = 0
            self._last_error_log = None
        return report

    def _dispatch(self, report: TickReport) -> None:
        due = self._claim_due(self.deps, limit=self._batch)
        for name, per_source in ((FLUSH, due.flush), (POLL, due.poll), (RECOVER, due.recover)):
            for source, ids in per_source.items():
                for chunk in chunks(ids, self._batch):
                    # No retry: a message lost here is claimed again when its lease ends.
                    self._send(name, args=[source, chunk], retry=False)
                    report.sent[name] = report.sent.get(name, 0) + 1
                    report.ids[name] = report.ids.get(name, 0) + len(chunk)

    def _failed(self, what: str, exc: Exception) -> None:
        self._failures += 1
        now = self._clock()
        if self._last_error_log is None or now - self._last_error_log >= self._error_log_interval_s:
            self._last_error_log = now
            log.error(
                "ticker failed",
                step=what,
                error=f"{type(exc).__name__}: {exc}",
                failed_ticks=self._failures,
            )

    def close(self) -> None:
        """Close the ticker's own Redis connections."""
        self.deps.store.client.close()


def chunks(ids: Sequence[str], size: int) -> Iterator[list[str]]:
    """`ids` in lists of at most `size`, in order."""
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def backlog_every(settings: IngestSettings, refresh_ms: int = BACKLOG_REFRESH_MS) -> int:
    """How many ticks apart the backlog is refreshed, so that it happens about every refresh_ms."""
    interval_ms: float = settings.tick_interval_ms
    return max(1, round(refresh_ms / interval_ms))


def ticker_for(
    app: Celery,
    settings: IngestSettings,
    *,
    socket_timeout_s: float = TICKER_SOCKET_TIMEOUT_S,
    connect_timeout_s: float = TICKER_CONNECT_TIMEOUT_S,
) -> Ticker:
    """A ticker for a worker process: its own short-timeout Redis client; sends through `app`."""
    import redis

    from worker.pipeline import build_deps

    client = redis.Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=connect_timeout_s,
    )
    deps = build_deps(settings, redis=client)
    return Ticker(
        deps,
        app.send_task,
        batch=settings.tick_batch,
        backlog_every=backlog_every(settings),
    )


class TickerStep(bootsteps.StartStopStep):
    """The Consumer bootstep that runs the ticker on the event loop's timer."""

    label = "ingest ticker"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.ticker: Ticker | None = None
        self.entry: Any = None

    def include_if(self, parent: Any) -> bool:
        """Only when `ticker_enabled` (the default)."""
        settings = getattr(parent.app, "ingest_settings", None)
        return settings is not None and bool(settings.ticker_enabled)

    def start(self, parent: Any) -> None:
        """Start ticking; called again after every broker reconnect."""
        settings = parent.app.ingest_settings
        if self.ticker is None:
            self.ticker = ticker_for(parent.app, settings)
        if self.entry is None:
            interval_s = settings.tick_interval_ms / 1000
            self.entry = parent.timer.call_repeatedly(interval_s, self.ticker.tick)
            log.info("ticker started", interval_ms=settings.tick_interval_ms)

    def stop(self, parent: Any) -> None:
        """Stop ticking (the consumer restarts us when the connection comes back)."""
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None

    def shutdown(self, parent: Any) -> None:
        """Stop ticking and close the ticker's Redis connections."""
        self.stop(parent)
        if self.ticker is not None:
            self.ticker.close()
            self.ticker = None
