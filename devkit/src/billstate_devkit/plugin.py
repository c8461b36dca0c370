"""pytest plugin: `kafka_bootstrap` (env, testcontainers, local broker); broker tests run in CI.

Under pytest-xdist (`make test`) each worker starts its own local broker (localkafka.Layout).

Also `postgres_url` (a throwaway PostgreSQL server) and `browser`/`screenshot` (headless
Chromium), from billstate_devkit.postgres and billstate_devkit.browser.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest

from billstate_devkit import localkafka
from billstate_devkit.browser import browser, screenshot
from billstate_devkit.postgres import postgres_url

# Fixtures defined beside what they start, registered by this plugin.
__all__ = ["browser", "kafka_bootstrap", "postgres_url", "screenshot"]

KAFKA_IMAGE = f"apache/kafka:{localkafka.KAFKA_VERSION}"


def _docker_answers() -> bool:
    """A ping, not `which docker`: the client alone is no engine."""
    try:
        # Imported here: docker and testcontainers are dev dependencies, and this plugin
        # loads in every pytest run of an environment that installs billstate-shared.
        import docker  # noqa: PLC0415

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001  (whatever fails, there is no engine to use)
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker for this test session."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield bootstrap
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415  (a dev dependency)

        with KafkaContainer(image=KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    layout = localkafka.Layout.from_env()
    already_running = localkafka.status(layout)["state"] == "running"
    try:
        bootstrap = localkafka.up(layout)
    except localkafka.LocalKafkaError as err:
        pytest.fail(f"no Kafka broker for the broker tests: {err}", pytrace=False)
    try:
        yield bootstrap
    finally:
        if not already_running:
            localkafka.down(layout)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skipped broker test is a failure: the real-broker tests must run."""
    report = yield
    if report.skipped and os.environ.get("CI") and item.get_closest_marker("broker"):
        report.outcome = "failed"
        report.longrepr = f"{item.nodeid}: broker test skipped in CI ({report.longrepr})"
    return report
