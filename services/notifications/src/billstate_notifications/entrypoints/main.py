"""Process entry point of the notifications service."""

from billstate_notifications.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"notifications: service loop arrives with the services issue (settings: {settings.service})")
