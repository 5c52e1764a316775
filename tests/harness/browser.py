"""
Headless Chromium, one process per page: screenshots of the HTML reports and the Airflow UI, and
the rendered DOM to assert on (what a person would see, not the HTML the server sent).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


def find_browser() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run(
    browser: str,
    url: str,
    extra: list[str],
    *,
    window: tuple[int, int],
    wait_ms: int,
    profile: Path | None = None,
) -> str:
    with tempfile.TemporaryDirectory(prefix="mlops-chromium-") as scratch:
        proc = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile or scratch}",
                "--hide-scrollbars",
                f"--window-size={window[0]},{window[1]}",
                # Single-page apps (the Airflow UI) render after their API calls: let virtual time run.
                f"--virtual-time-budget={wait_ms}",
                *extra,
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=180,
        )
    return proc.stdout


def screenshot(
    url: str,
    path: Path,
    *,
    window: tuple[int, int] = (1500, 800),
    wait_ms: int = 15_000,
    browser: str,
    profile: Path | None = None,
) -> bytes:
    """
    Render ``url`` and save a PNG of the window at ``path``; returns the PNG's bytes.

    ``profile``: a browser profile kept between calls (its cache holds what the page loads lazily,
    e.g. the Airflow UI's translations); a fresh one per call otherwise.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    _run(browser, url, [f"--screenshot={path}"], window=window, wait_ms=wait_ms, profile=profile)
    return path.read_bytes()


def rendered_dom(
    url: str, *, window: tuple[int, int] = (1500, 800), wait_ms: int = 15_000, browser: str
) -> str:
    """The DOM of ``url`` after its scripts ran, serialized as HTML."""
    return _run(browser, url, ["--dump-dom"], window=window, wait_ms=wait_ms)
