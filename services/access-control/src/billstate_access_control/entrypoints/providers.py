"""The provider the settings name, built from them at start-up."""

from __future__ import annotations

from billstate_access_control.config import Settings
from billstate_access_control.providers import BuiltinProvider, Provider
from billstate_access_control.providers.partner_center import (
    PartnerCenterConfig,
    PartnerCenterProvider,
    load_mapping,
)
from billstate_access_control.providers.webhook import WebhookProvider, WebhookProviderConfig
from billstate_access_control.store import Store


def build_provider(settings: Settings, store: Store) -> Provider:
    """What is missing or malformed (a mapping file's bad line, a secret of the wrong shape)
    is a start-up error: nothing starts."""
    if settings.provider == "partner_center":
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
        assert settings.webhook_secret is not None
        return WebhookProvider(
            WebhookProviderConfig(
                url=settings.webhook_url,  # validated as a URL here
                secret=settings.webhook_secret,
                timeout=settings.webhook_timeout,
            )
        )
    return BuiltinProvider(store)
