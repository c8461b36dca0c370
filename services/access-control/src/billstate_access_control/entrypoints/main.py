"""Process entry point of the access-control service."""

from billstate_access_control.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"{settings.service}: the stream service is not built yet")
