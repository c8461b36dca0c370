"""What the cost poller's and the commitment watch's tests share: the local Partner Center,
a store, and a provider that maps contoso and fabrikam to their tenants."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from billstate_access_control.providers.partner_center import (
    PartnerCenterConfig,
    PartnerCenterProvider,
)
from billstate_access_control.store import Store
from billstate_devkit.partner_center import PartnerCenterServer

CONTOSO = "7d0b9a52-3c1e-4a8f-9d1e-2b6f0c7a1e01"
FABRIKAM = "2a7c0d41-9b3e-4f6a-8c5d-1e0f9a8b7c6d"
SUB = "5c8e2f10-1a2b-4c3d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
async def pc() -> AsyncIterator[PartnerCenterServer]:
    async with PartnerCenterServer() as server:
        yield server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path)
    yield store
    store.close()


@pytest.fixture
async def provider(pc: PartnerCenterServer, store: Store) -> AsyncIterator[PartnerCenterProvider]:
    config = PartnerCenterConfig(
        base_url=pc.base_url,
        token_url=pc.token_url,
        client_id=pc.client_id,
        client_secret=pc.client_secret,
        request_timeout=2.0,
        customers={"contoso": CONTOSO, "fabrikam": FABRIKAM},
        subscriptions={"sub-a": SUB},
    )
    provider = PartnerCenterProvider(config, store)
    yield provider
    await provider.close()
