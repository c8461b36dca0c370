"""The payment feed watcher: the time of the newest record on the payments topic, read at
start and every so often, for the stale-feed guard.

It reads no payment: per partition only the last few records before the end (the last stable
offset: committed records only), and takes the greatest record timestamp. A topic without a
record, or one that does not exist, has no newest record: the guard counts it as silent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from billstate_access_control.guards import PaymentFeed
from billstate_access_control.periodic import Periodic
from billstate_shared.errors import ExternalError
from billstate_shared.kafka_auth import KafkaAuth, client_options

log = structlog.get_logger("billstate.access_control.feed")

# Records read back from each partition's end: more than one, in case the last offsets are
# transaction markers (which carry no record).
TAIL = 20
READ_TIMEOUT = 10.0  # seconds one look may take


class FeedWatch(Periodic):
    """`run_once` looks at the topic and tells `feed`; `run(interval)` repeats it."""

    what = "payment feed check"

    def __init__(
        self,
        *,
        feed: PaymentFeed,
        bootstrap: str,
        auth: KafkaAuth | None,
        client_id: str,
    ) -> None:
        super().__init__()
        self.feed = feed
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            **client_options(auth),
        )
        self._started = False

    async def start(self) -> None:
        await self.consumer.start()
        self._started = True

    async def close(self) -> None:
        if self._started:
            self._started = False
            await self.consumer.stop()

    async def run_once(self) -> datetime | None:
        newest = await self.newest(self.feed.topic)
        self.feed.saw(newest)
        log.debug("payment feed", topic=self.feed.topic, newest=newest)
        return newest

    async def newest(self, topic: str) -> datetime | None:
        """The greatest record timestamp among the last records of each partition."""
        client = self.consumer._client  # noqa: SLF001  (aiokafka has no public metadata refresh)
        # Metadata for this topic by name: an all-topics answer leaves out the topics the
        # service may not describe, and a missing ACL would look like a missing topic.
        client.set_topics([topic])
        await client.force_metadata_update()
        if topic in client.cluster.unauthorized_topics:
            raise ExternalError(
                f"access-control is not authorized to read {topic}: grant its Kafka user Read"
                " and Describe on it (billstate topics acls)",
                retryable=False,
            )
        partitions = self.consumer.partitions_for_topic(topic)
        if not partitions:
            log.warning("the payments topic does not exist: the feed counts as silent", topic=topic)
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        begins = await self.consumer.beginning_offsets(tps)
        ends = await self.consumer.end_offsets(tps)
        wanted = {tp: ends[tp] for tp in tps if ends[tp] > begins[tp]}
        if not wanted:
            return None
        self.consumer.assign(list(wanted))
        try:
            for tp, end in wanted.items():
                self.consumer.seek(tp, max(begins[tp], end - TAIL))
            newest_ms = await self._tail(topic, wanted)
        finally:
            self.consumer.unsubscribe()
        return None if newest_ms is None else datetime.fromtimestamp(newest_ms / 1000, tz=UTC)

    async def _tail(self, topic: str, ends: dict[TopicPartition, int]) -> int | None:
        """Read the assigned partitions up to `ends`; the greatest timestamp (ms) read."""
        newest_ms: int | None = None
        deadline = time.monotonic() + READ_TIMEOUT
        left = dict(ends)
        while left:
            if time.monotonic() > deadline:
                raise ExternalError(
                    f"reading the last records of {topic} took more than {READ_TIMEOUT:g}s",
                    retryable=True,
                )
            batch = await self.consumer.getmany(*left, timeout_ms=200)
            stamps = [r.timestamp for records in batch.values() for r in records]
            if stamps:
                newest_ms = max([*stamps, *([] if newest_ms is None else [newest_ms])])
            for tp in list(left):
                if await self.consumer.position(tp) >= left[tp]:
                    del left[tp]
        return newest_ms
