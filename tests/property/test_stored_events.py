"""An event read back from the store sends the very bytes the event itself would send.

The store keeps an event in two parts (`ChangeEvent.stored_parts`): its JSON without `data` and
`contained`, and those two as JSON. Planning decodes only the first and splices the second into the
operation as it is (`ops._payload_from_stored`). For every generated event and every action its
operations may carry, the spliced operation must be the operation built from the decoded event,
byte for byte, and the joined parts must be the event.
"""

from __future__ import annotations

import json

from hypothesis import given

from api_client.models import Action
from tests.property.cases import Case, cases
from worker.domain.events import join_stored
from worker.domain.ops import operation_json
from worker.store.codec import event_from_json, event_from_mapping


@given(case=cases(meta_always=False))
def test_stored_event_sends_the_bytes_the_event_sends(case: Case) -> None:
    for event in case.scenario.events:
        head, content = event.stored_parts()
        stored = event_from_mapping(json.loads(head), content)
        assert event_from_json(join_stored(head, content)) == event
        assert stored.data is None
        assert stored.contained is None
        for action in Action:
            if event.data is None and action is not Action.DELETE:
                continue
            assert operation_json(stored, action) == operation_json(event, action)
