"""Process entry point of the access-control service."""

from billstate_access_control.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"access-control: service loop arrives with the services issue (settings: {settings.service})")
