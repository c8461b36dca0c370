"""The wire contracts on a real broker: every example survives Kafka, keyed and co-partitioned.

Each record this module writes carries two headers, a run id and a sequence number, so it
finds its own records even when other tests write to the same topics at the same time.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from billstate_devkit.kafka import end_offsets, ensure_catalog, read_after, wait_for
from billstate_shared.contracts import ContractError, Event, decode, encode
from billstate_shared.contracts.examples import EXAMPLES
from billstate_shared.topics import CATALOG, CLOCK, CUSTOMER_PARTITIONS, INVOICES, topic_for

pytestmark = pytest.mark.broker

RUN = "billstate-test-run"
SEQ = "billstate-test-seq"

# What a Java producer (the partner's billing bus, Kafka Streams) picks for these keys:
# Utils.toPositive(Utils.murmur2(key)) % 8, computed with kafka-clients 4.1.1. Co-partitioning
# only holds if every producer, whatever its language, agrees on these.
JAVA_PARTITION_OF_8 = {"contoso": 2, "fabrikam": 7, "northwind": 3, "litware": 4, "wingtip": 6}
OTHER_CUSTOMERS = ("fabrikam", "northwind", "litware", "wingtip")


@dataclass(frozen=True)
class Sent:
    seq: int
    event: Event
    topic: str
    key: bytes
    partition: int  # what the producer's RecordMetadata says
    offset: int


@dataclass(frozen=True)
class RoundTrip:
    sent: list[Sent]
    received: dict[int, ConsumerRecord]  # by sequence number


def _rekeyed(event: Event, customer_id: str) -> Event:
    """The same example for another customer, validated like anything off the wire."""
    doc = json.loads(encode(event))
    doc["customer_id"] = customer_id
    doc["event_id"] = f"{doc['event_id']}-{customer_id}"
    return decode(json.dumps(doc))


def _header(record: ConsumerRecord, name: str) -> bytes | None:
    return next((value for key, value in record.headers or () if key == name), None)


async def _start_offsets(bootstrap: str, topics: set[str]) -> dict[TopicPartition, int]:
    start: dict[TopicPartition, int] = {}
    for name in sorted(topics):
        offsets = await end_offsets(bootstrap, name)
        assert offsets, f"{name} has no partitions on the test broker"
        start.update(offsets)
    return start


async def _read_back(
    bootstrap: str, start: dict[TopicPartition, int], run_id: bytes, count: int
) -> dict[int, ConsumerRecord]:
    def ours(records: list[ConsumerRecord]) -> dict[int, ConsumerRecord]:
        found: dict[int, ConsumerRecord] = {}
        for record in records:
            seq = _header(record, SEQ)
            if _header(record, RUN) == run_id and seq is not None:
                found[int(seq)] = record
        return found

    records = await read_after(bootstrap, start, lambda rs: len(ours(rs)) >= count, timeout=60)
    return ours(records)


@pytest.fixture(scope="module")
async def round_trip(kafka_bootstrap: str) -> RoundTrip:
    """Produce every example (and customer-keyed copies for other customers); read them back."""
    await ensure_catalog(kafka_bootstrap)
    events: list[Event] = list(EXAMPLES.values())
    events += [
        _rekeyed(e, customer)
        for customer in OTHER_CUSTOMERS
        for e in EXAMPLES.values()
        if topic_for(e.event_type).key == "customer_id"
    ]
    start = await _start_offsets(kafka_bootstrap, {topic_for(e.event_type).name for e in events})
    run_id = uuid.uuid4().hex.encode()

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    sent: list[Sent] = []
    try:
        for event in events:
            topic = topic_for(event.event_type).name
            key = event.customer_id.encode("utf-8")
            # The clock's key is "*": no partitioner, a copy on every partition, as the clock does.
            targets: list[int | None] = (
                sorted(await producer.partitions_for(topic))
                if event.event_type == "clock.tick"
                else [None]
            )
            for partition in targets:
                seq = len(sent)
                meta = await producer.send_and_wait(
                    topic,
                    encode(event),
                    key=key,
                    partition=partition,
                    headers=[(RUN, run_id), (SEQ, str(seq).encode())],
                )
                sent.append(Sent(seq, event, topic, key, meta.partition, meta.offset))
    finally:
        await producer.stop()

    received = await _read_back(kafka_bootstrap, start, run_id, len(sent))
    return RoundTrip(sent, received)


async def test_every_example_decodes_back_to_itself(round_trip: RoundTrip) -> None:
    assert {s.event.event_type for s in round_trip.sent} == set(EXAMPLES)
    for s in round_trip.sent:
        record = round_trip.received[s.seq]
        assert record.topic == s.topic
        assert decode(record.value) == s.event, s.event.event_type
        assert record.value == encode(s.event)


async def test_key_is_the_customer_id(round_trip: RoundTrip) -> None:
    for s in round_trip.sent:
        record = round_trip.received[s.seq]
        assert record.key == s.event.customer_id.encode("utf-8"), s.event.event_type
        assert record.key == s.key


async def test_records_sit_where_the_producer_put_them(round_trip: RoundTrip) -> None:
    for s in round_trip.sent:
        record = round_trip.received[s.seq]
        assert (record.partition, record.offset) == (s.partition, s.offset), s.event.event_type


async def test_default_partitioner_agrees_with_java(round_trip: RoundTrip) -> None:
    assert CUSTOMER_PARTITIONS == 8, "JAVA_PARTITION_OF_8 is for 8 partitions; recompute it"
    for s in round_trip.sent:
        if topic_for(s.event.event_type).key == "customer_id":
            assert s.partition == JAVA_PARTITION_OF_8[s.event.customer_id], (
                f"{s.event.event_type} for {s.event.customer_id} went to partition {s.partition}"
            )


async def test_a_customer_lands_on_one_partition_number_on_every_topic(
    round_trip: RoundTrip,
) -> None:
    by_customer: dict[str, dict[str, set[int]]] = {}
    for s in round_trip.sent:
        if topic_for(s.event.event_type).key != "customer_id":
            continue
        by_customer.setdefault(s.event.customer_id, {}).setdefault(s.topic, set()).add(
            round_trip.received[s.seq].partition
        )
    assert set(by_customer) == {"contoso", *OTHER_CUSTOMERS}
    for customer, topics in by_customer.items():
        assert len(topics) > 1, f"{customer} was written to only {sorted(topics)}"
        numbers = set().union(*topics.values())
        assert len(numbers) == 1, f"{customer} is split across partitions: {topics}"
    # Not vacuous: different customers do spread over different partitions.
    spread = {next(iter(set().union(*topics.values()))) for topics in by_customer.values()}
    assert len(spread) > 1


async def test_clock_tick_reaches_every_partition(round_trip: RoundTrip) -> None:
    ticks = [s for s in round_trip.sent if s.event.event_type == "clock.tick"]
    partitions = sorted(round_trip.received[s.seq].partition for s in ticks)
    assert partitions == list(range(CUSTOMER_PARTITIONS))
    for s in ticks:
        record = round_trip.received[s.seq]
        assert record.topic == CLOCK.name
        assert record.key == b"*"
        assert decode(record.value) == EXAMPLES["clock.tick"]


async def test_keyed_topics_have_the_customer_partition_count(kafka_bootstrap: str) -> None:
    await ensure_catalog(kafka_bootstrap)
    keyed = [t.name for t in CATALOG if t.key in ("customer_id", "*")]
    # Subscribing makes the consumer fetch these topics' metadata, as a service's consumer does.
    consumer = AIOKafkaConsumer(*keyed, bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await wait_for(lambda: all(consumer.partitions_for_topic(n) for n in keyed), timeout=30)
        counts = {name: consumer.partitions_for_topic(name) for name in keyed}
    finally:
        await consumer.stop()
    assert INVOICES.name in keyed
    assert CLOCK.name in keyed  # one tick per partition needs the same count
    wrong = {
        name: sorted(counts[name] or ())
        for name in keyed
        if counts[name] != set(range(CUSTOMER_PARTITIONS))
    }
    assert not wrong, f"not {CUSTOMER_PARTITIONS} partitions: {wrong}"


def _issued_doc() -> dict[str, object]:
    doc: dict[str, object] = json.loads(encode(EXAMPLES["invoice.issued"]))
    return doc


def _bad_json() -> bytes:
    return encode(EXAMPLES["invoice.issued"])[:40]


def _unknown_type() -> bytes:
    return json.dumps({**_issued_doc(), "event_type": "invoice.paid"}).encode()


def _float_amount() -> bytes:
    doc = _issued_doc()
    data = doc["data"]
    assert isinstance(data, dict)
    return json.dumps({**doc, "data": {**data, "amount": 1450.07}}).encode()


# (name, bytes, expected ContractError.field, expected .event_type)
BAD = [
    ("bad JSON", _bad_json(), "$", None),
    ("unknown event_type", _unknown_type(), "event_type", "invoice.paid"),
    ("amount as a JSON number", _float_amount(), "data.amount", "invoice.issued"),
]


async def test_what_the_dlq_will_record_for_bad_messages(kafka_bootstrap: str) -> None:
    await ensure_catalog(kafka_bootstrap)
    start = await end_offsets(kafka_bootstrap, INVOICES.name)
    run_id = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    placed: list[tuple[int, int]] = []
    try:
        for seq, (_name, value, _field, _type) in enumerate(BAD):
            meta = await producer.send_and_wait(
                INVOICES.name,
                value,
                key=b"contoso",
                headers=[(RUN, run_id), (SEQ, str(seq).encode())],
            )
            placed.append((meta.partition, meta.offset))
    finally:
        await producer.stop()

    received = await _read_back(kafka_bootstrap, start, run_id, len(BAD))

    for seq, (name, value, field, event_type) in enumerate(BAD):
        record = received[seq]
        # The DLQ record carries the original bytes, the partition and the offset.
        assert record.value == value, name
        assert (record.partition, record.offset) == placed[seq], name
        with pytest.raises(ContractError) as caught:
            decode(record.value)
        assert caught.value.field == field, f"{name}: {caught.value}"
        assert caught.value.reason.strip(), name
        assert caught.value.event_type == event_type, name
    # Reasons go to logs and DLQ records, so they describe the value without quoting it.
    with pytest.raises(ContractError) as amount_error:
        decode(received[2].value)
    assert "1450.07" not in amount_error.value.reason
