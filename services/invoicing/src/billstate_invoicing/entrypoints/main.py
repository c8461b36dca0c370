"""Process entry point of the invoicing service."""

from billstate_invoicing.config import Settings


def main() -> None:
    settings = Settings()
    raise SystemExit(f"invoicing: service loop arrives with the services issue (settings: {settings.service})")
