"""A background job that runs a round every so often until stopped: the reconciler, the
re-attempts of parked commands."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod

import structlog

log = structlog.get_logger("billstate.access_control")


class Periodic(ABC):
    """`run(interval)` calls `run_once()` every `interval` seconds until `stop()`. A failed
    round is logged and the next one runs on time: a provider or broker outage must not end
    the service."""

    what = "round"  # how the log names a failed round

    def __init__(self) -> None:
        self._stop = asyncio.Event()

    async def run(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception as err:  # noqa: BLE001  (a failed round must not end the service)
                log.warning("background round failed", job=self.what, error=repr(err)[:500])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @abstractmethod
    async def run_once(self) -> object:
        """One round."""
