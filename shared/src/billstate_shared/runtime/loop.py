"""A plain aiokafka consume-handle-produce loop: at-least-once, dead letters, a log line each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, IllegalStateError

from billstate_shared.errors import ExternalError, Refused
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Headers, Produce, Record
from billstate_shared.runtime.retry import RetryPolicy

log = structlog.get_logger("billstate.loop")

# A handler's unexpected error: tried three times, 0.1 s and 0.2 s apart, then dead-lettered.
HANDLER_RETRY = RetryPolicy(attempts=3, base_delay=0.1)


__all__ = ["Handler", "Loop", "Produce", "Record", "Refused"]

Handler = Callable[[Record], Awaitable[Sequence[Produce]]]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Lets a rebalance wait for the batch in hand, so its outputs are flushed and its offsets
    committed by this member before another member is given the partitions."""

    def __init__(self, progress: Progress, batch: asyncio.Lock) -> None:
        self.progress, self.batch = progress, batch

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self.batch:
            self.progress.on_revoked()
            # A revoked partition's lag is another member's now; kept here, it would look
            # like lag that never moves and fail liveness on a healthy worker.
            for tp in revoked:
                self.progress.lag.pop((tp.topic, tp.partition), None)

    async def on_partitions_assigned(self, _assigned: list[TopicPartition]) -> None:
        self.progress.on_assigned()


class Loop:
    """Consume `topics` as `group`, hand each record to `handler`, produce what it returns,
    then commit: outputs are flushed before the offsets that caused them are committed.

    A record the handler refuses (`Refused`, a ContractError among them) goes to `<topic>.dlq`
    with its reason; another error is retried by `retry` and then dead-lettered too,
    so one poison message never stops a partition and nothing is dropped silently.

    Every record produced for a batch must be acknowledged by the broker before the batch's
    offsets are committed; a delivery that fails ends `run()` with the error and commits
    nothing, so the batch is consumed again after a restart. A rebalance waits for the batch
    in hand (see `_Listener`), and `stop()` takes effect between records.
    """

    def __init__(
        self,
        *,
        service: str,
        bootstrap: str,
        topics: Sequence[str],
        group: str,
        handler: Handler,
        progress: Progress,
        metrics: Metrics,
        retry: RetryPolicy = HANDLER_RETRY,
        max_records: int = 500,
        auth: KafkaAuth | None = None,
    ) -> None:
        self.service, self.topics, self.handler = service, list(topics), handler
        self.progress, self.metrics, self.retry = progress, metrics, retry
        self.max_records = max_records
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"billstate-{service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # Range first: topics keyed by customer with the same partition count give one
            # member partition p of each, so a customer's records on every topic it reads
            # (commands and the decisions on them) reach the same worker. Round robin,
            # aiokafka's default, second, so that a worker of an older version in the group
            # during a rolling start does not fail the join.
            partition_assignment_strategy=(RangePartitionAssignor, RoundRobinPartitionAssignor),
            **client_options(auth),
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id=f"billstate-{service}",
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            **client_options(auth),
        )
        self._stop = asyncio.Event()
        self._batch = asyncio.Lock()
        self._pending: list[asyncio.Future[object]] = []

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Listener(self.progress, self._batch))
        await self._check_authorized()

    async def _check_authorized(self) -> None:
        """Stop at start-up, naming the topics, when the broker refuses to let this service
        read some of them: aiokafka would only log it and consume the rest, ready and silent."""
        client = self.consumer._client  # noqa: SLF001  (aiokafka has no public metadata view)
        await client.force_metadata_update()
        refused = sorted(set(self.topics) & client.cluster.unauthorized_topics)
        if refused:
            raise ExternalError(
                f"{self.service} is not authorized to read {', '.join(refused)}: "
                "grant its Kafka user Read and Describe on them (billstate topics acls)",
                retryable=False,
            )

    async def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        delivery = await self.producer.send(topic, value=value, key=key, headers=headers)
        self._pending.append(delivery)
        self.metrics.produced.labels(self.service, topic).inc()

    async def run(self) -> None:
        """Run until `stop()`; the caller owns start/close."""
        while not self._stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
            if batches:
                async with self._batch:
                    await self._batch_of(batches)
            await self._update_lag()

    async def _batch_of(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        commits: dict[TopicPartition, int] = {}
        for tp, records in batches.items():
            for record in records:
                if self._stop.is_set():
                    break
                await self._one(record)
                commits[tp] = record.offset + 1
        await self._delivered()
        await self._commit(commits)

    async def _delivered(self) -> None:
        """Wait for the broker to acknowledge every record sent so far; raise if one failed.

        `producer.flush()` alone waits but never raises: a failed delivery would be
        committed past and lost.
        """
        pending, self._pending = self._pending, []
        await self.producer.flush()
        for delivery in pending:
            await delivery  # raises the delivery error, if any

    async def _commit(self, commits: dict[TopicPartition, int]) -> None:
        assigned = self.consumer.assignment()
        owned = {tp: offset for tp, offset in commits.items() if tp in assigned}
        if not owned:
            return
        try:
            await self.consumer.commit(owned)
        except (CommitFailedError, IllegalStateError) as err:
            # The group moved on while this batch ran: its outputs are delivered and the new
            # owner reads these records again; idempotent handlers make that harmless.
            log.warning("commit skipped after a rebalance", error=repr(err))

    async def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is not None:
                try:
                    position = await self.consumer.position(tp)
                except IllegalStateError:  # revoked between assignment() and position()
                    continue
                self.progress.set_lag(tp.topic, tp.partition, max(end - position, 0))

    async def _one(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        structlog.contextvars.bind_contextvars(
            topic=record.topic, partition=record.partition, offset=record.offset
        )
        try:
            outputs = await self._handle(record)
            if outputs is None:
                return
            for out in outputs:
                await self.send(out.topic, out.key, out.value, list(out.headers))
            self.metrics.processed.labels(self.service, record.topic).inc()
            log.info("processed", produced=len(outputs))
        finally:
            self.metrics.seconds.labels(self.service).observe(time.perf_counter() - started)
            end = self.consumer.highwater(TopicPartition(record.topic, record.partition))
            lag = None if end is None else max(end - record.offset - 1, 0)
            self.progress.on_processed(record.topic, record.partition, lag)
            structlog.contextvars.unbind_contextvars(
                "topic", "partition", "offset", "customer_id", "event_id"
            )

    async def _handle(self, record: ConsumerRecord) -> Sequence[Produce] | None:
        def failed(attempt: int, err: BaseException, again: bool) -> None:  # noqa: FBT001
            if not isinstance(err, Refused):
                self.metrics.failed.labels(self.service, record.topic).inc()
                log.warning("handler failed", attempt=attempt, retryable=again, error=repr(err))

        tried = 0

        async def handle() -> Sequence[Produce]:
            nonlocal tried
            tried += 1
            return await self.handler(record)

        try:
            return await self.retry.call(handle, on_failure=failed)
        except Refused as err:
            await self._dead(record, err)
        except Exception as err:  # noqa: BLE001  (anything else is dead-lettered, never lost)
            reason = f"unexpected error after {tried} attempts: {err!r}"
            await self._dead(record, Refused("$", reason))
        return None

    async def _dead(self, record: ConsumerRecord, refused: Refused) -> None:
        letter = DeadLetter.from_record(record, self.service, refused).produce()
        await self.send(letter.topic, letter.key, letter.value, list(letter.headers))
        self.metrics.dead_lettered.labels(self.service, record.topic).inc()
        log.warning("dead-lettered", field=refused.field, reason=refused.reason)
