"""What the faust workers share: app settings that avoid faust's pitfalls, dead letters, probes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import faust
import structlog
from aiokafka import AIOKafkaConsumer

from billstate_shared.contracts import ContractError, Event, decode
from billstate_shared.errors import ExternalError, Refused
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
        table_standby_replicas=0,
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
    """Decode a record or dead-letter it, with metrics and the log context bound."""

    def __init__(
        self,
        app: Any,
        service: str,
        metrics: Metrics,
        progress: Progress,
        dlq_names: Iterable[str],
    ) -> None:
        self.app, self.service, self.metrics, self.progress = app, service, metrics, progress
        self.dlq = {name: raw_topic(app, name) for name in dlq_names}
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
        await self.dlq[letter.topic].send(
            key=letter.key, value=letter.value, headers=letter.headers
        )
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

    async def _assigned(_app: Any, _assigned: Any, **_: Any) -> None:
        progress.on_assigned()

    async def _revoked(_app: Any, _revoked: Any, **_: Any) -> None:
        progress.on_revoked()

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
               retention_days=None, partitions=partitions)],
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


async def process(
    stream: Any,
    intake: Intake,
    handle: Callable[[Any, Event], Awaitable[None]],
    reset: Callable[[], None],
) -> None:
    """The agent body both workers share: decode or dead-letter, handle with retries, and
    never let an exception end the agent (it would ack the record silently)."""
    async for event in stream.events():
        message = event.message
        started = time.perf_counter()
        try:
            decoded = await intake.decode(message)
            if decoded is not None:
                # `reset` drops half-updated cached state before a try is repeated.
                await RETRY.call(
                    partial(handle, message, decoded),
                    on_failure=lambda attempt, _err, _again: _retrying(attempt, reset),
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
            intake.done(message, started)


class Handler(Protocol):
    """What a faust worker's handler offers its agent."""

    def handle(self, record: Any, event: Event) -> list[Produce]:
        """One decoded record in; what to write out."""
        ...

    def forget(self) -> None:
        """Drop cached state: on revocation, and before a failed try is repeated."""
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
) -> None:
    """The one agent of a faust worker: reads `inputs` in order (concurrency 1), feeds the
    probes, dead-letters what cannot be decoded, sends what `handler` returns."""
    inbound = raw_topic(app, *(t.name for t in inputs))
    outbound = {name: raw_topic(app, name) for name in outputs}
    intake = Intake(app, service, metrics, progress, [t.dlq for t in inputs])
    watch_progress(app, progress)

    async def _forget(_app: Any, _revoked: Any, **_: Any) -> None:
        handler.forget()

    async def handle(message: Any, event: Event) -> None:
        # send_soon: buffered, flushed before faust commits the offset.
        for out in handler.handle(message, event):
            outbound[out.topic].send_soon(key=out.key, value=out.value)

    async def agent(stream: Any) -> None:
        await process(stream, intake, handle, handler.forget)

    # Registered by call, not by decorator: faust's decorators are untyped.
    app.on_partitions_revoked.connect(_forget)
    app.agent(inbound, name=f"billstate.{service}", concurrency=1)(agent)


def _retrying(attempt: int, reset: Callable[[], None]) -> None:
    reset()
    log.warning("retrying", attempt=attempt)


def serve(
    settings: Any,
    table: str,
    build: Callable[[Any, Any, Progress, Metrics], Any],
) -> None:
    """Start a faust worker process: policy (refused = nothing starts), changelog, probes."""
    configure_logging(settings.service, settings.log_level, settings.log_format)
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as err:
        raise SystemExit(f"{settings.service}: refused policy: {err}") from None
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
