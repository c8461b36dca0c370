"""Dead letters: a refused record goes to `<topic>.dlq` with its original bytes and the reason."""

from __future__ import annotations

from dataclasses import dataclass

from billstate_shared.errors import Refused
from billstate_shared.runtime.records import Headers, Produce, Record

PREFIX = "billstate.dlq."


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Why one record was refused, and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    field: str
    service: str
    event_type: str | None = None

    @classmethod
    def from_record(
        cls,
        record: Record,
        service: str,
        refused: Refused,
        value: bytes | None = None,
    ) -> DeadLetter:
        """The dead letter of `record`, refused for `refused`'s field and reason; `value`
        replaces the record's bytes where the handler has read them already."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value if value is None else value,
            reason=refused.reason,
            field=refused.field,
            service=service,
            event_type=refused.event_type,
        )

    def headers(self) -> Headers:
        pairs = {
            "reason": self.reason,
            "field": self.field,
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "service": self.service,
            "event_type": self.event_type or "",
        }
        return [(PREFIX + k, v.encode()) for k, v in pairs.items()]

    @property
    def dlq_topic(self) -> str:
        return f"{self.topic}.dlq"

    def produce(self) -> Produce:
        """The DLQ record: the original key and value, the reason in headers."""
        return Produce(self.dlq_topic, self.key, self.value, tuple(self.headers()))


def read_headers(headers: Headers | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """The dead-letter headers of a DLQ record, without the prefix."""
    return {k[len(PREFIX) :]: v.decode() for k, v in headers if k.startswith(PREFIX)}
