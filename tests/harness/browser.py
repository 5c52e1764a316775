"""
Headless Chromium through Playwright: screenshots of the HTML reports and the Airflow UI, the
rendered DOM to assert on (what a person would see, not the HTML the server sent), and a page to
drive like a person (tests/integration/test_connection_ui.py).

Playwright drives the system's ``chromium`` (Debian's package, which ``./dev`` installs) through
``executable_path``: ``playwright install`` and its browser download are never needed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

# As root Chromium refuses to start without --no-sandbox; the rest keep it off the (closed) network,
# where its background services would otherwise retry refused connections all along.
FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_browser() -> str | None:
    """The system's Chromium, or ``None`` (the callers skip, or fail under MLOPS_REQUIRE_SERVERS=1)."""
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@contextlib.contextmanager
def open_page(browser: str, *, window: tuple[int, int] = (1500, 800)) -> Iterator[Page]:
    """
    A blank page in headless ``browser`` (an executable path) with a ``window``-sized viewport; the
    browser is closed afterwards.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=browser, headless=True, args=list(FLAGS))
        try:
            context = instance.new_context(viewport={"width": window[0], "height": window[1]})
            yield context.new_page()
        finally:
            instance.close()


def capture(
    url: str,
    path: Path,
    *,
    browser: str,
    window: tuple[int, int] = (1500, 800),
    wait_for_text: Sequence[str] = (),
    timeout_s: float = 60,
) -> tuple[bytes, str]:
    """
    Render ``url``, save a PNG of the window at ``path``; returns the PNG's bytes and the DOM after
    the page's scripts ran, serialized as HTML.

    The page counts as rendered once the network is idle (single-page apps such as the Airflow UI
    render after their API calls) and every string of ``wait_for_text`` is in its visible text. A
    string that never shows is not an error here: the caller's assertions on the DOM say what is
    missing.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with open_page(browser, window=window) as page:
        page.goto(url, wait_until="networkidle", timeout=timeout_s * 1000)
        if wait_for_text:
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(
                    "texts => texts.every(t => document.body.innerText.includes(t))",
                    arg=list(wait_for_text),
                    timeout=timeout_s * 1000,
                )
        png = page.screenshot(path=path)
        return png, page.content()
