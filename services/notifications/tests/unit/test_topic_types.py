"""Each topic notifications reads accepts only the event types its catalog entry carries: an
event on another topic is refused (the Loop dead-letters it), whatever its type, with the
topic's list in the reason, and nothing is stored or sent for it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from billstate_notifications.channels import OutboxChannel
from billstate_notifications.handlers import NotificationsHandler
from billstate_notifications.store import Store
from billstate_shared.contracts import encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.errors import Refused
from billstate_shared.topics import ACCESS_EVENTS, BY_NAME, CUSTOMERS, NOTICE_REQUESTS


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


READ = (NOTICE_REQUESTS, ACCESS_EVENTS, CUSTOMERS)
# Every example event on every topic notifications reads that does not carry it.
MISPLACED = [
    (topic.name, event_type)
    for topic in READ
    for event_type in sorted(EXAMPLES)
    if event_type not in topic.event_types
]


@pytest.fixture
def handler(tmp_path: Path) -> NotificationsHandler:
    return NotificationsHandler(
        store=Store(tmp_path / "n.sqlite3"), channel=OutboxChannel(tmp_path / "outbox")
    )


@pytest.mark.parametrize(("topic", "event_type"), MISPLACED)
async def test_an_event_on_a_topic_that_does_not_carry_it_is_refused(
    handler: NotificationsHandler, tmp_path: Path, topic: str, event_type: str
) -> None:
    event = EXAMPLES[event_type]
    record = Rec(topic, 0, 7, event.customer_id.encode(), encode(event))
    with pytest.raises(Refused) as err:
        await handler(record)
    carries = ", ".join(BY_NAME[topic].event_types)
    assert err.value.field == "event_type"
    assert err.value.event_type == event_type
    assert err.value.reason == f"{event_type} is not accepted on {topic}; it carries {carries}"
    # Nothing was taken from it: no customer in the directory, nothing in the outbox.
    assert handler.store.customer(event.customer_id) is None
    assert not (tmp_path / "outbox").exists()


def test_every_type_the_catalog_lists_for_these_topics_is_tried() -> None:
    assert ("access.events.v1", "notice.requested") in MISPLACED
    assert ("notifications.requests.v1", "access.failed") in MISPLACED
    assert ("billing.customers.v1", "hold.released") in MISPLACED
    assert not [m for m in MISPLACED if m[1] in BY_NAME[m[0]].event_types]
