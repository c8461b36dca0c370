"""Process entry point of the collections service."""

from billstate_collections.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"collections: service loop arrives with the services issue (settings: {settings.service})")
