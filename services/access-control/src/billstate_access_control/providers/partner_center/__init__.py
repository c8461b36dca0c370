"""The Partner Center provider, in three parts: the id mapping file (`mapping`), the Microsoft
Entra token client (`entra`, over `transport`), and the REST provider itself (`provider`)."""

from billstate_access_control.providers.partner_center.mapping import load_mapping
from billstate_access_control.providers.partner_center.provider import (
    DROPPED_BY_SUSPENSION,
    NAME,
    PartnerCenterConfig,
    PartnerCenterProvider,
)

__all__ = [
    "DROPPED_BY_SUSPENSION",
    "NAME",
    "PartnerCenterConfig",
    "PartnerCenterProvider",
    "load_mapping",
]
