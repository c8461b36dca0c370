"""The headless Chromium: a real page served on loopback, read, clicked and photographed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from billstate_devkit.browser import BrowserError, check_binaries

INDEX = """<!doctype html><html><head><title>Console</title></head><body>
<h1 id="title">Collections</h1><a id="next" href="/customers/c-1">customer c-1</a>
</body></html>"""
CUSTOMER = """<!doctype html><html><head><title>c-1</title></head><body>
<p id="stage">suspended</p></body></html>"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
async def site() -> AsyncIterator[str]:
    async def index(_: web.Request) -> web.Response:
        return web.Response(text=INDEX, content_type="text/html")

    async def customer(_: web.Request) -> web.Response:
        return web.Response(text=CUSTOMER, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/customers/c-1", customer)
    runner = web.AppRunner(app)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_open_read_click_and_screenshot(
    site: str, browser: WebDriver, screenshot: Callable[[str], Path]
) -> None:
    # Selenium blocks; the page server runs on this loop, so the driver runs in a thread.
    await asyncio.to_thread(browser.get, f"{site}/")
    title = await asyncio.to_thread(browser.find_element, By.ID, "title")
    assert title.text == "Collections"

    link = await asyncio.to_thread(browser.find_element, By.ID, "next")
    await asyncio.to_thread(link.click)
    stage = await asyncio.to_thread(browser.find_element, By.ID, "stage")
    assert stage.text == "suspended"
    assert browser.current_url == f"{site}/customers/c-1"

    path = await asyncio.to_thread(screenshot, "customer")
    assert path.is_file()
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert ".cache/artifacts/" in path.as_posix()


def test_missing_binaries_name_the_install_step(tmp_path: Path) -> None:
    with pytest.raises(BrowserError, match="make setup-system"):
        check_binaries(chromium=tmp_path / "chromium", chromedriver=tmp_path / "chromedriver")
