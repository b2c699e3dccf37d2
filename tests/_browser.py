"""Headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages, NUL-terminated, commands on fd 3, replies on fd 4), so a test can ask the
browser what it rendered without any package beyond the standard library (no selenium, no
websocket client).

A page is opened with JavaScript disabled for the page itself (the report must read without
it); the test's own questions go through ``Runtime.evaluate``, which DevTools runs regardless.
Every network request the page makes is recorded (``Network.requestWillBeSent``).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
         "--remote-debugging-pipe"]


class Unavailable(Exception):
    """No usable browser here (a reason to skip, not a failure)."""


def chromium() -> str | None:
    """The Chromium binary (Debian's package installs /usr/bin/chromium), or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``with Browser() as b: b.open(url); b.evaluate(js); b.screenshot()``."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0):
        self.binary = chromium()
        if self.binary is None:
            raise Unavailable("no chromium on PATH (Debian: apt-get install chromium; `make test` installs it "
                              "where it can)")
        self.width, self.height, self.timeout = width, height, timeout
        self.requests: list[str] = []
        self._id = 0
        self._buf = b""
        self._session: str | None = None

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="rb-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds():  # in the child: the pipe ends as fds 3 (commands in) and 4 (replies out)
            a = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={self.width},{self.height}",
             "about:blank"], preexec_fn=fds, pass_fds=(3, 4), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        try:
            targets = self.call("Target.getTargets", timeout=30)["targetInfos"]
        except (TimeoutError, EOFError, OSError) as e:
            self.__exit__(None, None, None)
            raise Unavailable(f"{self.binary} did not start: {e}") from None
        page = next(t["targetId"] for t in targets if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", {"targetId": page, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Network.enable"):
            self.call(method, session=True)
        self.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._proc.poll() is None:
                try:
                    self._send("Browser.close", {})
                    self._proc.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    self._proc.kill()
                    self._proc.wait(10)
        finally:
            for fd in (self._to_chrome, self._from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self._proc.stderr:
                self._proc.stderr.close()
            shutil.rmtree(self._profile, ignore_errors=True)

    # ---------------------------------------------------------------- protocol
    def _send(self, method: str, params: dict, session: bool = False) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _next(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from the browser in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                err = self._proc.stderr.read().decode(errors="replace")[-500:] if self._proc.poll() is not None else ""
                raise EOFError(f"the browser closed the pipe {err}".strip())
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        d = json.loads(msg)
        if d.get("method") == "Network.requestWillBeSent":
            self.requests.append(d["params"]["request"]["url"])
        return d

    def _until(self, pred, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            d = self._next(deadline)
            if pred(d):
                return d

    def call(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float | None = None) -> dict:
        i = self._send(method, params or {}, session)
        d = self._until(lambda d: d.get("id") == i, timeout)
        if "error" in d:
            raise RuntimeError(f"{method}: {d['error']}")
        return d["result"]

    # ---------------------------------------------------------------- what a test asks
    def open(self, path: Path) -> None:
        """Load a local file and wait for its load event (every image decoded)."""
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()}, session=True)
        self._until(lambda d: d.get("method") == "Page.loadEventFired")

    def evaluate(self, expression: str):
        """The JSON value of a JavaScript expression, evaluated by DevTools in the page."""
        r = self.call("Runtime.evaluate", {"expression": f"JSON.stringify({expression})", "returnByValue": True},
                      session=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate failed: {r['exceptionDetails']}")
        return json.loads(r["result"]["value"])

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        r = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        return base64.b64decode(r["data"])
