"""Matching receipts to the operations they report on: by target, type and id, never by hope.

A receipt names its operation by `(targetType, type, id)`; a relationship's id is
`{fromType}.{fromId},{toType}.{toId}` in bundle receipts (the seeds), and we also accept the
`{fromId}.{toId}` form of a relationship GET. Resource ids never contain `.` or `,`, so the two
kinds cannot be confused even when `targetType` is missing. Receipts may come in any order (the
emulator can shuffle them). Only when receipts carry no id or type (the legacy bulk rejection)
are they matched by position, and then every field they do carry must agree with the operation
at that position. Anything else that does not add up is a `ReceiptMismatchError`: a contract
error to report, never a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from api_client.models import (
    BulkRejected,
    BundleReceipts,
    Receipt,
    TargetType,
    TaskState,
    TaskStatus,
    is_terminal,
)
from worker.domain.events import Target
from worker.domain.keys import RelationshipKey
from worker.domain.ops import PlannedOp

_TARGET_TYPES = {Target.RESOURCE: TargetType.RESOURCE, Target.RELATIONSHIP: TargetType.RELATIONSHIP}


class ReceiptMismatchError(ValueError):
    """Receipts that do not match the operations sent: a contract error, never dead-lettered."""


class Submission(Protocol):
    """What was sent: operations in request order (a bundle, or one bulk request)."""

    @property
    def index(self) -> int:
        """The submission's place in its plan."""
        ...

    @property
    def resource_ops(self) -> tuple[PlannedOp, ...]:
        """Resource operations, in request order."""
        ...

    @property
    def relationship_ops(self) -> tuple[PlannedOp, ...]:
        """Relationship operations, in request order."""
        ...


Answer = BundleReceipts | TaskState | BulkRejected
"""A terminal answer that carries receipts."""


def _ids(op: PlannedOp) -> tuple[str, ...]:
    """The ids a receipt may give `op` (a relationship has two documented forms)."""
    if isinstance(op.key, RelationshipKey):
        return (op.key.receipt_id, op.key.short_receipt_id)
    return (op.key.id,)


def _agrees(receipt: Receipt, op: PlannedOp, *, id_checked: bool = False) -> str | None:
    """Why `receipt` cannot be `op`'s receipt, or None when every field it carries agrees.

    `id_checked`: the receipt was found under one of the op's ids (`_by_key`)."""
    if receipt.target_type is not None and receipt.target_type != _TARGET_TYPES[op.target]:
        return f"targetType {receipt.target_type} for a {op.target} operation"
    if receipt.type is not None and receipt.type != op.key.type:
        return f"type {receipt.type} for an operation on {op.key.type}"
    if not id_checked and receipt.id is not None and receipt.id not in _ids(op):
        return f"id {receipt.id} for {op.key}"
    if receipt.action is not None and receipt.action != op.action:
        return f"action {receipt.action} for a {op.action} operation"
    return None


def _by_key(ops: Sequence[PlannedOp], receipts: Sequence[Receipt], where: str) -> list[Receipt]:
    index: dict[tuple[str, str], int] = {}
    for position, op in enumerate(ops):
        for op_id in _ids(op):
            index[(op.key.type, op_id)] = position
    matched: list[Receipt | None] = [None] * len(ops)
    for receipt in receipts:
        if receipt.type is None or receipt.id is None:
            raise ReceiptMismatchError(f"{where}: a receipt without type or id")
        found = index.get((receipt.type, receipt.id))
        if found is None:
            raise ReceiptMismatchError(
                f"{where}: a receipt for {receipt.type} {receipt.id}, which was not sent"
            )
        position = found
        if matched[position] is not None:
            raise ReceiptMismatchError(f"{where}: two receipts for {ops[position].key}")
        problem = _agrees(receipt, ops[position], id_checked=True)
        if problem is not None:
            raise ReceiptMismatchError(f"{where}: {problem}")
        matched[position] = receipt
    missing = [str(ops[i].key) for i, r in enumerate(matched) if r is None]
    if missing:
        raise ReceiptMismatchError(f"{where}: no receipt for {', '.join(missing)}")
    return [r for r in matched if r is not None]


def _by_position(
    ops: Sequence[PlannedOp], receipts: Sequence[Receipt], where: str
) -> list[Receipt]:
    for position, (op, receipt) in enumerate(zip(ops, receipts, strict=True)):
        problem = _agrees(receipt, op)
        if problem is not None:
            raise ReceiptMismatchError(f"{where}: receipt {position} has {problem}")
    return list(receipts)


def match(ops: Sequence[PlannedOp], receipts: Sequence[Receipt], where: str) -> list[Receipt]:
    """One receipt per operation, aligned with `ops`.

    Raises:
        ReceiptMismatchError: counts differ, a receipt names an operation not sent (or one twice),
            or a receipt matched by position disagrees with its operation.
    """
    if len(receipts) != len(ops):
        raise ReceiptMismatchError(f"{where}: {len(receipts)} receipts for {len(ops)} operations")
    if all(r.id is not None and r.type is not None for r in receipts):
        return _by_key(ops, receipts, where)
    return _by_position(ops, receipts, where)


def aligned_receipts(submission: Submission, answer: Answer) -> list[Receipt]:
    """The receipts of `submission`'s operations, resources first, each matched to its op.

    Raises:
        ValueError: the answer is not terminal, or was fetched without receipts.
        ReceiptMismatchError: see `match`.
    """
    resources, relationships = submission.resource_ops, submission.relationship_ops
    where = f"submission {submission.index}"
    if isinstance(answer, BundleReceipts):
        return match(resources, answer.resource_operation_receipts, f"{where} resources") + match(
            relationships, answer.relationship_operation_receipts, f"{where} relationships"
        )
    if isinstance(answer, TaskState):
        if not is_terminal(answer.status):
            raise ValueError(f"{where}: task status {answer.status} is not terminal")
        if answer.receipts is None:
            raise ValueError(f"{where}: fetch the terminal task with receipts")
        if not answer.receipts and answer.status == TaskStatus.CANCELLED:
            return [Receipt(status="CANCELLED") for _ in (*resources, *relationships)]
        receipts = answer.receipts
    else:
        receipts = answer.receipts
    return match((*resources, *relationships), receipts, where)
