"""Provider adapters: where suspensions and restores are actually applied."""

from __future__ import annotations

from billstate_access_control.config import Settings
from billstate_access_control.providers.base import Change, Desired, Provider, ProviderError
from billstate_access_control.providers.ledger import LedgerProvider
from billstate_access_control.store import Store

__all__ = [
    "PROVIDERS",
    "Change",
    "Desired",
    "LedgerProvider",
    "Provider",
    "ProviderError",
    "build_provider",
]

PROVIDERS = ("ledger", "partner_center", "webhook")


def build_provider(settings: Settings, store: Store) -> Provider:
    """The provider the settings name, configured from them; what is missing or malformed
    (a mapping file's bad line, a secret of the wrong shape) is a start-up error."""
    # Imported here so the ledger-only service never loads the HTTP clients' modules.
    if settings.provider == "partner_center":
        from billstate_access_control.providers.partner_center import (
            PartnerCenterConfig,
            PartnerCenterProvider,
            load_mapping,
        )

        assert settings.partner_center_mapping_file is not None  # the settings check it
        assert settings.partner_center_client_secret is not None
        customers, subscriptions = load_mapping(settings.partner_center_mapping_file)
        config = PartnerCenterConfig(
            base_url=settings.partner_center_base_url,
            token_url=settings.partner_center_token_url,
            client_id=settings.partner_center_client_id,
            client_secret=settings.partner_center_client_secret,
            scope=settings.partner_center_scope,
            request_timeout=settings.partner_center_timeout,
            customers=customers,
            subscriptions=subscriptions,
        )
        return PartnerCenterProvider(config, store)
    if settings.provider == "webhook":
        from billstate_access_control.providers.webhook import (
            WebhookProvider,
            WebhookProviderConfig,
        )

        assert settings.webhook_secret is not None
        return WebhookProvider(
            WebhookProviderConfig(
                url=settings.webhook_url,  # validated as a URL here
                secret=settings.webhook_secret,
                timeout=settings.webhook_timeout,
            )
        )
    return LedgerProvider(store)
