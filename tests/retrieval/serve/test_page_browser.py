"""The search page end to end in real headless Chromium (Debian's ``chromium`` via playwright).

Starts the server on a free loopback port, types a query, waits for thumbnails, opens one,
asks for more like it, searches with a picked image, and checks a phone-size screen. The
screenshots are saved under the test's tmp dir (and into $XMR_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright-python (pip install playwright)"
)


def chromium_binary() -> str | None:
    """A Chromium executable: $XMR_CHROMIUM, Debian's real binary, or one on PATH."""
    for candidate in (
        os.environ.get("XMR_CHROMIUM"),
        "/usr/lib/chromium/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
        shutil.which("google-chrome"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


pytestmark = pytest.mark.skipif(
    chromium_binary() is None,
    reason="no Chromium binary found (apt-get install chromium, or set XMR_CHROMIUM=/path/to/chrome)",
)


@pytest.fixture(scope="module")
def server_url(shared_library, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    yield from _serve(shared_library, tmp_path_factory)


@pytest.fixture(scope="module")
def ocr_server_url(ocr_library, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN201
    yield from _serve(ocr_library, tmp_path_factory)


def _serve(library, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN001, ANN202
    import uvicorn

    from retrieval.serve import ServeConfig, create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = ServeConfig(port=port, cache_dir=tmp_path_factory.mktemp("page-thumbs"))
    server = uvicorn.Server(
        uvicorn.Config(create_app(library, config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_binary(), headless=True, args=["--no-sandbox"])
        yield instance
        instance.close()


def _save(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:  # noqa: ANN001
    """A screenshot; on an emulated phone take the viewport only (``full_page=False``): a
    full-page capture resizes the emulated screen, and touch media queries stop matching."""
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=full_page)
    if os.environ.get("XMR_SCREENSHOT_DIR"):
        Path(os.environ["XMR_SCREENSHOT_DIR"]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(target, Path(os.environ["XMR_SCREENSHOT_DIR"]) / name)
    return target


def _search_again(page, words: str) -> None:  # noqa: ANN001
    """Search ``words`` while results are shown, and wait until the new cards replaced the old
    (the old cards' loaded thumbnails would otherwise satisfy a wait at once)."""
    page.evaluate("document.querySelectorAll('.card').forEach(c => { c.dataset.old = '1'; })")
    page.fill("#q", words)
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('.card') && !document.querySelector('.card[data-old]')")


def _wait_for_thumbnails(page) -> list:  # noqa: ANN001
    page.wait_for_selector(".card img", timeout=20_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.card img')].every(i => i.complete && i.naturalWidth > 0)", timeout=20_000
    )
    return page.query_selector_all(".card")


def test_typing_a_query_shows_thumbnails_with_scores(browser, server_url: str, shared_library, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server_url + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('images')")
    assert page.is_disabled("#rerank")  # no reranker on this server: the toggle says so
    page.fill("#q", "an astronaut in a suit")
    page.press("#q", "Enter")
    cards = _wait_for_thumbnails(page)
    expected = [h.id for h in shared_library.search(text="an astronaut in a suit", k=len(cards))]
    assert [int(c.get_attribute("data-id")) for c in cards] == expected
    assert all(float(c.query_selector(".score").inner_text()) <= 1.0 for c in cards)
    shot = _save(page, tmp_path, "search.png")
    assert shot.stat().st_size > 10_000

    cards[0].click()  # the larger image, its metadata, and more like this
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("document.getElementById('viewer-image').naturalWidth > 0")
    page.wait_for_function("document.getElementById('viewer-meta').textContent.includes('×')")
    assert shared_library.catalog.images([expected[0]])[expected[0]].path in page.inner_text("#viewer-meta")
    _save(page, tmp_path, "viewer.png")
    page.click("#more-like")
    page.wait_for_function(
        f"document.querySelector('.card') && document.querySelector('.card').dataset.id === '{expected[0]}' && document.getElementById('status').textContent.includes('Results')"
    )
    assert page.is_visible("#query-image")
    assert errors == []


def test_picking_an_image_and_paging(browser, server_url: str, served_photos: Path, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url + "/")
    page.click("#options summary")
    page.fill("#k", "3")
    page.set_input_files("#file", str(next(served_photos.rglob("coffee.*"))))
    first = [c.get_attribute("data-id") for c in _wait_for_thumbnails(page)]
    assert len(first) == 3 and "Results 1–3" in page.inner_text("#status")
    page.click("#next")
    page.wait_for_function("document.getElementById('status').textContent.includes('Results 4')")
    second = [c.get_attribute("data-id") for c in _wait_for_thumbnails(page)]
    assert not set(first) & set(second)


def test_usable_on_a_phone_size_screen(browser, server_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page.goto(server_url + "/")
    page.fill("#q", "a cat")
    page.press("#q", "Enter")
    cards = _wait_for_thumbnails(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing spills sideways
    boxes = [c.bounding_box() for c in cards[:2]]
    assert boxes[0]["width"] >= 120 and boxes[0]["y"] == boxes[1]["y"]  # two thumbnails a row
    _save(page, tmp_path, "phone.png", full_page=False)


def _not_found(page) -> list[str]:  # noqa: ANN001
    """Collects the URLs the page asked for that answered 404."""
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    return missing


SCREENS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_pager_stays_hidden_on_the_start_page_and_after_an_error(
    browser, server_url: str, tmp_path: Path, screen: str
) -> None:  # noqa: ANN001
    page = browser.new_page(**SCREENS[screen])
    missing = _not_found(page)
    page.goto(server_url + "/")
    page.wait_for_function("document.getElementById('status').textContent.includes('images')")
    assert page.is_hidden("#pager") and page.is_hidden("#next")  # nothing to page through yet
    icon = page.evaluate("fetch('/favicon.ico').then(r => r.headers.get('content-type'))")
    assert icon == "image/x-icon"
    _save(page, tmp_path, f"start-{screen}.png", full_page=False)
    page.click("#options summary")
    page.fill("#k", "3")
    page.fill("#q", "a photo")
    page.press("#q", "Enter")
    _wait_for_thumbnails(page)
    assert page.is_visible("#next")
    page.route("**/api/search", lambda route: route.fulfill(status=422, body='{"detail": "the server said no"}'))
    page.click("#next")
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    assert page.is_hidden("#pager") and page.query_selector(".card") is None  # an error has no next page
    _save(page, tmp_path, f"error-{screen}.png", full_page=False)
    assert missing == []  # the favicon too


def test_a_filter_that_matches_nothing_is_named_on_the_page(browser, server_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(server_url + "/")
    page.click("#options summary")
    page.fill("#under", "/nonexistent")
    page.fill("#q", "a cat")
    page.press("#q", "Enter")
    page.wait_for_function("document.getElementById('status').textContent.includes('No results')")
    assert "no indexed image is under /nonexistent" in page.inner_text("#status")
    assert page.is_hidden("#pager")
    _save(page, tmp_path, "no-results.png")


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_thumbnails_show_their_name_until_they_load_first_screen_first(
    browser, server_url: str, tmp_path: Path, screen: str
) -> None:  # noqa: ANN001
    page = browser.new_page(**SCREENS[screen])
    page.route("**/thumbnail*", lambda route: route.abort())  # a thumbnail that has not arrived (yet)
    page.goto(server_url + "/")
    page.fill("#q", "a cat")
    page.press("#q", "Enter")
    page.wait_for_selector(".card")
    first = page.query_selector(".card")
    name = first.query_selector(".name").inner_text()
    assert (
        first.query_selector(".placeholder").is_visible() and first.query_selector(".placeholder").inner_text() == name
    )
    assert first.query_selector("img").get_attribute("loading") == "eager"
    _save(page, tmp_path, f"placeholders-{screen}.png", full_page=False)
    page.unroute("**/thumbnail*")
    _search_again(page, "a rocket")
    _wait_for_thumbnails(page)
    page.wait_for_function("[...document.querySelectorAll('.thumb')].every(t => t.classList.contains('loaded'))")
    assert not page.query_selector(".card .placeholder").is_visible()


def test_phone_header_scrolls_away_and_offers_a_photo_not_a_drop(browser, server_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    page = browser.new_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page.goto(server_url + "/")
    assert not page.is_visible("text=Drop an image here") and page.is_visible("text=Search by photo")
    page.click("#options summary")
    page.fill("#q", "a cat")
    page.press("#q", "Enter")
    _wait_for_thumbnails(page)
    _save(page, tmp_path, "phone-filters.png", full_page=False)
    header = page.evaluate("document.querySelector('header').getBoundingClientRect().height")
    page.evaluate("document.getElementById('results').scrollIntoView()")
    _save(page, tmp_path, "phone-results.png", full_page=False)
    top = page.evaluate("document.querySelector('header').getBoundingClientRect().bottom")
    assert top <= 0 or header < 0.25 * 844  # scrolled out of the way, or small: never a third of the screen
    assert page.evaluate("getComputedStyle(document.querySelector('header')).position") != "sticky"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.parametrize("screen", sorted(SCREENS))
def test_the_viewer_heads_its_texts(browser, server_url: str, tmp_path: Path, screen: str) -> None:  # noqa: ANN001
    page = browser.new_page(**SCREENS[screen])
    page.goto(server_url + "/")
    page.fill("#q", "a cat on a sofa")
    page.press("#q", "Enter")
    _wait_for_thumbnails(page)[0].click()
    page.wait_for_selector("#viewer-texts li")
    assert page.is_visible("#viewer-texts-title") and "Texts that describe it" in page.inner_text("#viewer-texts-title")
    _save(page, tmp_path, f"viewer-texts-{screen}.png", full_page=False)


def test_the_matched_words_box_is_drawn_on_the_preview(
    browser, ocr_server_url: str, ocr_library, tmp_path: Path
) -> None:  # noqa: ANN001
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(ocr_server_url + "/")
    page.fill("#q", "receipt 42.50")
    page.press("#q", "Enter")
    cards = _wait_for_thumbnails(page)
    assert "RECEIPT" in cards[0].query_selector(".match").inner_text().upper()
    cards[0].click()
    page.wait_for_selector("#viewer[open]")
    page.wait_for_function("document.getElementById('viewer-image').naturalWidth > 0")
    assert "ocr" in page.inner_text("#viewer-match")
    # The viewer's details and texts arrive after it opens and can reflow it: measure once they
    # are in, and both boxes in one evaluation (two round trips could straddle a reflow).
    page.wait_for_load_state("networkidle")
    image, box = page.evaluate(
        """() => ["viewer-image", "viewer-box-shape"].map((id) => {
            const r = document.getElementById(id).getBoundingClientRect();
            return {x: r.x, y: r.y, width: r.width, height: r.height};
        })"""
    )  # the polygon as drawn, in page pixels
    left, upper, right, lower = ocr_library.receipt_box
    assert abs((box["x"] - image["x"]) / image["width"] - left) < 0.05
    assert abs((box["x"] + box["width"] - image["x"]) / image["width"] - right) < 0.05
    assert abs((box["y"] - image["y"]) / image["height"] - upper) < 0.05
    _save(page, tmp_path, "viewer-ocr-box.png")
    page.click("#viewer .close")
    _search_again(page, "a rocket")
    _wait_for_thumbnails(page)
    page.query_selector_all(".card")[0].click()
    page.wait_for_selector("#viewer[open]")
    assert not page.is_visible("#viewer-box")  # no words matched: no box
    assert errors == []
