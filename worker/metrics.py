"""The Prometheus exporter: the backlog and each source's counters, read from Redis at each scrape.

A custom collector, not counters kept in memory: the worker is a prefork pool, and
prometheus_client's multiprocess mode (a directory of mmap files shared by the children, cleaned
by hand when one dies) is a trap. The counts already live in Redis, kept exact by the scripts, so
one small process reads them when asked, and any number of copies agree.

`clinia_ingest_backlog` is exactly the autoscaling signal: the total of `worker.results.backlog`,
the number `clinia-ingest backlog` prints and the ticker writes to `ingest:backlog`. It is computed
from the records, not read from that key, so it is right even while no worker ticks (at zero
workers, for one). When Redis cannot be read it is left out rather than reported as 0, so a
scaler sees an error, not an empty queue. No other metric's name starts with it: KEDA's
metrics-api scaler before 2.18 took the first sample whose name merely starts with the one asked.

Labels are source keys and pause kinds only: no secret, no payload.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from types import FrameType, TracebackType
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from worker.logging import get_logger
from worker.pauses import PauseKind
from worker.results import Backlog, backlog
from worker.store import Store, keys
from worker.store.profiles import UNREADABLE_FIELD

__all__ = [
    "BACKLOG_METRIC",
    "HEALTH_PATH",
    "METRICS_PATH",
    "BacklogCollector",
    "RunningExporter",
    "metrics_registry",
    "serve_until_signalled",
    "start_exporter",
]

PREFIX: Final = "clinia_ingest_"
BACKLOG_METRIC: Final = f"{PREFIX}backlog"
METRICS_PATH: Final = "/metrics"
HEALTH_PATH: Final = "/healthz"
"""Answers without touching Redis: a liveness probe must not restart the exporter for Redis."""

_SOURCE: Final = ("source",)
_CATALOGUE: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    # The scaling signal first: a reader that stops at the first match finds it at once.
    "backlog": (
        "Work left: events buffered, in flight, parked or blocked behind a slow bundle, plus polls "
        "due now; 0 when all work is done. "
        "The autoscaling signal.",
        (),
    ),
    "redis_up": ("1 when this scrape could read Redis, else 0.", ()),
    "ticker_up": (
        "1 when some worker's ticker refreshed ingest:backlog within the due lease, else 0.",
        (),
    ),
    "source_backlog": ("The backlog of one source.", _SOURCE),
    "buffered_events": ("Events buffered, waiting for their group's flush.", _SOURCE),
    "in_flight_events": (
        "Events in bundles planned, sent or being sent (STALE included, parked not).",
        _SOURCE,
    ),
    "due_polls": ("Registry task polls due now.", _SOURCE),
    "stale_tasks": ("Registry tasks PENDING past the poll deadline (still polled).", _SOURCE),
    "parked_bundles": ("Bundles parked for an operator (clinia-ingest parked).", _SOURCE),
    "parked_events": ("Events of parked bundles.", _SOURCE),
    "blocked_events": ("Events waiting behind a STALE or parked bundle.", _SOURCE),
    "bundles_in_flight": ("Bundle records not yet recorded.", _SOURCE),
    "source_paused": (
        "1 while the source is paused for this kind of Registry answer.",
        ("source", "kind"),
    ),
    "dead_letters": ("Entries in the dead-letter stream (replay and purge remove them).", _SOURCE),
    "profiles_unreadable": (
        "1 while the source's profiles cannot be read from the Registry: publish goes on "
        "without pre-validation for it.",
        _SOURCE,
    ),
    "scrape_duration_seconds": ("How long this scrape took to read Redis.", ()),
}
"""Every metric (without the prefix): its help and its label names."""
_PER_SOURCE: Final = (
    ("buffered_events", "buffered"),
    ("in_flight_events", "in_flight"),
    ("due_polls", "due_polls"),
    ("stale_tasks", "stale"),
    ("parked_bundles", "parked"),
    ("parked_events", "parked_events"),
    ("blocked_events", "blocked"),
    ("bundles_in_flight", "bundles"),
)
"""Per-source metrics read straight from `SourceBacklog` attributes."""

log = get_logger(__name__)


class BacklogCollector(Collector):
    """Reads the backlog, the dead-letter counts, the pauses and the ticker's mark on each scrape.

    Args:
        store: the Redis store (its client is shared by the server's threads; redis-py's pool is
            thread-safe).
        clock: seconds, monotonic; times the scrape.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._redis_was_up: bool | None = None

    def describe(self) -> Iterable[Any]:
        """The families without samples: registering reads no Redis, and `?name[]=` filters."""
        return [_family(name) for name in _CATALOGUE]

    def collect(self) -> Iterator[Any]:
        """Every metric, from a handful of Redis round trips; never raises for Redis."""
        started = self._clock()
        try:
            read = _read(self._store)
        except redis.RedisError as exc:
            self._note_redis(up=False, error=type(exc).__name__)
            yield _family("redis_up", 0)
            yield _family("scrape_duration_seconds", self._clock() - started)
            return
        self._note_redis(up=True)
        current = read.backlog
        sources = sorted(current.sources)
        yield _family("backlog", current.total)
        yield _family("redis_up", 1)
        yield _family("ticker_up", int(read.ticking))
        totals = _family("source_backlog")
        for source in sources:
            totals.add_metric([source], current.sources[source].total)
        yield totals
        for name, attribute in _PER_SOURCE:
            family = _family(name)
            for source in sources:
                family.add_metric([source], getattr(current.sources[source], attribute))
            yield family
        yield _paused(current)
        letters = _family("dead_letters")
        for source, count in sorted(read.dead_letters.items()):
            letters.add_metric([source], count)
        yield letters
        unreadable = _family("profiles_unreadable")
        for source, marked in sorted(read.profiles_unreadable.items()):
            unreadable.add_metric([source], int(marked))
        yield unreadable
        yield _family("scrape_duration_seconds", self._clock() - started)

    def _note_redis(self, *, up: bool, error: str = "") -> None:
        """One log line when Redis becomes unreadable or readable again, not one per scrape."""
        if up == self._redis_was_up:
            return
        if not up:
            log.warning("metrics.redis_unreadable", error=error)
        elif self._redis_was_up is False:
            log.warning("metrics.redis_readable")
        self._redis_was_up = up


@dataclass(frozen=True)
class _Read:
    backlog: Backlog
    dead_letters: dict[str, int] = field(default_factory=dict)
    ticking: bool = False
    profiles_unreadable: dict[str, bool] = field(default_factory=dict)


def _read(store: Store) -> _Read:
    """The backlog (`results.backlog`, three round trips), then the dead letters, the ticker's
    key and the sources' unreadable-profiles marks (one more)."""
    current = backlog(store)
    sources = sorted(current.sources)
    streams = list(dict.fromkeys([*sources, keys.INVALID_SOURCE]))
    pipe = store.client.pipeline(transaction=False)
    for source in streams:
        pipe.xlen(keys.SourceKeys(source).dlq)
    pipe.exists(keys.BACKLOG)
    for source in sources:
        pipe.hexists(keys.profile_versions_key(source), UNREADABLE_FIELD)
    answers = pipe.execute()
    letters, ticking, marks = (
        answers[: len(streams)],
        answers[len(streams)],
        answers[len(streams) + 1 :],
    )
    return _Read(
        backlog=current,
        dead_letters={s: int(n) for s, n in zip(streams, letters, strict=True)},
        ticking=bool(ticking),
        profiles_unreadable={s: bool(m) for s, m in zip(sources, marks, strict=True)},
    )


def _family(name: str, value: float | None = None) -> GaugeMetricFamily:
    """The named family of the catalogue; with `value`, its one unlabelled sample."""
    help_text, labels = _CATALOGUE[name]
    if value is not None:
        return GaugeMetricFamily(PREFIX + name, help_text, value=value)
    return GaugeMetricFamily(PREFIX + name, help_text, labels=list(labels))


def _paused(current: Backlog) -> GaugeMetricFamily:
    """One series per source and pause kind, 1 for the kind that holds: stable series."""
    family = _family("source_paused")
    known = [kind.value for kind in PauseKind]
    for source, counts in sorted(current.sources.items()):
        held = counts.paused.kind if counts.paused is not None else None
        for kind in [*known, *([held] if held and held not in known else [])]:
            family.add_metric([source, kind], int(kind == held))
    return family


def metrics_registry(store: Store) -> CollectorRegistry:
    """A registry holding the backlog collector alone (no process or platform metrics: they
    would describe this exporter, not the work)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(store))
    return registry


# -- the HTTP side ------------------------------------------------------------------------------


def _app(registry: CollectorRegistry) -> Callable[..., Iterable[bytes]]:
    """`/metrics` from the registry, `/healthz` without Redis, 404 elsewhere."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == METRICS_PATH:
            answer: Iterable[bytes] = metrics(environ, start_response)
            return answer
        if path == HEALTH_PATH:
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"not found; metrics are at {METRICS_PATH}\n".encode()]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access log: a scrape every few seconds would drown the useful lines."""

    def log_message(self, *args: Any) -> None:
        return


def _server_class(host: str, port: int) -> type[WSGIServer]:
    """A threading WSGI server of the address family `host` resolves to (an IPv6 pod IP too)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        address_family = family
        daemon_threads = True

    return Server


@dataclass
class RunningExporter:
    """An exporter serving on a thread; `stop()` (or leaving the `with`) shuts it down."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """The metrics URL, e.g. `http://127.0.0.1:9540/metrics`."""
        raw, port = self.server.server_address[:2]
        host = raw.decode() if isinstance(raw, bytes) else raw
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{METRICS_PATH}"

    def stop(self) -> None:
        """Stop serving and close the socket; waits for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self) -> RunningExporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_exporter(store: Store, host: str, port: int) -> RunningExporter:
    """Serve the metrics of `store` on `host:port` (0 picks a free port) from a daemon thread.

    Raises:
        OSError: the address cannot be bound (in use, or not this machine's).
    """
    server = make_server(
        host, port, _app(metrics_registry(store)), _server_class(host, port), _QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return RunningExporter(server, thread)


def serve_until_signalled(store: Store, host: str, port: int) -> None:
    """`clinia-ingest metrics`: serve until SIGTERM or SIGINT, then stop cleanly (exit 0).

    Raises:
        OSError: the address cannot be bound.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with start_exporter(store, host, port) as running:
        log.info("metrics.serving", url=running.url)
        stop.wait()
    log.info("metrics.stopped")
