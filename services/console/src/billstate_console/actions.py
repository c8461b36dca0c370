"""The console's producer: operator events sent with acks=all, idempotent, and awaited.

An action is done when the broker has acknowledged its record; only then is it audited and
the page redirected. The read model shows its effect later, when it reads the record back
(or, for a hold, when collections has applied it and published the customer's state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from billstate_shared.contracts import Event, encode
from billstate_shared.errors import ExternalError
from billstate_shared.kafka_auth import KafkaAuth, client_options

Headers = tuple[tuple[str, bytes], ...]


class SendError(ExternalError):
    """The broker did not acknowledge a record: nothing is known to be sent."""


@dataclass(frozen=True)
class Sent:
    topic: str
    partition: int
    offset: int


class Actions:
    """One idempotent producer (acks=all), started and stopped with the service."""

    def __init__(
        self, bootstrap: str, auth: KafkaAuth | None = None, *, timeout_ms: int = 15000
    ) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            client_id="billstate-console-actions",
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=timeout_ms,
            **client_options(auth),
        )

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def send(self, topic: str, event: Event) -> Sent:
        """The event keyed by its customer; returns once the broker acknowledged it."""
        return await self.send_raw(topic, event.customer_id.encode(), encode(event))

    async def send_raw(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers = ()
    ) -> Sent:
        try:
            done: Any = await self.producer.send_and_wait(
                topic, value=value, key=key, headers=list(headers)
            )
        except KafkaError as err:
            raise SendError(f"{topic}: the broker did not acknowledge: {err}") from None
        return Sent(topic, int(done.partition), int(done.offset))


@dataclass(frozen=True)
class Cluster:
    """Where the cluster is and how to log in: what reading a topic to its end needs."""

    bootstrap: str
    auth: KafkaAuth | None = None

    def options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **client_options(self.auth)}
