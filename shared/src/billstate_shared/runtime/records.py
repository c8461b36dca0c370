"""What a handler reads (`Record`) and what it asks to be written (`Produce`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Produce:
    """One record a handler wants written."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Record(Protocol):
    """The parts of a consumed Kafka record a handler reads (aiokafka's ConsumerRecord and
    faust's Message both fit)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
