"""The Celery application: its settings, chosen on purpose, and the checks a worker runs at start.

Celery messages are nudges (invariant 11): correctness lives in the records in Redis, so
every choice below trades at most some timing, never an outcome. Each non-default setting is
commented with its reason here and explained in `docs/operations.md`.

`app` is built lazily: importing this module reads no settings and connects nowhere; the settings
are read (once, by `read_settings()`) when Celery first needs its configuration.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any, Final

from celery import Celery, bootsteps, signals

if TYPE_CHECKING:
    from worker.pipeline import Deps
    from worker.settings import IngestSettings

QUEUE: Final = "ingest"
"""Our one queue: its own name, so that another app on the same Redis never shares it."""
EX_CONFIG: Final = 78
"""Exit status of a worker that refuses to start (sysexits' EX_CONFIG: the configuration is bad)."""
BROKER_SOCKET_TIMEOUT_S: Final = 10.0
BROKER_CONNECT_TIMEOUT_S: Final = 5.0
CHECK_SOCKET_TIMEOUT_S: Final = 5.0

logger = logging.getLogger(__name__)


class IngestCelery(Celery):
    """The Celery app, carrying the ingest settings and each process's own dependencies."""

    def __init__(self, settings: IngestSettings | None = None, **kwargs: Any) -> None:
        super().__init__("worker", **kwargs)
        self._ingest_settings = settings
        self._deps: Deps | None = None
        self._deps_pid: int | None = None

    @property
    def ingest_settings(self) -> IngestSettings:
        """The settings, read from the environment on first use when none were given."""
        if self._ingest_settings is None:
            from worker.settings import read_settings

            self._ingest_settings = read_settings()
        return self._ingest_settings

    def deps(self) -> Deps:
        """This process's dependencies, built on first use after the fork, once per process.

        Keyed by pid: a pool child never uses a Redis or HTTP connection of its parent (a socket
        shared across a fork interleaves two processes' traffic).
        """
        pid = os.getpid()
        if self._deps is None or self._deps_pid != pid:
            from worker.pipeline import build_deps

            self._deps = build_deps(self.ingest_settings, nudge=self._nudge)
            self._deps_pid = pid
        return self._deps

    def _nudge(self, kind: str, source: str, ids: list[str]) -> None:
        """Send `ingest.flush` or `ingest.recover` now rather than at the ticker's next look.

        Only timing: the same work is due in Redis, so a message that cannot be sent is left to
        the ticker (logged, never raised into the step that asked).
        """
        from worker.tasks import FLUSH, RECOVER

        try:
            if kind == "flush":
                self.send_task(FLUSH, args=[source, []])
            else:
                self.send_task(RECOVER, args=[source, ids])
        except Exception as exc:  # a nudge is an optimisation: the ticker sends it anyway
            logger.warning("nudge not sent (%s); the ticker will: %s", kind, type(exc).__name__)

    def on_logging_ready(self, logger: logging.Logger | None = None, **_: Any) -> None:
        """Once Celery has set up a worker's logging: scrub its handlers, route structlog there."""
        from worker.logging import Redactor, configure_structlog, install_filter, secrets_of

        redactor = Redactor(secrets_of(self.ingest_settings))
        handlers = list(logging.getLogger().handlers)
        if logger is not None:
            handlers += logger.handlers
        install_filter(handlers, redactor)
        configure_structlog(redactor)


def celery_config(
    settings: IngestSettings,
    *,
    broker_socket_timeout_s: float = BROKER_SOCKET_TIMEOUT_S,
    broker_connect_timeout_s: float = BROKER_CONNECT_TIMEOUT_S,
) -> dict[str, Any]:
    """The Celery settings for `settings`; every value that differs from Celery's says why.

    Args:
        settings: the ingest settings.
        broker_socket_timeout_s: longest wait on one broker command (a publish, an ack), so a
            broker that vanished without closing the socket cannot freeze the event loop.
        broker_connect_timeout_s: longest wait to open a broker connection.
    """
    config: dict[str, Any] = {
        "broker_url": settings.effective_broker_url.get_secret_value(),
        # Retry the broker at start instead of exiting: in a container the worker often starts
        # before Redis does (Celery 6 changes the default; say it explicitly).
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # A message taken but not acked comes back after this long. It must exceed the hard
            # time limit, or a task still running would be delivered a second time.
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_timeout": broker_socket_timeout_s,
            "socket_connect_timeout": broker_connect_timeout_s,
            "socket_keepalive": True,
        },
        "task_default_queue": QUEUE,
        # Ack after the task ran: a worker that dies mid-task leaves its nudge to be delivered
        # again; the records make a repeat harmless.
        "task_acks_late": True,
        # A pool child killed (OOM, SIGKILL) requeues its message at once instead of failing it.
        # A task that always kills its child would loop: every message is bounded in size (ids,
        # capped per message) and purging the queue is safe, because the ticker sends again
        # whatever is due.
        "task_reject_on_worker_lost": True,
        # One message at a time per process, and none fetched ahead: a hard kill strands no
        # prefetched messages, and the queue length shows the real wait.
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        # A task still running when the broker connection drops finishes its work; its ack is
        # lost and the message comes back later as a harmless nudge. Cancelling it mid-request
        # would leave an outcome to resolve by reading the Registry back.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        # Results live in our own store (per event, per bundle) and dead letters; Celery's result
        # backend would only duplicate them.
        "task_ignore_result": True,
        # Events for Flower: what ran where, with ids only (see tasks.send_publish).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        # On a cold shutdown (SIGQUIT, or SIGTERM with REMAP_SIGTERM=SIGQUIT), running tasks
        # get this long before they are cancelled and requeued; keep it below the container's
        # grace period, so the worker exits on its own before the SIGKILL.
        "worker_soft_shutdown_timeout": settings.soft_shutdown_timeout_s,
        # JSON only: no pickle, so a message can never run code.
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        # A publish from a Celery client gives up quickly instead of stalling its caller.
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    }
    if settings.worker_concurrency is not None:
        config["worker_concurrency"] = settings.worker_concurrency
    return config


def startup_problems(settings: IngestSettings) -> list[str]:
    """Every reason this worker must not start: no API key, or a Redis that may evict our keys.

    (The chain of durations is checked earlier, when the settings are read.)
    """
    from worker.settings import SettingsError

    problems: list[str] = []
    try:
        settings.client_config()
    except SettingsError as exc:
        problems.append(str(exc))
    urls = [("INGEST_REDIS_URL", settings.redis_url.get_secret_value())]
    if settings.broker_url is not None:
        broker = settings.broker_url.get_secret_value()
        if broker != urls[0][1] and broker.startswith(("redis://", "rediss://", "unix://")):
            urls.append(("INGEST_BROKER_URL", broker))
    for variable, url in urls:
        problem = _eviction_problem(settings, url)
        if problem is not None:
            problems.append(f"{variable}: {problem}")
    return problems


def _eviction_problem(settings: IngestSettings, url: str) -> str | None:
    """Why the Redis at `url` cannot hold our state, or None; never names the URL's password."""
    import redis

    from worker.store import EvictionPolicyError, Store

    client = redis.Redis.from_url(
        url, socket_timeout=CHECK_SOCKET_TIMEOUT_S, socket_connect_timeout=CHECK_SOCKET_TIMEOUT_S
    )
    try:
        Store(client, settings).check_noeviction()
    except EvictionPolicyError as exc:
        return str(exc)
    except redis.RedisError as exc:
        return f"cannot check maxmemory-policy: {type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


class StartupChecks(bootsteps.Step):
    """A worker step that refuses to start, with one clear message, when a check fails."""

    label = "ingest startup checks"

    def create(self, parent: Any) -> None:
        """Run the checks before the pool forks or the consumer connects."""
        settings = _settings_of(parent.app)
        if settings is None:
            return
        problems = startup_problems(settings)
        if problems:
            refuse_to_start(problems, settings)


def refuse_to_start(problems: list[str], settings: IngestSettings) -> None:
    """Log why the worker will not start (and say it on stderr unless the log goes there), exit."""
    from worker.logging import Redactor, secrets_of

    redactor = Redactor(secrets_of(settings))
    lines = [redactor.text(problem) for problem in problems]
    message = "the worker refuses to start:\n" + "\n".join(f"  - {line}" for line in lines)
    message += "\nSee docs/operations.md, 'When the worker refuses to start'."
    logger.critical(message)
    if not _logs_to_stderr():
        sys.stderr.write(f"clinia-ingest: {message}\n")
    raise SystemExit(EX_CONFIG)


def _logs_to_stderr() -> bool:
    """Whether a handler of this logger (or its ancestors) already writes to the terminal."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and stream in (sys.stderr, sys.__stderr__):
                return True
        current = current.parent if current.propagate else None
    return False


def _settings_of(app: Celery) -> IngestSettings | None:
    return app.ingest_settings if isinstance(app, IngestCelery) else None


def create_app(settings: IngestSettings | None = None) -> IngestCelery:
    """A configured app: our settings, tasks, ticker step and start-up checks.

    Args:
        settings: the ingest settings; None reads them from the environment when Celery first
            needs its configuration (so building the app reads and connects nothing).
    """
    from worker.collector import connect_collector_tuning
    from worker.tasks import register_tasks
    from worker.ticker import TickerStep

    app = IngestCelery(settings)
    app.add_defaults(lambda: celery_config(app.ingest_settings))
    register_tasks(app)
    app.steps["worker"].add(StartupChecks)
    app.steps["consumer"].add(TickerStep)
    # Weak receivers (bound methods): an app that is dropped stops listening.
    signals.after_setup_logger.connect(app.on_logging_ready)
    signals.after_setup_task_logger.connect(app.on_logging_ready)
    connect_collector_tuning()
    return app


app = create_app()
"""The app that `celery -A worker worker` and `clinia-ingest worker` run."""
