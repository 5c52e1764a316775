"""
A small Chrome DevTools Protocol client: headless Chromium driven the way a person uses a page.

``playwright`` / ``selenium`` need browser downloads or drivers that an offline machine does not
have; Debian's ``chromium`` speaks CDP over a websocket, and ``websockets`` comes with Airflow. Typing
goes through ``Input.insertText`` and clicks through ``Input.dispatchMouseEvent`` at the element's
centre, so React sees real input and click events (setting ``.value`` from script does not reach a
React-controlled input).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class CdpError(RuntimeError):
    pass


class Page:
    """One browser tab: evaluate JavaScript, click, type, take screenshots."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self.events.append(message)

    def js(self, expression: str, *, timeout: float = 60) -> Any:
        """The value of ``expression`` (awaited when it is a promise)."""
        result = self.send(
            "Runtime.evaluate",
            timeout=timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression[:200]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def wait_for(self, expression: str, *, timeout: float = 30, what: str | None = None) -> Any:
        """Poll ``expression`` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(CdpError):
                value = self.js(expression)
                if value:
                    return value
            time.sleep(0.2)
        raise TimeoutError(f"waited {timeout}s for {what or expression}")

    def click_at(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", buttons=1, clickCount=1)

    def click(self, selector_js: str, *, timeout: float = 15) -> None:
        """Click the element ``selector_js`` (a JS expression yielding an element) at its centre."""
        box = self.wait_for(
            f"""(() => {{ const e = {selector_js}; if (!e) return null;
                e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                return r.width && r.height ? [r.x + r.width / 2, r.y + r.height / 2] : null; }})()""",
            timeout=timeout,
            what=selector_js,
        )
        self.click_at(*box)

    def type_text(self, text: str) -> None:
        self.send("Input.insertText", text=text)

    def key(self, key: str, code: str, key_code: int, modifiers: int = 0) -> None:
        for kind in ("keyDown", "keyUp"):
            self.send(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=key_code,
                modifiers=modifiers,
            )

    def select_all_and_delete(self) -> None:
        self.key("a", "KeyA", 65, modifiers=2)  # Ctrl+A
        self.key("Backspace", "Backspace", 8)

    def screenshot(self, path: Path, *, full_page: bool = True) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.js(
                "[document.documentElement.scrollWidth, Math.max(document.documentElement.scrollHeight,"
                " document.body.scrollHeight)]"
            )
            params.update(
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
            )
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data


@contextlib.contextmanager
def open_page(browser: str, *, window: tuple[int, int] = (1400, 1000)) -> Iterator[Page]:
    """Headless Chromium with one blank tab, driven over CDP; the browser is stopped afterwards."""
    from websockets.sync.client import connect

    with tempfile.TemporaryDirectory(prefix="mlops-cdp-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={window[0]},{window[1]}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            browser_ws = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and browser_ws is None:
                line = proc.stderr.readline()
                if not line and proc.poll() is not None:
                    raise CdpError(f"chromium exited with {proc.returncode}")
                if match := re.search(r"DevTools listening on (ws://\S+)", line):
                    browser_ws = match.group(1)
            if browser_ws is None:
                raise CdpError("chromium did not report its DevTools endpoint")
            # Keep reading its stderr: a full pipe would block the browser.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            port = re.search(r":(\d+)/", browser_ws).group(1)  # type: ignore[union-attr]
            import urllib.request

            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                targets = json.load(response)
            page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            with connect(page_ws, max_size=None, open_timeout=20) as ws:
                page = Page(ws)
                page.send("Page.enable")
                page.send("Runtime.enable")
                page.send(
                    "Emulation.setDeviceMetricsOverride",
                    width=window[0],
                    height=window[1],
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
