"""The Celery tasks: thin shells over `worker.pipeline` and `worker.publisher`.

A task's message is a nudge: it names ids (a source and its groups or bundle ids), the records in
Redis say what to do, and a lost, repeated or late message changes nothing but timing
(invariant 11). So flush, poll and recover never retry: what they leave undone is due again in
the records, and the ticker sends it again. `ingest.publish` is the one task that carries
payloads; its message is acknowledged only once every event is stored or dead-lettered: what
Redis refuses for now is sent again without limit (its events exist nowhere else yet), and it
always shows event ids only, in Flower and in the logs (`send_publish`).

Names are explicit and stable: a rename would orphan messages already queued.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, cast

from celery import Celery, Task
from celery.exceptions import Reject

from worker.logging import get_logger

if TYPE_CHECKING:
    from worker.celery_app import IngestCelery
    from worker.settings import IngestSettings

FLUSH: Final = "ingest.flush"
POLL: Final = "ingest.poll"
RECOVER: Final = "ingest.recover"
PUBLISH: Final = "ingest.publish"
TASK_NAMES: Final = (FLUSH, POLL, RECOVER, PUBLISH)

REPR_MAX_IDS: Final = 20
"""How many event ids `argsrepr` lists before it only counts."""
REPR_MAX_ID_LENGTH: Final = 64

PublishMode = Literal["bundle", "bulk"]

log = get_logger(__name__)


class PublishRetryError(Exception):
    """Why `ingest.publish` sends its events again: names the task, a count and the cause (an
    exception's class, or what a `PublishIncompleteError` says: sources, counts, error codes),
    never data."""

    def __init__(self, task_id: str | None, count: int, detail: str) -> None:
        super().__init__(f"ingest.publish[{task_id}]: {count} events to publish again: {detail}")


def register_tasks(app: Celery) -> None:
    """Declare our tasks on `app` (create_app calls it once per app)."""
    app.task(name=FLUSH, bind=True, acks_late=True, ignore_result=True)(flush)
    app.task(name=POLL, bind=True, acks_late=True, ignore_result=True)(poll)
    app.task(name=RECOVER, bind=True, acks_late=True, ignore_result=True)(recover)
    app.task(
        name=PUBLISH,
        bind=True,
        acks_late=True,
        ignore_result=True,
        max_retries=None,  # never gives up: the message is the only copy of its events
    )(publish)


def _app(task: Task[Any, Any]) -> IngestCelery:
    return cast("IngestCelery", task.app)


def flush(task: Task[Any, Any], source: str, groups: Sequence[str]) -> None:
    """A planning round of one source: read, plan and commit its bundles, send those it owns."""
    from worker import pipeline

    result = pipeline.flush(_app(task).deps(), source, list(groups))
    log.info("flushed", source=source, groups=len(groups), result=result.to_dict())


def poll(task: Task[Any, Any], source: str, bundle_ids: Sequence[str]) -> None:
    """Poll the Registry tasks of due bundles of one source, and record the finished ones."""
    from worker import pipeline

    result = pipeline.poll(_app(task).deps(), source, list(bundle_ids))
    log.info("polled", source=source, bundles=len(bundle_ids), result=result.to_dict())


def recover(task: Task[Any, Any], source: str, bundle_ids: Sequence[str]) -> None:
    """Take over bundles whose worker's claim expired: resume, or resolve their outcome."""
    from worker import pipeline

    result = pipeline.recover(_app(task).deps(), source, list(bundle_ids))
    log.info("recovered", source=source, bundles=len(bundle_ids), result=result.to_dict())


def publish(
    task: Task[Any, Any],
    events: Sequence[Mapping[str, Any]],
    atomic: bool = False,
    mode: PublishMode = "bundle",
) -> None:
    """Publish events sent by a Celery client; per-event errors go to the results and DLQ.

    The message is the only copy of its events until they are stored, so it is acknowledged
    only once every event is stored or dead-lettered: events Redis refused for now are sent
    again (without limit, with backoff), and any other failure sends the whole message again.
    """
    from worker import publisher

    try:
        report = publisher.publish(_app(task).deps(), events, atomic=atomic, mode=mode)
    except publisher.PublishIncompleteError as incomplete:
        log.warning(
            "publish incomplete",
            task_id=task.request.id,
            stored=incomplete.report.by_source(),
            waiting=incomplete.waiting,
            errors=incomplete.errors,
        )
        _again(task, incomplete.remaining, atomic, mode, str(incomplete))
    except Exception as exc:  # a bug or an unknown answer: never drop the only copy
        log.error("publish failed; will retry", task_id=task.request.id, error=type(exc).__name__)
        _again(task, list(events), atomic, mode, type(exc).__name__)
    log.info(
        "published",
        task_id=task.request.id,
        accepted=len(report.accepted),
        duplicates=len(report.duplicates),
        refused=len(report.errors),
        sources=report.by_source(),
    )


def _again(
    task: Task[Any, Any],
    events: Sequence[Any],
    atomic: bool,
    mode: PublishMode,
    cause: str,
) -> NoReturn:
    """Send `events` again after a backoff, then let this message be acknowledged; or, when
    the broker refuses the new message, hand this one back unacknowledged.

    Celery's `retry()` rejects the message *without* requeueing it when it cannot send the
    retry (the same Redis out of memory, say), which would drop the events: that rejection is
    turned into a requeue. If even the requeue fails, the message stays unacknowledged in the
    broker and comes back after the visibility timeout.
    """
    retries = int(task.request.retries or 0)
    delay = retry_delay_s(_app(task).ingest_settings, retries)
    reason = PublishRetryError(task.request.id, len(events), cause)
    try:
        # Task.retry() drops argsrepr and kwargsrepr: pass them again, or the payload shows.
        reprs: dict[str, Any] = {
            "argsrepr": publish_argsrepr(events),
            "kwargsrepr": publish_kwargsrepr(atomic, mode),
        }
        raise task.retry(
            args=(list(events),),
            kwargs={"atomic": atomic, "mode": mode},
            exc=reason,
            countdown=delay,
            max_retries=None,
            **reprs,
        )
    except Reject:
        log.error("publish retry not sent; message handed back", task_id=task.request.id)
        raise Reject(reason, requeue=True) from None


def retry_delay_s(settings: IngestSettings, retries: int) -> float:
    """Seconds before retry number `retries + 1` of a publish: doubling from the base, capped."""
    base, cap = settings.publish_retry_base_ms, settings.publish_retry_cap_ms
    return float(min(cap, base * 2 ** min(retries, 32))) / 1000


def send_publish(
    app: Celery,
    events: Sequence[Mapping[str, Any]],
    *,
    atomic: bool = False,
    mode: PublishMode = "bundle",
    **options: Any,
) -> str:
    """Send `ingest.publish` from a Celery client so that Flower and logs show event ids only.

    Without `argsrepr`, Celery shows the events' repr (health data) in the task-sent and
    task-received events and in the worker's logs. Returns the task id; results are off, so look
    events up by id (`clinia-ingest status EVENT_ID`).
    """
    result = app.send_task(
        PUBLISH,
        args=[list(events)],
        kwargs={"atomic": atomic, "mode": mode},
        argsrepr=publish_argsrepr(events),
        kwargsrepr=publish_kwargsrepr(atomic, mode),
        **options,
    )
    return str(result.id)


def publish_argsrepr(events: Iterable[Any]) -> str:
    """The arguments of a publish as Flower may show them: event ids, never payloads."""
    ids: list[str] = []
    count = 0
    for event in events:
        count += 1
        if len(ids) < REPR_MAX_IDS:
            ids.append(_event_id_of(event))
    more = f", ... {count - len(ids)} more" if count > len(ids) else ""
    return f"([{', '.join(ids)}{more}],)"


def publish_kwargsrepr(atomic: bool, mode: str) -> str:
    """The keyword arguments of a publish (flags only; nothing to hide)."""
    return repr({"atomic": bool(atomic), "mode": str(mode)})


def _event_id_of(event: Any) -> str:
    event_id = event.get("eventId") if isinstance(event, Mapping) else None
    if not isinstance(event_id, str) or not event_id:
        return "<no id>"
    printable = "".join(ch if ch.isprintable() else "?" for ch in event_id)
    if len(printable) > REPR_MAX_ID_LENGTH:
        printable = printable[:REPR_MAX_ID_LENGTH] + "..."
    return printable
