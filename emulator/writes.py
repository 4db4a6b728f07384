"""How a write is answered: at once (receipts, or the record as written), or ACCEPTED as a task.

`Registry` finds the source (and reads a single write's operation from its request); these
functions apply the size and count limits, choose sync or async (`policy.answers_async`), and run
or queue the work. They are called under the registry's lock and may raise `RequestRefusedError`,
which the registry turns into its error reply.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from emulator.config import EmulatorConfig
from emulator.failures import JSON
from emulator.operations import Operation, RelationshipOp, ResourceOp
from emulator.policy import answers_async, check_count, check_size
from emulator.reply import Reply, error_reply
from emulator.request_bodies import read_bulk
from emulator.state import FAILURE, SourceState
from emulator.taskbook import TaskBook
from emulator.tasks import TaskKind, TaskOverride

__all__ = ["BulkTarget", "bulk", "bundle", "single_write"]

BulkTarget = Literal["resources", "relationships"]


def bundle(
    config: EmulatorConfig,
    book: TaskBook,
    state: SourceState,
    body: Any,
    *,
    raw_size: int,
    override: TaskOverride | None,
) -> Reply:
    """A bundle: two receipt lists now (the status says whether any failed), or a `bd_` task."""
    check_size(raw_size, config.max_bundle_bytes, "bundle")
    if isinstance(body, dict):
        counts = [body.get(k) for k in ("resourceOperations", "relationshipOperations")]
        total = sum(len(c) for c in counts if isinstance(c, list))
        check_count(total, config.max_ops_per_request, "bundle")
    plan = state.plan_bundle(body)
    if answers_async(config, state.key, plan.op_count, override):
        task = book.accept(state, TaskKind.BUNDLE, override, bundle=plan)
        return Reply(202, {"taskId": task.task_id, "status": "ACCEPTED"})
    if override is not None and override.failure is not None:
        resources, relationships = state.fail_bundle(plan, override.failure)
    else:
        resources, relationships = state.execute_bundle(plan)
        book.record_writes(state, None)
    body_out = {
        "resourceOperationReceipts": resources,
        "relationshipOperationReceipts": relationships,
    }
    failed_any = any(r["status"] == FAILURE for r in resources + relationships)
    return Reply(config.bundle_failure_status if failed_any else 200, body_out)


def bulk(
    config: EmulatorConfig,
    book: TaskBook,
    state: SourceState,
    target: BulkTarget,
    body: Any,
    *,
    raw_size: int,
    override: TaskOverride | None,
) -> Reply:
    """A bulk request: always a `bk_` task, unless an operation is refused before acceptance."""
    check_size(raw_size, config.max_bulk_bytes, "bulk")
    if isinstance(body, dict) and isinstance(body.get("operations"), list):
        check_count(len(body["operations"]), config.max_ops_per_request, "operations")
    operations, errors = read_bulk(state, target, body)
    if any(error is not None for error in errors):
        receipts = [
            {"status": "CANCELLED"} if error is None else {"status": FAILURE, "error": error}
            for error in errors
        ]
        return Reply(400, {"status": "REJECTED", "receipts": receipts})
    task = book.accept(
        state, TaskKind.BULK, override, operations=tuple(operations), bulk_target=target
    )
    return Reply(202, {"taskId": task.task_id, "status": "ACCEPTED", "bulkId": task.task_id})


def single_write(
    config: EmulatorConfig,
    book: TaskBook,
    clock: Callable[[], datetime],
    state: SourceState,
    op: Operation,
    override: TaskOverride | None,
    echo: str | None,
) -> Reply:
    """One write: PERSISTED with the record (`echo` names its key), or ACCEPTED and judged later.

    An ACCEPTED write is judged on content at once; a synchronous one is applied and recorded
    as a finished single task, so it can still be polled.
    """
    if answers_async(config, state.key, 1, override):
        error = state.check(op)
        if error is not None:
            return error_reply(error)
        task = book.accept(state, TaskKind.SINGLE, override, operations=(op,))
        answer: JSON = {"taskId": task.task_id, "status": "ACCEPTED"}
        if echo is not None:
            answer[echo] = state.preview(op)
        return Reply(202, answer)
    if override is not None and override.failure is not None:
        return error_reply(override.failure)
    error = state.execute(op)
    if error is not None:
        return error_reply(error)
    task = book.accept(state, TaskKind.SINGLE, None, operations=(op,))
    book.record_writes(state, task.task_id)
    task.finish([(op, "SUCCESS", None)], clock(), "SUCCESS", None)
    book.close(task)
    answer = {"taskId": task.task_id, "status": "PERSISTED"}
    if echo == "resource" and isinstance(op, ResourceOp):
        answer[echo] = state.get_resource(op.type, op.receipt_id)
    elif echo == "relationship" and isinstance(op, RelationshipOp):
        answer[echo] = state.get_relationship(op.type, op.from_, op.to)
    return Reply(200, answer)
