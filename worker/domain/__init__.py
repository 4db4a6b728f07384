"""The pure core: events, grouping, coalescing, bundle planning and outcomes.

Nothing here imports celery, redis or httpx (a test walks `sys.modules` to keep it so). The path a
planning round takes, and the module for each step:

- `events` (with `payloads`): `ChangeEvent`, validated once at publish (`parse_event`).
- `refs`: ids for CREATEs without one, refs resolved (`assign_ids`); `keys`: entity keys.
- `grouping`: the group an event names (a packing preference, the unit of an atomic batch).
- `coalesce`: the coalescing table (docs/coalescing.md) and each event's fate from a receipt.
- `ordering` and `plan`: operations, their order, and bundles within the caps (`plan_bundles`);
  `plan_check.validate_plan` before every submission; `bulk` for backfills (`plan_bulk`).
- `receipts` and `outcomes`: receipts matched to operations, one outcome per event
  (`outcomes_from_receipts`); `bisection` for a request refused as a whole.
"""
