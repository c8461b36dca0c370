"""A real headless Chromium for page tests: `browser` and `screenshot` fixtures.

Selenium drives Debian's Chromium through Debian's chromedriver (/usr/bin/chromium,
/usr/bin/chromedriver; `make setup-system` installs both). Both paths are given, so Selenium
Manager never looks for (or downloads) a driver or a browser: this works on a closed network.
The flags keep Chromium off the network (no background requests, component updates, sync or
QUIC) and each browser gets a fresh profile folder, removed afterwards.

Selenium's calls block: from an async test whose page server runs on the same event loop,
call the driver through `asyncio.to_thread` so the loop keeps serving.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from billstate_shared.errors import BillstateError

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 900)
FLAGS = (
    "--headless",
    "--no-sandbox",  # root, in a container: Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--password-store=basic",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
ARTIFACTS = Path(".cache/artifacts")


class BrowserError(BillstateError):
    """Chromium or its driver is missing or would not start."""


def check_binaries(chromium: Path = CHROMIUM, chromedriver: Path = CHROMEDRIVER) -> None:
    missing = [str(p) for p in (chromium, chromedriver) if not p.is_file()]
    if missing:
        raise BrowserError(
            f"{' and '.join(missing)} not found: run `make setup-system` to install "
            "Debian's chromium and chromium-driver packages"
        )


def start_chromium(profile: Path) -> WebDriver:
    """A headless Chromium with a fresh profile in `profile`, driven by Debian's chromedriver."""
    check_binaries()
    from selenium import webdriver  # noqa: PLC0415  (only page tests pay for selenium's import)
    from selenium.common.exceptions import WebDriverException  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    try:
        return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    except WebDriverException as err:
        raise BrowserError(f"Chromium would not start: {err.msg}") from err


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    """A fresh headless Chromium for one test (a new profile), quit afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="billstate-chromium-"))
    try:
        driver = start_chromium(profile)
    except BrowserError as err:
        shutil.rmtree(profile, ignore_errors=True)
        pytest.fail(f"no browser for the page tests: {err}", pytrace=False)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_screenshot(driver: WebDriver, folder: Path, name: str) -> Path:
    """Save what the page shows now as `folder/name.png`; print and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_safe(name)}.png"
    if not driver.save_screenshot(str(path)):
        raise BrowserError(f"Chromium did not save a screenshot to {path}")
    print(f"screenshot: {path}")  # noqa: T201  (the test output says where the artifact is)
    return path


@pytest.fixture
def screenshot(browser: WebDriver, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """`screenshot(name)` saves the browser's page under .cache/artifacts/<test>/<name>.png."""
    folder = request.config.rootpath / ARTIFACTS / _safe(request.node.nodeid)

    def take(name: str) -> Path:
        return save_screenshot(browser, folder, name)

    return take


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150]
