"""Process entry point of the notifications service."""

from billstate_notifications.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"{settings.service}: the stream service is not built yet")
