"""The search page with a video in headless Chromium: a badge with the moment's time, and the video
playing from that moment (the browser fetches it by byte ranges)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.videos import scikit_photos, write_slideshow

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright-python")
pytest.importorskip("av", reason="the video extra (PyAV) is not installed")

CHROMIUM = next(
    (
        c
        for c in (os.environ.get("XMR_CHROMIUM"), "/usr/lib/chromium/chromium", shutil.which("chromium"))
        if c and os.access(c, os.X_OK)
    ),
    None,
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary found (apt-get install chromium, or set XMR_CHROMIUM)"
)


@pytest.fixture
def video_page_url(tmp_path: Path, tiny_encoder):  # noqa: ANN001, ANN201
    import uvicorn

    from retrieval import Library
    from retrieval.serve import ServeConfig, create_app

    media = tmp_path / "media"
    media.mkdir()
    photos = list(scikit_photos().items())
    write_slideshow(media / "film.webm", photos[:3], (3.0, 3.0, 3.0), size=(128, 96))  # VP9: every Chromium plays it
    lib = Library.open(tmp_path / "library", model=tiny_encoder)
    lib.index([media])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(lib, ServeConfig(port=port, cache_dir=tmp_path / "thumbs"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", lib
    server.should_exit = True
    thread.join(timeout=10)
    lib.close()


def test_a_video_hit_plays_from_its_moment(video_page_url, tmp_path: Path) -> None:  # noqa: ANN001
    url, lib = video_page_url
    (hit,) = lib.search(text="a photo", k=1)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('status').textContent.includes('videos')")
        page.fill("#q", "a photo")
        page.press("#q", "Enter")
        page.wait_for_selector(".card .badge", timeout=20_000)
        assert page.inner_text(".card .badge") == f"▶ 0:00:{int(hit.start):02d}"  # type: ignore[arg-type]
        page.click(".card")
        page.wait_for_selector("#viewer[open]")
        assert page.is_visible("#viewer-video") and not page.is_visible("#viewer-image")
        page.wait_for_function("document.getElementById('viewer-video').readyState >= 1", timeout=20_000)
        assert page.evaluate("document.getElementById('viewer-video').currentSrc").endswith(f"/file#t={hit.start:g}")
        position = page.evaluate("document.getElementById('viewer-video').currentTime")
        assert abs(position - hit.start) < 1.0  # type: ignore[operator]
        page.screenshot(path=str(tmp_path / "video.png"))
        browser.close()
    assert errors == []
