"""The documentation site: it builds strictly, documents every public name, and renders in a browser.

The browser checks serve the built site on 127.0.0.1 and open it in headless
Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it): the home page
and a tutorial render with the navigation, the search box finds "partition"
(Material's search runs client-side in a web worker, so the test drives the page
through the Chrome DevTools protocol and waits for the result list), and a
screenshot is written to the test's temporary directory and checked to be a
real picture. Skipped with the reason when mkdocs or chromium is missing.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "graph", "partition", "policies", "algos", "train", "tune", "viz")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium; .ci/run does it)")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """``mkdocs build --strict`` of the repository's site into a temporary folder."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip('mkdocs / mkdocs-material are not installed (pip install -e ".[docs]")')
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.fixture(scope="module")
def server(site):
    """The built site served by Python's http.server on a free 127.0.0.1 port."""
    handler = functools.partial(QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def _run_chromium(tmp_path: Path, *args: str, timeout: float = 60) -> str:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    proc = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


def _nav_titles(dom: str) -> list[str]:
    """Texts of the primary navigation's links and section labels."""
    items = re.findall(r'class="md-nav__link[^"]*"[^>]*>(.*?)</(?:a|label|span)>', dom, re.S)
    return [re.sub(r"<[^>]+>|\s+", " ", item).strip() for item in items]


# ------------------------------------------------------------------ build


def test_api_reference_documents_every_public_name(site):
    """Each package's API page has an entry (anchor) for every name in its ``__all__``."""
    for package in PACKAGES:
        module = importlib.import_module(f"mapograph.{package}")
        page = (site / "api" / package / "index.html").read_text()
        anchors = set(re.findall(r'id="(mapograph\.[A-Za-z0-9_.]+)"', page))
        missing = [n for n in module.__all__ if f"mapograph.{package}.{n}" not in anchors]
        assert not missing, f"api/{package}: no entry for {missing}"
    top = (site / "api" / "mapograph" / "index.html").read_text()
    for name in ("MapographError", "CheckpointError", "OptionalDependencyError"):
        assert f'id="mapograph.{name}"' in top


def test_tutorial_pages_include_their_scripts(site):
    """The snippets are expanded: the pages show the scripts' code, not the include lines."""
    for page, code in (
        ("quickstart", "mg.Trainer(env, cfg, out_dir=OUT)"),
        ("partitions", "mg.partition.k_batches(dag, k=2)"),
        ("tuning", "mg.tune.optimize("),
        ("custom-env", "mg.envs.register("),
    ):
        html = (site / "tutorials" / page / "index.html").read_text()
        text = re.sub(r"<[^>]+>", "", html).replace("&quot;", '"').replace("&gt;", ">")
        assert code in text, f"tutorials/{page}: {code!r} not on the page"
        assert "--8&lt;--" not in html and "--8<--" not in text, f"tutorials/{page}: raw include"


# ------------------------------------------------------------------ browser


def test_home_and_tutorial_render_with_navigation(server, tmp_path):
    home = _run_chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", server + "/")
    assert "<h1" in home and "Cooperative multi-agent reinforcement learning" in home
    nav = _nav_titles(home)
    for title in ("Home", "Getting started", "Tutorials", "B2MAPO explained", "API reference"):
        assert title in nav, f"home page navigation lacks {title!r}: {nav[:40]}"
    assert 'src="img/quickstart_graph.png"' in home

    page = _run_chromium(
        tmp_path, "--virtual-time-budget=3000", "--dump-dom", server + "/tutorials/quickstart/"
    )
    assert re.search(r"<h1[^>]*>\s*1\. Quick start", page), "tutorial title missing"
    nav = _nav_titles(page)
    assert "1. Quick start" in nav and "3. Partition algorithms" in nav
    assert "md-nav__link--active" in page  # the current page is marked in the navigation


def test_screenshot_of_home_page(server, tmp_path):
    shot = tmp_path / "home.png"
    _run_chromium(
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1280,900",
        "--hide-scrollbars",
        "--virtual-time-budget=3000",
        server + "/",
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 900)
    from matplotlib.image import imread

    pixels = imread(shot)
    # a rendered page: many distinct colours (text, header, picture), not a blank canvas
    assert pixels.std() > 0.05
    header = pixels[:40].reshape(-1, pixels.shape[-1])[:, :3]
    body = pixels[200:].reshape(-1, pixels.shape[-1])[:, :3]
    assert abs(header.mean() - body.mean()) > 0.05, "no coloured header bar: theme CSS not loaded"


def test_search_box_finds_partition(server, tmp_path):
    """Load ``/?q=partition`` (Material fills the search box from ``q``) and read the results."""
    with Chromium(tmp_path) as browser:
        page = browser.open(server + "/?q=partition")
        titles = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            titles = page.evaluate(
                "Array.from(document.querySelectorAll('.md-search-result__item'))"
                ".map(e => e.innerText)"
            )
            if titles:
                break
            time.sleep(0.25)
        meta = page.evaluate("document.querySelector('.md-search-result__meta').innerText")
        query = page.evaluate("document.querySelector('.md-search__input').value")
        shot = tmp_path / "search.png"
        shot.write_bytes(page.screenshot())
    assert query == "partition"
    assert titles, f"no search results for 'partition' (meta: {meta!r})"
    assert any("partition" in t.lower() for t in titles)
    assert re.search(r"\d+ matching", meta), meta
    assert shot.stat().st_size > 10_000


# ------------------------------------------------- Chrome DevTools protocol


class Chromium:
    """Headless Chromium with ``--remote-debugging-port``, driven over a minimal websocket."""

    def __init__(self, tmp_path: Path):
        self.profile = tmp_path / f"cdp-profile-{time.monotonic_ns()}"
        self.profile.mkdir()
        self.proc = None

    def __enter__(self) -> Chromium:
        self.proc = subprocess.Popen(
            [
                _chromium(),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        return self

    def open(self, url: str) -> Page:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/json/new?{url}", method="PUT"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            target = json.load(response)
        return Page(target["webSocketDebuggerUrl"])

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Page:
    """One tab: ``evaluate`` JavaScript, take a screenshot (CDP over a websocket)."""

    def __init__(self, ws_url: str):
        self.ws = WebSocket(ws_url)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])


class WebSocket:
    """The smallest client side of RFC 6455 the DevTools protocol needs (text frames)."""

    def __init__(self, url: str):
        match = re.match(r"ws://([^/:]+):(\d+)(/.*)", url)
        host, port, path = match.group(1), int(match.group(2)), match.group(3)
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head.decode(errors="replace")

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("websocket closed")
            data += chunk
        return data

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytes([0x81])  # FIN + text frame
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = first & 0x0F
            if opcode in (0x1, 0x0):  # text or continuation
                message += payload
                if first & 0x80:
                    return message.decode()
            elif opcode == 0x8:
                raise ConnectionError("websocket closed by the browser")
            # ping/pong frames are ignored
