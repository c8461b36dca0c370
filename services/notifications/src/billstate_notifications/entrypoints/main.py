"""Process entry point of the notifications service: `python -m billstate_notifications`."""

from __future__ import annotations

from billstate_notifications.config import Settings
from billstate_notifications.entrypoints.service import NotificationsService
from billstate_shared.runtime import service


def main() -> None:
    service.main(Settings(), NotificationsService)
