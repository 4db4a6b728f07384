"""`clinia-ingest demo`: the most complete end-to-end path that exists, run against the emulator.

It starts the emulator on a free loopback port, then drives it through `RegistryClient` exactly as
the pipeline will: synchronous bundles, virtual ids, an atomic failure, an asynchronous bundle
polled to its end, and a bulk task with a per-operation failure. It says plainly what is not built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import SecretStr

NOT_BUILT_YET = """\
Not built yet (so not shown): publishing change events into Redis buffers, coalescing them into
bundles by entity group, Celery workers that flush, submit and poll, per-event results, dead
letters and their replay tools. Until they exist this demo drives the Registry client directly."""

_T = TypeVar("_T")

DEMO_KEY = "demo-key"
SYNC_SOURCE = "demo-clinic"
ASYNC_SOURCE = "demo-clinic-async"


def run_demo(out: Callable[[str], None] = print) -> int:
    """Run the demo against an in-process emulator and return the process exit code."""
    from api_client import ClientConfig, NotFoundError, PollPolicy, RegistryClient, TaskRef
    from api_client.models import (
        BundleReceipts,
        TaskAccepted,
    )
    from api_client.tasks import IssuedBy
    from emulator.app import create_app
    from emulator.config import EmulatorConfig, SourceMode
    from emulator.server import serve_in_thread

    emulator_config = EmulatorConfig(
        api_key=SecretStr(DEMO_KEY),
        source_modes={ASYNC_SOURCE: SourceMode.ASYNC},
        task_pending_polls=2,
    )
    fast_polls = PollPolicy(first_wait_s=0.05, multiplier=2.0, cap_s=0.5, jitter=0.2)
    with serve_in_thread(create_app(config=emulator_config)) as server:
        out(f"Registry emulator listening on {server.url} (loopback only)\n")
        config = ClientConfig(base_url=server.url, api_key=SecretStr(DEMO_KEY))
        with RegistryClient(config) as client:
            out("1. Bundle: an office, a provider and the relationship between them (synchronous)")
            answer = _expect(client.submit_bundle(SYNC_SOURCE, _seed_bundle()), BundleReceipts)
            _show_receipts(out, answer.resource_operation_receipts)
            _show_receipts(out, answer.relationship_operation_receipts)
            office = client.get_resource(SYNC_SOURCE, "office", "1")
            out(f"   read back: office 1 is named {(office.data or {}).get('name')!r}\n")

            out("2. Bundle with virtual ids: the Registry generates the ids")
            answer = _expect(
                client.submit_bundle(SYNC_SOURCE, _virtual_id_bundle()), BundleReceipts
            )
            _show_receipts(out, answer.resource_operation_receipts)
            _show_receipts(out, answer.relationship_operation_receipts)
            out("")

            out("3. Bundle with a property the profile does not know: atomic, nothing persisted")
            answer = _expect(client.submit_bundle(SYNC_SOURCE, _failing_bundle()), BundleReceipts)
            _show_receipts(out, answer.resource_operation_receipts)
            _show_receipts(out, answer.relationship_operation_receipts)
            try:
                client.get_resource(SYNC_SOURCE, "office", "3")
            except NotFoundError:
                out("   read back: office 3 does not exist (the whole bundle was rolled back)\n")
            else:
                raise RuntimeError("the failed bundle persisted office 3")

            out("4. The same office bundle on a source that answers asynchronously")
            accepted = _expect(client.submit_bundle(ASYNC_SOURCE, _seed_bundle()), TaskAccepted)
            ref = TaskRef.from_submission(ASYNC_SOURCE, accepted.task_id, issued_by=IssuedBy.BUNDLE)
            out(f"   ACCEPTED as task {ref.task_id}; polling it with backoff ...")
            state = client.wait_for_task(ref, deadline_s=10.0, policy=fast_polls)
            out(f"   task {ref.task_id}: {state.status}")
            _show_receipts(out, state.receipts or [])
            out("")

            out("5. Bulk: three provider creates, one of an id that already exists")
            accepted_bulk = _expect(
                client.submit_resource_bulk(SYNC_SOURCE, _bulk_request()), TaskAccepted
            )
            ref = TaskRef.from_submission(
                SYNC_SOURCE, accepted_bulk.task_id, issued_by=IssuedBy.RESOURCES_BULK
            )
            state = client.wait_for_task(ref, deadline_s=10.0, policy=fast_polls)
            out(f"   bulk task {ref.task_id}: {state.status} (one operation failed on its own)")
            _show_receipts(out, state.receipts or [])
    out("")
    out(NOT_BUILT_YET)
    return 0


def _expect(answer: object, kind: type[_T]) -> _T:
    """The answer as the kind the emulator's configuration guarantees, or a loud failure."""
    if not isinstance(answer, kind):
        raise RuntimeError(f"expected {kind.__name__}, the Registry answered {answer!r}")
    return answer


def _show_receipts(out: Callable[[str], None], receipts: Iterable[Any]) -> None:
    for receipt in receipts:
        line = f"   {receipt.status!s:<9} {receipt.type} {receipt.id}"
        if receipt.error is not None:
            line += f"  <- {receipt.error.type}: {receipt.error.message}"
            for detail in receipt.error.details:
                line += f" ({detail.message})"
        out(line)


def _seed_bundle() -> Any:
    """The bundle guide's example: UPSERTs of office 1, provider 2 and their relationship."""
    return _office_and_provider("UPSERT", "1", "2", ("Clinic Name", "John Doe"))


def _virtual_id_bundle() -> Any:
    """The bundle guide's virtual-id example: CREATEs whose ids the Registry generates."""
    return _office_and_provider("CREATE", "@rootId1", "@rootId2", ("Second Clinic", "Jane Roe"))


def _office_and_provider(action: str, office: str, provider: str, names: tuple[str, str]) -> Any:
    from api_client.models import (
        BundleRequest,
        EntityRef,
        RelationshipOperation,
        RelationshipPayload,
        ResourceOperation,
        ResourcePayload,
    )

    resource_op = (
        ResourceOperation.for_create if action == "CREATE" else ResourceOperation.for_upsert
    )
    relationship_op = (
        RelationshipOperation.for_create if action == "CREATE" else RelationshipOperation.for_upsert
    )
    return BundleRequest(
        resource_operations=[
            resource_op(ResourcePayload(id=office, type="office", data={"name": names[0]})),
            resource_op(ResourcePayload(id=provider, type="provider", data={"name": names[1]})),
        ],
        relationship_operations=[
            relationship_op(
                RelationshipPayload(
                    type="provider-office",
                    from_=EntityRef(id=office, type="office"),
                    to=EntityRef(id=provider, type="provider"),
                    data={"description": "Works at"},
                )
            )
        ],
    )


def _failing_bundle() -> Any:
    from api_client.models import BundleRequest, ResourceOperation, ResourcePayload

    request = _seed_bundle()
    broken = ResourceOperation.for_upsert(
        ResourcePayload(id="3", type="office", data={"name": "Clinic Name", "UNKNOWN": "x"})
    )
    return BundleRequest(
        resource_operations=[broken, request.resource_operations[1]],
        relationship_operations=request.relationship_operations,
    )


def _bulk_request() -> Any:
    from api_client.models import ResourceBulkRequest, ResourceOperation, ResourcePayload

    def provider(id_: str, name: str) -> ResourceOperation:
        return ResourceOperation.for_create(
            ResourcePayload(id=id_, type="provider", data={"name": name})
        )

    return ResourceBulkRequest(
        operations=[
            provider("p-10", "Ada Lovelace"),
            provider("2", "Duplicate"),
            provider("p-11", "Alan Turing"),
        ]
    )
