"""Dead letters: a refused record goes to `<topic>.dlq` with its original bytes and the reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Headers = list[tuple[str, bytes]]
Send = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[object]]

PREFIX = "billstate.dlq."


@dataclass(frozen=True)
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


def read_headers(headers: Headers | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """The dead-letter headers of a DLQ record, without the prefix."""
    return {k[len(PREFIX) :]: v.decode() for k, v in headers if k.startswith(PREFIX)}


async def dead_letter(send: Send, letter: DeadLetter) -> None:
    """Write the original key and value to the topic's DLQ with the reason in headers."""
    await send(letter.dlq_topic, letter.key, letter.value, letter.headers())
