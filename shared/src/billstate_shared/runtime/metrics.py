"""Prometheus metrics with the `billstate_` prefix, one registry per process."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass
class Metrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ["service", "topic"]
        self.processed = Counter(
            "billstate_messages_processed", "Messages processed", labels, registry=self.registry
        )
        self.failed = Counter(
            "billstate_messages_failed", "Messages that failed processing", labels,
            registry=self.registry,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "billstate_messages_dead_lettered", "Messages written to a DLQ", labels,
            registry=self.registry,
        )  # fmt: skip
        self.produced = Counter(
            "billstate_messages_produced", "Messages produced", labels, registry=self.registry
        )
        self.send_failures = Counter(
            "billstate_send_failures", "Produced records the broker did not acknowledge",
            labels, registry=self.registry,
        )  # fmt: skip
        self.blocked = Gauge(
            "billstate_blocked", "1 while a failed send stops the worker, until it is acknowledged",
            ["service"], registry=self.registry,
        )  # fmt: skip
        self.lag = Gauge(
            "billstate_consumer_lag", "Records behind the end of the partition",
            ["service", "topic", "partition"], registry=self.registry,
        )  # fmt: skip
        self.seconds = Histogram(
            "billstate_processing_seconds", "Time to process one message", ["service"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )  # fmt: skip

    def render(self) -> bytes:
        return generate_latest(self.registry)
