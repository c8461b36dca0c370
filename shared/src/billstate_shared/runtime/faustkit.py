"""What the faust workers share: app settings that avoid faust's pitfalls, dead letters, probes,
and offsets committed only after the broker acknowledged what their records wrote (`Window`)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, cast

import faust
import structlog
from aiokafka import AIOKafkaConsumer
from faust.tables.table import Table
from faust.types.codecs import CodecArg
from faust.types.tuples import FutureMessage

from billstate_shared.contracts import ContractError, Event, decode
from billstate_shared.domain.policy import Policy
from billstate_shared.errors import ConfigRefused, ExternalError, Refused
from billstate_shared.kafka_auth import KafkaAuth, client_options
from billstate_shared.logging import configure_logging
from billstate_shared.policy_file import PolicyError, load_policy
from billstate_shared.runtime.dlq import DeadLetter
from billstate_shared.runtime.health import Progress
from billstate_shared.runtime.http import HttpServer, build_app
from billstate_shared.runtime.metrics import Metrics
from billstate_shared.runtime.records import Produce
from billstate_shared.runtime.retry import RetryPolicy
from billstate_shared.topic_admin import apply_topics
from billstate_shared.topics import CUSTOMER_PARTITIONS, CUSTOMERS, Topic

log = structlog.get_logger("billstate.worker")


# Recovery reads every record of the changelog, one at a time through faust's loop, so its
# time follows the record count. Kafka never compacts a partition's active segment, and at its
# defaults (1 GiB, 7 days) a changelog is all active segment: every version of every value.
# Small, hourly segments let the cleaner keep about one record per key; 0.1 starts it once a
# tenth of a partition is superseded.
CHANGELOG_CONFIGS = (
    ("segment.bytes", str(16 * 1024 * 1024)),
    ("segment.ms", str(3600 * 1000)),
    ("min.cleanable.dirty.ratio", "0.1"),
)


def make_app(
    name: str,
    bootstrap: str,
    data_dir: Path,
    *,
    replication_factor: int = 1,
    store: str = "rocksdb://",
    commit_interval: float = 0.5,
    producer_linger: float = 0.0,
    auth: KafkaAuth | None = None,
    standby_replicas: int = 0,
) -> Any:
    """A faust app configured for ordered, at-least-once work that decides nothing by clock."""
    return faust.App(
        name,
        broker=[f"kafka://{host}" for host in bootstrap.split(",")],
        store=store,
        datadir=str(data_dir),  # one per worker: RocksDB takes a lock on it
        topic_partitions=CUSTOMER_PARTITIONS,
        topic_replication_factor=replication_factor,
        topic_allow_declare=True,
        topic_disable_leader=True,
        web_enabled=False,  # our own /healthz, /readyz, /metrics look at progress, not the loop
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        broker_commit_every=500,
        # A SIGKILLed worker is out of the group after this, not after the 60 s default.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_commit_interval=commit_interval,
        stream_buffer_maxsize=4096,
        # Seconds a produce batch may wait for more records: fewer, larger produce requests
        # for a worker that writes several records (outputs, changelog) per event.
        producer_linger=producer_linger,
        # Warm copies of other workers' table partitions: a partition that moves comes up
        # from its copy, not the whole changelog. faust's assignor uses at most workers - 1.
        table_standby_replicas=standby_replicas,
        key_serializer="raw",
        value_serializer="raw",
        loghandlers=[],
        broker_credentials=_credentials(auth),
    )


def _credentials(auth: KafkaAuth | None) -> Any:
    """faust's form of the Kafka login (it hands them to aiokafka the same way)."""
    if auth is None or auth.security_protocol == "PLAINTEXT":
        return None
    if auth.sasl:
        assert auth.sasl_password is not None  # checked when the settings were read
        return faust.SASLCredentials(
            username=auth.sasl_username,
            password=auth.sasl_password.get_secret_value(),
            mechanism=auth.sasl_mechanism,
            ssl_context=auth.ssl_context(),
        )
    return faust.SSLCredentials(auth.ssl_context())


def raw_topic(app: Any, *names: str) -> Any:
    return app.topic(*names, key_type=bytes, value_type=bytes)


class Intake:
    """Decode a record or dead-letter it, with metrics and the log context bound.

    A record is accepted only on a topic whose catalog entry carries its `event_type`: the
    billing bus cannot release an operator's hold by writing `hold.released` to the payments
    topic, nor age an invoice, nor tick the clock from an input topic.
    """

    def __init__(
        self,
        app: Any,
        service: str,
        metrics: Metrics,
        progress: Progress,
        inputs: Iterable[Topic],
        *,
        window: Window,
    ) -> None:
        self.app, self.service, self.metrics, self.progress = app, service, metrics, progress
        self.window = window
        inputs = list(inputs)
        self.dlq = {t.dlq: raw_topic(app, t.dlq) for t in inputs}
        self.accepts = {t.name: t.event_types for t in inputs}
        # Labelled children resolved once per topic, not per message.
        self._processed: dict[str, Any] = {}
        self._seconds = metrics.seconds.labels(service)

    async def decode(self, message: Any) -> Event | None:
        """The event, its log context bound; or None once the record is dealt with."""
        if message.value is None:
            self.bind(message)
            if message.topic == CUSTOMERS.name:
                # A tombstone on the compacted customer topic deletes the master record;
                # collections' book and invoicing's register keep their history.
                log.info("tombstone ignored")
                return None
            await self.dead(
                message, Refused("$", "tombstone (null value) on a topic that is not compacted")
            )
            return None
        try:
            event = decode(message.value)
        except ContractError as err:
            self.bind(message)
            await self.dead(message, err)
            return None
        carried = self.accepts.get(message.topic, ())
        if event.event_type not in carried:
            self.bind(message)
            reason = (
                f"{event.event_type} is not accepted on {message.topic};"
                f" it carries {', '.join(carried) or 'nothing this service reads'}"
            )
            await self.dead(message, Refused("event_type", reason, event.event_type))
            return None
        key = message.key.decode("utf-8", "replace") if message.key is not None else None
        # A clock tick is for every customer ("*"), whatever its key.
        if key != event.customer_id != "*":
            # A record keyed otherwise sits on another customer's partition, next to state
            # that is not its own; it must be re-sent with the right key.
            self.bind(message)
            await self.dead(
                message,
                Refused("key", f"Kafka key {key!r} is not the customer_id", event.event_type),
            )
            return None
        self.bind(message, event.customer_id, event.event_id)
        return event

    @staticmethod
    def bind(message: Any, customer_id: str | None = None, event_id: str | None = None) -> None:
        """One message's log context in one call; the ids once the event has decoded."""
        if customer_id is None:
            structlog.contextvars.bind_contextvars(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
        else:
            structlog.contextvars.bind_contextvars(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                customer_id=customer_id,
                event_id=event_id,
            )

    async def dead(self, message: Any, refused: Refused) -> None:
        letter = DeadLetter.from_record(message, self.service, refused).produce()
        await self.window.send(self.dlq[letter.topic], letter.key, letter.value, letter.headers)
        self.metrics.dead_lettered.labels(self.service, message.topic).inc()
        log.warning("dead-lettered", field=refused.field, reason=refused.reason)

    def done(self, message: Any, started: float) -> None:
        topic = message.topic
        processed = self._processed.get(topic)
        if processed is None:
            processed = self._processed[topic] = self.metrics.processed.labels(self.service, topic)
        processed.inc()
        self._seconds.observe(time.perf_counter() - started)
        self.progress.on_processed(topic, message.partition)
        structlog.contextvars.unbind_contextvars(
            "topic", "partition", "offset", "customer_id", "event_id"
        )


def watch_progress(app: Any, progress: Progress) -> None:
    """Feed the probes from faust's own signals and lag."""
    progress.tables = True

    async def _assigned(_app: Any, _assigned: Any, **_: Any) -> None:
        progress.on_assigned()

    async def _revoked(_app: Any, _revoked: Any, **_: Any) -> None:
        progress.on_revoked()

    # Sent when a rebalance's table recovery is done (or none was needed) and the streams
    # resume: polling `in_recovery` alone could catch the moment before recovery began.
    async def _recovered(*_: Any, **__: Any) -> None:
        progress.on_recovered()

    async def _lag() -> None:
        progress.recovering = bool(app.tables.recovery.in_recovery)
        consumer = app.consumer
        offsets = consumer._committed_offset  # noqa: SLF001  (faust has no public view of it)
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            committed = offsets.get(tp)
            if end is not None:
                position = committed if committed is not None else 0
                progress.set_lag(tp.topic, tp.partition, max(end - position, 0))

    # Registered by call, not by decorator: faust's decorators are untyped.
    app.on_partitions_assigned.connect(_assigned)
    app.on_partitions_revoked.connect(_revoked)
    app.on_rebalance_complete.connect(_recovered)
    app.timer(1.0)(_lag)


async def ensure_changelog(
    bootstrap: str,
    app_id: str,
    table: str,
    *,
    partitions: int,
    replication_factor: int,
    auth: KafkaAuth | None = None,
) -> str:
    """Create a table's changelog topic before faust starts and wait until brokers know it.

    faust declares it too, but a first record can reach the table before the metadata of a
    just-created topic has spread, which faust reports as a partition mismatch.
    """
    name = f"{app_id}-{table}-changelog"
    await apply_topics(
        bootstrap,
        [Topic(name, (), f"changelog of {app_id}'s {table} table", cleanup="compact",
               retention_days=None, partitions=partitions, extra_config=CHANGELOG_CONFIGS)],
        replication_factor,
        auth=auth,
    )  # fmt: skip
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **client_options(auth))
    await consumer.start()
    try:
        for _ in range(200):
            # aiokafka's consumer has no public call that refreshes the metadata.
            await consumer._client.force_metadata_update()  # noqa: SLF001
            if len(consumer.partitions_for_topic(name) or ()) == partitions:
                return name
            await asyncio.sleep(0.05)
        raise ExternalError(
            f"changelog topic {name} did not appear in the cluster metadata", retryable=False
        )
    finally:
        await consumer.stop()


# What may be transient in a worker (a topic's metadata not yet spread, a broker moving a
# partition): tried three times, 0.4 s and 0.8 s apart.
RETRY = RetryPolicy(attempts=3, base_delay=0.4)
# A send the broker did not acknowledge is sent again after 0.25 s, 0.5 s, 1 s, 2 s, 4 s, then
# every 5 s, for as long as it takes (`attempts` is not used: the partition waits, it never
# skips). Short, because a retry costs one produce request and the worker does nothing else.
SEND_RETRY = RetryPolicy(attempts=1, base_delay=0.25, max_delay=5.0)
# Consumed records whose writes may be on their way to the broker at once. Their sends
# overlap; each offset waits until its own writes and every earlier record's are acknowledged.
WINDOW = 1000
# Records handled before the handler's collapsed writes (a book written once for all of a
# batch's records about it) are flushed, when more keep coming; an idle stream flushes after
# every record. Below WINDOW, so an unflushed batch never waits for room it holds itself.
BATCH = 500


@dataclass(slots=True)
class Write:
    """One record written for a consumed record, kept to be sent again byte for byte."""

    channel: Any  # the faust topic it goes to
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: Any
    future: asyncio.Future[Any]

    def error(self) -> BaseException | None:
        """Why the broker did not take it, once settled; None when it was acknowledged."""
        if self.future.cancelled():
            return asyncio.CancelledError(f"send to {self.topic} cancelled")
        return self.future.exception()

    def __str__(self) -> str:
        error = self.error()
        return f"{self.topic}: {type(error).__name__}: {error}"


@dataclass(slots=True)
class Flush:
    """What a handler's flush wrote for a batch: every record of the batch waits for it, and
    it is checked once, not once per record."""

    writes: list[Write]
    settled: bool = False  # every write acknowledged (checked at the batch's first record)


@dataclass(slots=True)
class Pending:
    """A consumed record, and what it wrote that the broker may not have acknowledged yet."""

    event: Any
    writes: list[Write] = field(default_factory=list)
    # Whether the handler's flush that covers this record has been sent: until then its
    # offset waits however its own writes went (the book it changed is not written yet).
    sealed: bool = False
    flush: Flush | None = None  # shared by the records of one batch


async def _send(
    channel: Any, key: bytes | None, value: bytes | None, partition: int | None, headers: Any
) -> asyncio.Future[Any]:
    """Hand one record to the producer now, not at commit (`force`: no faust attachment);
    its future settles when the broker acknowledges it or refuses it."""
    try:
        sent = await channel.send(
            key=key,
            value=value,
            partition=partition,
            headers=headers,
            key_serializer="raw",
            value_serializer="raw",
            force=True,
        )
    except Exception as err:  # noqa: BLE001  (refused at once: the same as refused later)
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(err)
        return failed
    return cast("asyncio.Future[Any]", sent)


class AckedTable(Table[bytes, bytes]):
    """A faust table whose changelog writes belong to the record being processed: each
    write's future goes to `on_write`, so the record's offset waits for it too."""

    on_write: Callable[[FutureMessage], None] | None = None

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: CodecArg | None = None,
        value_serializer: CodecArg | None = None,
    ) -> FutureMessage:
        sent: FutureMessage = super().send_changelog(
            partition, key, value, key_serializer, value_serializer
        )
        if self.on_write is not None:
            self.on_write(sent)
        return sent


def acked_table(app: Any, name: str, *, partitions: int) -> AckedTable:
    """A bytes-to-bytes table of `app` whose changelog writes are acknowledged before the
    offsets of the records that made them commit (see `Window`)."""
    table = AckedTable(
        app,
        name=name,
        beacon=app.tables.beacon,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=dict(CHANGELOG_CONFIGS),
    )
    app.tables.add(table)
    return table


class Window:
    """Acknowledged before committed, for a faust agent that acks by hand (`stream.noack()`).

    faust commits a record's offset once the record is acked, and its commit only flushes
    the producer: a send that fails is logged, and the offset is committed past it. Here a
    record is acked only when the broker has acknowledged every record it wrote (outputs,
    dead letters, its table's changelog writes) and every earlier record is acked: acks go in
    the order records came, so faust never commits past a record still in flight.

    Up to `size` records may be in flight at once. A write the broker refuses stops the
    agent (no new record is taken), marks the progress `blocked` with the reason, and is sent
    again, same bytes, with `retry`'s backoff until it is acknowledged; with it go the later
    in-flight writes to the same topic and key, so a customer's records still end in their
    order (a compacted topic keeps the newest). Then the records are acked and the agent
    goes on. A rebalance or a stop while blocked gives the unacknowledged records up without
    acking them: their offsets are not committed, and whoever owns the partition next reads
    them again.
    """

    def __init__(
        self,
        app: Any,
        *,
        service: str,
        progress: Progress,
        metrics: Metrics,
        forget: Callable[[], None],
        size: int = WINDOW,
        retry: RetryPolicy = SEND_RETRY,
    ) -> None:
        self.app, self.service, self.progress, self.metrics = app, service, progress, metrics
        self.forget, self.size, self.retry = forget, size, retry
        self.stream: Any = None  # the agent's manual-ack stream, set when the agent starts
        self.entries: deque[Pending] = deque()
        self.current: Pending | None = None
        self.batch: list[Pending] = []  # handled, waiting for the handler's flush
        self.blocked = False
        self._open = asyncio.Event()  # the agent may take a record
        self._work = asyncio.Event()  # a record waits to be settled
        self._open.set()
        self._given_up_through = -1  # generation whose held records were given up
        self._blocked_gauge = metrics.blocked.labels(service)

    # ---- the agent's side -----------------------------------------------------------

    def open(self) -> bool:
        return self._open.is_set()

    async def room(self) -> None:
        """Wait until the agent may take a record: not blocked, and the window not full."""
        while not self._open.is_set():
            await self._open.wait()

    def fresh(self, message: Any) -> bool:
        """Whether a record the agent holds may still be processed. Not if its partitions
        were revoked while it waited, or if earlier records were given up: acking it would
        let faust commit past them."""
        generation: int = message.generation_id
        current: int = self.app.consumer_generation_id
        return generation == current and generation > self._given_up_through

    def drop(self, message: Any) -> None:
        """Leave a held record unacked for its partition's next owner (or this worker after
        the rebalance): faust must not wait for it."""
        self.app.consumer._unacked_messages.discard(message)  # noqa: SLF001  (no public call)
        log.info("record given up after a rebalance", topic=message.topic,
                 partition=message.partition, offset=message.offset)  # fmt: skip

    def begin(self, event: Any) -> None:
        self.current = Pending(event)

    def end(self) -> None:
        pending, self.current = self.current, None
        if pending is not None:
            self.entries.append(pending)
            self.batch.append(pending)
            self._update()

    def flushing(self) -> None:
        """What is sent from here to `sealed` (the handler's flush) belongs to every record
        of the batch: their offsets wait for it."""
        self.current = Pending(None)

    def sealed(self) -> None:
        done, self.current = self.current, None
        flush = Flush(done.writes) if done is not None and done.writes else None
        for pending in self.batch:
            pending.flush = flush
            pending.sealed = True
        self.batch = []
        self._work.set()

    async def send(
        self, channel: Any, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        """Send one record for the record in hand; its offset waits for the acknowledgement.

        Through faust's producer buffer, like the table's changelog writes: in order, and
        without the agent waiting for the producer (a full batch waits for the broker)."""
        pending = self.current
        if pending is None:
            raise RuntimeError("a send outside a record: nothing would wait for it")
        future: FutureMessage = channel.send_soon(
            key=key, value=value, headers=headers, key_serializer="raw", value_serializer="raw"
        )
        topic = channel.get_topic_name()
        pending.writes.append(Write(channel, topic, key, value, None, headers, future))

    def track(self, sent: FutureMessage) -> None:
        """A table's changelog write (`AckedTable.on_write`) joins the record in hand."""
        pending = self.current
        message = sent.message
        if pending is None:
            # Not from the agent (faust writes no changelog by itself): nobody would wait.
            log.error("changelog write outside a record", topic=message.channel.get_topic_name())
            return
        channel = message.channel
        pending.writes.append(
            Write(channel, channel.get_topic_name(), message.key, message.value,
                  message.partition, message.headers, sent)
        )  # fmt: skip

    # ---- the settling task ----------------------------------------------------------

    async def settle(self) -> None:
        """Ack records in order as their writes are acknowledged; recover failed writes.
        Should this task itself fail, the worker stops: nothing it held is acked."""
        try:
            await self._settle()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.exception("acknowledging records failed; stopping the worker")
            await self.app.crash(err)

    async def _settle(self) -> None:
        while True:
            if not self.entries:
                self._work.clear()
                await self._work.wait()
                continue
            head = self.entries[0]
            if not head.sealed:
                self._work.clear()
                await self._work.wait()
                continue
            flush = head.flush
            if flush is not None and flush.settled:
                flush = None  # an earlier record of its batch found it acknowledged
            writes = head.writes if flush is None else [*head.writes, *flush.writes]
            for write in writes:
                if not write.future.done():
                    await asyncio.wait((write.future,))
            if not self.entries or self.entries[0] is not head:
                continue  # given up while waiting
            if any(write.error() is not None for write in writes):
                await self._recover()
                continue
            if flush is not None:
                flush.settled = True
            self.entries.popleft()
            await self.stream.ack(head.event)
            self._update()

    async def _recover(self) -> None:
        self.blocked = True
        self._update()
        self._blocked_gauge.set(1)
        attempt = 0
        try:
            while True:
                # Wait for every write in flight: then the whole picture is known.
                waiting = [w.future for w in self._writes() if not w.future.done()]
                if waiting:
                    await asyncio.wait(waiting)
                if self._revoking():
                    self._give_up()
                    return
                again = self._again()
                failed = [w for w in again if w.error() is not None]
                if not failed:
                    break
                attempt += 1
                for write in failed:
                    self.metrics.send_failures.labels(self.service, write.topic).inc()
                reason = (
                    f"{len(failed)} record(s) not acknowledged by the broker, retrying"
                    f" (attempt {attempt}); first: {failed[0]}"
                )
                self.progress.block(reason)
                log.error("send failed; partition stopped", attempt=attempt,
                          failed=len(failed), error=str(failed[0]))  # fmt: skip
                # At most 5 s: a rebalance or a stop waits that long for the give-up below.
                await asyncio.sleep(self.retry.delay(attempt))
                if self._revoking():
                    self._give_up()
                    return
                for write in again:
                    write.future = await _send(
                        write.channel, write.key, write.value, write.partition, write.headers
                    )
            log.warning("sends acknowledged; partition resumed", attempts=attempt + 1)
        finally:
            self.blocked = False
            self.progress.unblock()
            self._blocked_gauge.set(0)
            self._update()

    def _writes(self) -> list[Write]:
        """Every write of the records held, in the order sent: a batch's flush after the
        batch's last record's own writes."""
        found: list[Write] = []
        entries = self.entries
        for n, entry in enumerate(entries):
            found.extend(entry.writes)
            flush = entry.flush
            if flush is not None and (n + 1 == len(entries) or entries[n + 1].flush is not flush):
                flush.settled = False  # looked at again once the recovery is over
                found.extend(flush.writes)
        return found

    def _again(self) -> list[Write]:
        """What to send again, in the order first sent: every failed write, and every later
        write to a topic and key a failed one goes to (a customer's order, kept)."""
        again: list[Write] = []
        keys: set[tuple[str, bytes | None]] = set()
        for write in self._writes():
            key = (write.topic, write.key)
            if write.error() is not None or key in keys:
                again.append(write)
                keys.add(key)
        return again

    def _revoking(self) -> bool:
        # faust stops the flow when partitions are revoked and when the worker stops, and
        # then waits for every record taken to be acked.
        return not self.app.flow_control.is_active()

    def _give_up(self) -> None:
        given_up = len(self.entries)
        for entry in self.entries:
            self.app.consumer._unacked_messages.discard(entry.event.message)  # noqa: SLF001
        self.entries.clear()
        self.batch = []
        self._given_up_through = self.app.consumer_generation_id
        self.forget()
        log.warning("partitions revoked while blocked: records left unacked", records=given_up)

    def _update(self) -> None:
        if self.blocked or len(self.entries) >= self.size:
            self._open.clear()
        else:
            self._open.set()


async def process(
    stream: Any,
    intake: Intake,
    handle: Callable[[Any, Event], Awaitable[None]],
    undo: Callable[[Event], None],
    flush: Callable[[], Awaitable[None]],
) -> None:
    """The agent body both workers share: decode or dead-letter, handle with retries, and
    never let an exception end the agent (it would ack the record silently). Records are
    acked by `intake.window`, once what they wrote is acknowledged, the handler's `flush`
    included: it runs when no record waits in the stream's buffer, or every BATCH records."""
    window = intake.window
    waiting = stream.channel.queue  # what the consumer has fetched for this agent
    async for event in stream.events():
        message = event.message
        if window.batch and not window.open():
            await flush()  # the batch must not wait for room it holds
        await window.room()
        if not window.fresh(message):
            window.drop(message)
            continue
        started = time.perf_counter()
        window.begin(event)
        try:
            decoded = await intake.decode(message)
            if decoded is not None:
                # `undo` takes a failed try's half-made changes back before it is repeated
                # or the record is dead-lettered.
                await RETRY.call(
                    partial(handle, message, decoded),
                    on_failure=partial(_retrying, undo=undo, event=decoded),
                )
        except Refused as err:
            intake.metrics.failed.labels(intake.service, message.topic).inc()
            await intake.dead(message, err)
        except Exception as err:
            structlog.contextvars.bind_contextvars(
                topic=message.topic, partition=message.partition, offset=message.offset
            )
            intake.metrics.failed.labels(intake.service, message.topic).inc()
            log.exception("failed")
            await intake.dead(message, Refused("$", f"unexpected error: {err!r}"))
        finally:
            window.end()
            intake.done(message, started)
        if len(window.batch) >= BATCH or waiting.empty():
            await flush()


class Handler(Protocol):
    """What a faust worker's handler offers its agent."""

    def handle(self, record: Any, event: Event) -> list[Produce]:
        """One decoded record in; what to write out now."""
        ...

    def flush(self) -> list[Produce]:
        """The writes collapsed over the records handled since the last flush (a table
        written once per key); what to send with them."""
        ...

    def undo(self, event: Event) -> None:
        """Take back what a failed try of `event` changed, before it is tried again."""
        ...

    def forget(self) -> None:
        """Drop cached state: on revocation, or when records are given up."""
        ...


def run_agent(
    app: Any,
    *,
    service: str,
    inputs: Sequence[Topic],
    outputs: Iterable[str],
    handler: Handler,
    progress: Progress,
    metrics: Metrics,
    window: int = WINDOW,
    send_retry: RetryPolicy = SEND_RETRY,
) -> None:
    """The one agent of a faust worker: reads `inputs` in order (concurrency 1), feeds the
    probes, dead-letters what cannot be decoded or is not its topic's, sends what `handler`
    returns, and acks a record only once the broker has acknowledged all it wrote (its
    tables' changelog writes included: every table of `app` must be an `AckedTable`)."""
    inbound = raw_topic(app, *(t.name for t in inputs))
    outbound = {name: raw_topic(app, name) for name in outputs}
    acks = Window(
        app,
        service=service,
        progress=progress,
        metrics=metrics,
        forget=handler.forget,
        size=window,
        retry=send_retry,
    )
    for table in app.tables.values():
        if not isinstance(table, AckedTable):
            raise TypeError(f"table {table.name} would commit before its changelog is written")
        table.on_write = acks.track
    intake = Intake(app, service, metrics, progress, inputs, window=acks)
    watch_progress(app, progress)

    async def _forget(_app: Any, _revoked: Any, **_: Any) -> None:
        handler.forget()

    async def handle(message: Any, event: Event) -> None:
        for out in handler.handle(message, event):
            await acks.send(outbound[out.topic], out.key, out.value, out.headers or None)

    async def flush() -> None:
        acks.flushing()
        try:
            for out in handler.flush():
                await acks.send(outbound[out.topic], out.key, out.value, out.headers or None)
        except Exception as err:
            # Its records' changes would be acked unwritten: stop, acking none of them.
            log.exception("flushing the batch failed; stopping the worker")
            await app.crash(err)
            raise
        acks.sealed()

    async def agent(stream: Any) -> None:
        manual = stream.noack()
        acks.stream = manual
        settling = asyncio.ensure_future(acks.settle())
        try:
            await process(manual, intake, handle, handler.undo, flush)
        finally:
            settling.cancel()

    # Registered by call, not by decorator: faust's decorators are untyped.
    app.on_partitions_revoked.connect(_forget)
    app.agent(inbound, name=f"billstate.{service}", concurrency=1)(agent)


def _retrying(
    attempt: int,
    _err: BaseException,
    _again: bool,  # noqa: FBT001  (RetryPolicy's OnFailure signature)
    *,
    undo: Callable[[Event], None],
    event: Event,
) -> None:
    undo(event)
    log.warning("retrying", attempt=attempt)


def serve(
    settings: Any,
    table: str,
    build: Callable[[Any, Any, Progress, Metrics], Any],
    accept: Callable[[Any, Policy], Coroutine[Any, Any, None]] | None = None,
) -> None:
    """Start a faust worker process: policy (refused = nothing starts), `accept` (a check of
    the policy against the running one, refused = nothing starts), changelog, probes."""
    configure_logging(settings.service, settings.log_level, settings.log_format)
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as err:
        raise SystemExit(f"{settings.service}: refused policy: {err}") from None
    if accept is not None:
        try:
            asyncio.run(accept(settings, policy))
        except ConfigRefused as err:
            raise SystemExit(
                f"{settings.service}: refused policy {settings.policy_file}: {err.reason}"
            ) from None
    asyncio.run(
        ensure_changelog(
            settings.kafka_bootstrap_servers,
            settings.consumer_group,
            table,
            partitions=CUSTOMER_PARTITIONS,
            replication_factor=settings.replication_factor,
            auth=settings.kafka_auth,
        )
    )
    progress, metrics = Progress(), Metrics(settings.service)
    app = build(settings, policy, progress, metrics)
    server = HttpServer(build_app(progress, metrics), settings.http_host, settings.http_port)

    async def _http() -> None:
        await server.start()
        log.info("http listening", port=server.port)

    app.task(_http)

    worker = faust.Worker(app, loglevel=settings.log_level.lower(), override_logging=False)
    worker.execute_from_commandline()
