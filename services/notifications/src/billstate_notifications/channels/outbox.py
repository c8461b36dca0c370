"""The file outbox: one JSON file per notice, written atomically, for tests, demos and
pick-up by another mailer. Carries no addresses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from pathlib import Path

from billstate_notifications.channels.base import Audience, ChannelError, document
from billstate_notifications.domain import Rendered

# notice ids are contract `Id`s (no whitespace or control characters) but may hold "/" or
# "..": only ids that are plainly safe as one file name are written.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}")


class OutboxChannel:
    """Writes `<directory>/<notice_id>.json`; writing the same notice again is harmless."""

    name = "outbox"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, notice_id: str) -> Path:
        if not _SAFE_NAME.fullmatch(notice_id):
            raise ChannelError("notice_id is not usable as a file name", retryable=False)
        return self.directory / f"{notice_id}.json"

    async def deliver(
        self,
        notice_id: str,
        audience: Audience,
        address: str | None,  # noqa: ARG002  (the Channel signature; the outbox holds no address)
        rendered: Rendered,
    ) -> None:
        path = self.path_for(notice_id)
        content = document(notice_id, audience, rendered)
        body = json.dumps(content, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
        try:
            await asyncio.to_thread(_write_atomically, path, body)
        except OSError as err:
            # A full disk or a read-only mount may heal; a retry costs little.
            raise ChannelError(
                f"outbox write failed: {err.strerror or err}", retryable=True
            ) from None


def _write_atomically(path: Path, body: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_bytes() == body:
        return  # delivered before with the same content: nothing to do
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
