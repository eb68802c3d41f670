"""The browser viewer in a real headless Chromium (Debian's, driven by Playwright), fed by a replayed
recording through `wildpose web`'s WebSocket bridge; and the bridge's own guards."""

from __future__ import annotations

import asyncio
import configparser
import fnmatch
import os
import signal
import urllib.request
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest
from support import artifact_path, free_port

from wildpose.stream import overlay, schema, web

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture()
def browser_page():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package (make system-packages)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def bone_pixels(png: bytes) -> int:
    """How many pixels of a screenshot have a bone's colour (the grid and background are grey)."""
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    colours = np.array(overlay.BONE_COLOURS, np.int16)
    distance = np.abs(image.reshape(-1, 1, 3).astype(np.int16) - colours[None]).max(axis=-1).min(axis=-1)
    return int(np.sum(distance < 60))


def test_the_viewer_says_no_stream_is_arriving_then_shows_and_updates_a_replayed_one(
        browser_page, command, recorded_session):
    page, errors = browser_page
    endpoint, port = f"tcp://127.0.0.1:{free_port()}", free_port()
    server = command("web", "--endpoint", endpoint, "--port", str(port))
    server.wait_for_log(rf"viewer on http://127\.0\.0\.1:{port}/")
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('No stream arriving')")
    assert endpoint in page.inner_text("#status")

    replay = command("replay", str(recorded_session.path), "--publish", endpoint, "--loop", "--wait-subscribers", "1")
    card = 'section[data-stream="walker"]'
    page.wait_for_function(f"document.querySelectorAll('{card} circle.joint').length > 0", timeout=30000)
    people = int(page.get_attribute(card, "data-people"))
    assert people >= 1 and page.locator(f"{card} circle.joint").count() == 16 * people
    assert page.locator(f"{card} line.bone").count() == 14 * people
    updates = int(page.inner_text(f"{card} .updates"))
    page.wait_for_function(f"Number(document.querySelector('{card} .updates').textContent) > {updates}")
    page.wait_for_function(f"document.querySelector('{card} img.thumb').naturalWidth === 320")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Live: 1 stream(s)')")
    page.wait_for_function(f"!document.querySelector('{card} .stats').textContent.startsWith('waiting')")
    assert "fps: capture" in page.inner_text(f"{card} .stats")
    assert bone_pixels(page.locator(f"{card} canvas.skeleton3d").screenshot()) > 30  # the 3D skeleton
    assert bone_pixels(page.locator(f"{card} .view2d").screenshot()) > 200  # the 2D one over the thumbnail
    screenshot = artifact_path("viewer.png")
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")

    assert replay.stop(signal.SIGINT) == 0, replay.log
    page.wait_for_function("document.getElementById('status').textContent.startsWith('No stream arriving')",
                           timeout=10000)
    assert not errors, errors
    assert server.stop(signal.SIGINT) == 0, server.log


def test_a_frame_goes_to_the_page_as_json_with_base64_jpeg():
    jpeg, size = overlay.encode_thumbnail(np.zeros((90, 160, 3), np.uint8), 320)
    text = web.to_json("frame/cam", schema.pack(schema.frame("cam", 3, 10.0, (160, 90), size, jpeg)))
    assert '"kind": "frame"' in text and '"jpeg": "/9j/' in text  # base64 of FF D8 FF


def test_the_page_and_its_vendored_three_js_are_served_and_other_origins_are_refused(command):
    port = free_port()
    server = command("web", "--endpoint", f"tcp://127.0.0.1:{free_port()}", "--port", str(port))
    server.wait_for_log("viewer on http://")
    base = f"http://127.0.0.1:{port}"
    for path in ("/", "/static/viewer.js", "/static/three.module.js", "/static/three.core.js"):
        with urllib.request.urlopen(base + path) as response:
            assert response.status == 200 and response.read()

    async def connect(origin: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(f"{base}/ws", headers={"Origin": origin}) as socket:
                    hello = await socket.receive_json()
                    return 101 if hello["kind"] == "hello" else 0
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(connect(base)) == 101
    assert asyncio.run(connect("http://evil.example")) == 403
    assert server.stop(signal.SIGINT) == 0


def test_the_vendored_three_js_carries_its_licence_and_every_static_file_is_packaged():
    static = web.STATIC
    assert "The MIT License" in (static / "three.LICENSE").read_text()
    assert "SPDX-License-Identifier: MIT" in (static / "three.core.js").read_text()[:400]
    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    patterns = config["options.package_data"]["wildpose.stream"].split()
    files = [p.relative_to(static.parent).as_posix() for p in static.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pattern) and f.count("/") == pattern.count("/") for pattern in patterns)
                         for f in files), (files, patterns)
