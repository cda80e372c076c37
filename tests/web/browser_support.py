"""Driving the console in Chromium: sign in, wait on the page, and screenshots checked not blank."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.web.conftest import ConsoleBroker

VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000
MIN_COLOURS = 40
"""A page with text, tables or the map has far more distinct colours than a blank one."""


def open_page(browser: Any, console: ConsoleBroker) -> Any:
    """A fresh browser context (its own cookies) and page at 1280x800."""
    context = browser.new_context(viewport=VIEWPORT, ignore_https_errors=True)
    context.set_default_timeout(WAIT_MS)
    return context.new_page()


def sign_in(page: Any, console: ConsoleBroker, who: str, then: str = "/") -> None:
    """Fill the login form with `who`'s token, as a person would."""
    page.goto(f"{console.url}{then}")
    page.wait_for_url("**/login?**")
    page.fill("#token", console.tokens[who])
    page.click("#sign-in")
    page.wait_for_selector("#whoami")
    assert who in page.inner_text("#whoami")


def wait_live(page: Any) -> None:
    """Wait until the page's event stream is open."""
    page.wait_for_selector("#live.on")


def distinct_colours(path: Path) -> int:
    """How many distinct colours a PNG has (capped at 100000)."""
    from PIL import Image

    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=100_000)
    return 100_000 if colours is None else len(colours)


def screenshot(page: Any, folder: Path, name: str) -> Path:
    """Write `console-NAME.png` of the page at 1280x800 and check that it is not blank."""
    path = folder / f"console-{name}.png"
    page.screenshot(path=str(path))
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (VIEWPORT["width"], VIEWPORT["height"])
    colours = distinct_colours(path)
    assert colours > MIN_COLOURS, f"{path} looks blank ({colours} colours)"
    return path
