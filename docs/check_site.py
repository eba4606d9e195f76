"""Open pages of the built site in headless Chromium and check that they really render.

Usage (after ``make docs``)::

    .venv/bin/python docs/check_site.py [SITE_DIR] [--screenshots DIR]

The site is served over HTTP from a local port; each page is loaded through the Chrome
DevTools protocol (a websocket, tornado's client). A page fails when the browser logs a
console error, an uncaught exception or a failed resource, when an image on it did not
load (``naturalWidth == 0``), or when it shows fewer images than it should. Resources from
other hosts (matplotlib's animation widget links an icon font from a CDN) are listed on
stderr, not counted as failures: a machine without internet cannot load them. The pages: the
home page, the API page of the core, and the pendulum notebook (plots and an animation).
``tests/test_docs.py`` runs this when a Chromium is installed (Debian: ``apt-get install
chromium``) and skips it otherwise.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

PAGES = {
    # path in the site: (minimum images that must load, text the page must show)
    "": (0, "Differentiable physics and control in JAX"),
    "api/diffsim/": (0, "rollout"),
    "notebooks/pendulum/": (3, "Pendulum"),
}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    """The first Chromium-like executable on ``PATH``, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


async def _check_page(ws_url: str, url: str, screenshot: Path | None) -> dict:
    from tornado.websocket import websocket_connect

    connection = await websocket_connect(ws_url, max_message_size=1 << 28)
    counter = iter(range(1, 1 << 30))
    problems: list[str] = []

    async def call(method: str, **params):
        ident = next(counter)
        await connection.write_message(json.dumps({"id": ident, "method": method,
                                                   "params": params}))
        while True:
            message = json.loads(await connection.read_message())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            _collect(message, problems)

    for domain in ("Page", "Runtime", "Log"):
        await call(f"{domain}.enable")
    await call("Page.navigate", url=url)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until loaded and every image decided
        state = await call("Runtime.evaluate", returnByValue=True, expression=(
            "document.readyState === 'complete' && "
            "Array.from(document.images).every(i => i.complete)"))
        if state["result"].get("value"):
            break
    images = (await call("Runtime.evaluate", returnByValue=True, expression=(
        "JSON.stringify(Array.from(document.images).map(i => [i.naturalWidth, "
        "i.src.slice(0, 60)]))")))["result"]["value"]
    text = (await call("Runtime.evaluate", returnByValue=True,
                       expression="document.body.innerText"))["result"]["value"]
    if screenshot is not None:  # with the first output image in view, where there is one
        await call("Runtime.evaluate", expression=(
            "const first = document.querySelector('.jp-OutputArea img, .jp-OutputArea "
            "canvas'); if (first) first.scrollIntoView();"))
        await call("Runtime.evaluate", awaitPromise=True,
                   expression="new Promise(r => setTimeout(r, 300))")
        shot = await call("Page.captureScreenshot", format="png")
        screenshot.write_bytes(base64.b64decode(shot["data"]))
    connection.close()
    return {"problems": problems, "images": json.loads(images), "text": text}


def _collect(message: dict, problems: list[str]) -> None:
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        problems.append(f"uncaught: {details.get('exception', {}).get('description') or details}")
    elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
        problems.append("console.error: " + " ".join(
            str(arg.get("value", arg.get("description"))) for arg in params["args"]))
    elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
        entry = params["entry"]
        url = entry.get("url", "")
        if url.startswith(("http://", "https://")) and not url.startswith("http://127.0.0.1"):
            # a resource from another host (matplotlib's animation widget links its icon font
            # from a CDN): a machine without internet cannot load it; that says nothing
            # about the site, which renders and works without it
            problems.append(f"offline: {url}")
        else:
            problems.append(f"log: {entry['text']} {url}")


def check_site(site: Path, screenshots: Path | None = None, browser: str | None = None
               ) -> dict[str, list[str]]:
    """Load each page of ``PAGES`` from ``site`` in headless Chromium.

    Args:
        site: a built site folder (``mkdocs build`` output).
        screenshots: a folder for one PNG per page, or None.
        browser: the Chromium executable (default: found on ``PATH``).

    Returns:
        ``{page: [problem, ...]}``, every list empty when the site renders cleanly.
    """
    import asyncio

    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError("no Chromium on PATH (Debian: apt-get install chromium)")
    server, base = _serve(site)
    port = _free_port()
    profile = tempfile.mkdtemp()
    process = subprocess.Popen(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
         "--window-size=1280,1600", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as reply:
                    targets = json.load(reply)
                ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.monotonic() > deadline:
                    raise RuntimeError("Chromium did not open its debugging port") from None
                time.sleep(0.2)
        report = {}
        for page, (min_images, needle) in PAGES.items():
            shot = None
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                shot = screenshots / f"{page.strip('/').replace('/', '_') or 'index'}.png"
            result = asyncio.run(_check_page(ws_url, base + page, shot))
            problems = [p for p in result["problems"] if not p.startswith("offline: ")]
            external = [p for p in result["problems"] if p.startswith("offline: ")]
            broken = [src for width, src in result["images"] if width == 0]
            problems += [f"image did not load: {src}" for src in broken]
            if len(result["images"]) - len(broken) < min_images:
                problems.append(f"{len(result['images']) - len(broken)} images, "
                                f"expected at least {min_images}")
            if needle not in result["text"]:
                problems.append(f"text {needle!r} not shown")
            report[page or "index"] = problems
            if external:
                print(f"{page or 'index'}: not loaded from other hosts: "
                      + ", ".join(sorted(set(external))), file=sys.stderr)
        return report
    finally:
        process.terminate()
        process.wait(timeout=10)
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=Path("site"))
    parser.add_argument("--screenshots", type=Path, default=None)
    args = parser.parse_args(argv)
    report = check_site(args.site, args.screenshots)
    for page, problems in report.items():
        print(f"{page}: " + ("ok" if not problems else "; ".join(problems)))
    return 1 if any(report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
