"""Process entry point of the collections service."""

from billstate_collections.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"{settings.service}: the stream service is not built yet")
