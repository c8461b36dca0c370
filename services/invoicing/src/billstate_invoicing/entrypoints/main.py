"""Process entry point of the invoicing service."""

from billstate_invoicing.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"{settings.service}: the stream service is not built yet")
