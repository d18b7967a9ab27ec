"""Share as link, in Chromium: a shared result outlives its upload and a restart of the app.

The app runs with uploads that expire after `LIFETIME_S` and a share store in the test's folder. A person classifies
a photo, finds the faces in another with a face-mask model, and compares two models; each time they press the share
button and read the link from the clipboard. Once the uploads are gone (the photo's own address answers 404), each
link opened in a fresh browser shows the same answer and the photo, without running a model; so again after the app
is stopped and started on the same folders.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PIL import Image, ImageOps
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from beit_demo.catalog import get_entry
from tests.conftest import DATA, HUB, PHOTOS, RunningApp, running_app
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    MODEL_LOAD_MS,
    block,
    open_tab,
    save_screenshot,
    shown_image,
    thumbnail_distance,
    upload,
    visible_tab,
)

pytestmark = pytest.mark.browser

LIFETIME_S = 15  # uploads and results in Gradio's cache live this long here (3600 by default)
CLIPBOARD = ["clipboard-read", "clipboard-write"]
CAT = PHOTOS / "chelsea.jpg"  # uploaded mirrored: a file that is also an example of the page never expires
SCENE = DATA / "face-mask" / "scene_1.jpg"  # test data only: its copyright is unclear, never on the page
ASTRONAUT = PHOTOS / "astronaut.jpg"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def app_environment(folder: Path) -> dict[str, str]:
    return {
        "BEIT_DEMO_UPLOAD_LIFETIME_S": str(LIFETIME_S),
        "BEIT_DEMO_SHARE_DIR": str(folder / "shares"),
        "BEIT_DEMO_PRELOAD": "beit-in22k,facemask-beit,facemask-deit",
        "SPACE_ID": "someone/beit-demo",  # as on a Space: the link's preview names the screenshot in its repo
    }


def new_page(browser: Browser, contexts: list[BrowserContext], url: str) -> Page:
    context = browser.new_context(viewport=DESKTOP, permissions=CLIPBOARD)
    context.set_default_timeout(15_000)
    contexts.append(context)
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_role("tab", name="Classify")).to_be_visible()
    return page


def share(page: Page) -> str:
    """Press the visible tab's share button; the link from the clipboard (the same as the one shown)."""
    panel = visible_tab(page)
    panel.get_by_role("button", name=re.compile("share.*link", re.IGNORECASE)).click()
    shown = panel.locator(".share-link").get_by_role("textbox")
    expect(shown).to_have_value(re.compile(r"^http://.*[?&]share=[A-Za-z0-9_-]{22}"))
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == shown.input_value()
    return link


def photo_address(page: Page) -> str:
    """Where the page fetches the visible tab's photo from (Gradio's cache)."""
    return block(visible_tab(page), "Image").locator("img").first.get_attribute("src")


def top_label(scope) -> str:
    label = scope.get_by_test_id("label-output-value").first
    expect(label).to_be_visible(timeout=MODEL_LOAD_MS)
    return label.inner_text()


def overlay(panel, title: str):
    """The picture of where a Compare panel's model looked."""
    return block(panel, f"{title}: where it looked for its top-1").locator("img")


def on(app: RunningApp, link: str) -> str:
    """``link`` pointed at ``app`` (a restarted app listens on another port)."""
    parts = urlsplit(link)
    return f"{app.url.rstrip('/')}{parts.path}?{parts.query}"


def test_shared_links_restore_classify_faces_and_compare_after_the_uploads_expire_and_after_a_restart(
    browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
):
    environment = app_environment(tmp_path)
    cat = tmp_path / "cat.jpg"
    with Image.open(CAT) as photo:
        ImageOps.mirror(photo).save(cat, quality=90)
    contexts: list[BrowserContext] = []
    seen: dict[str, dict] = {}
    try:
        with running_app(tmp_path, **environment) as app:
            page = new_page(browser, contexts, app.url)
            panel = visible_tab(page)
            upload(panel, cat)
            panel.get_by_role("button", name="Classify", exact=True).click()
            seen["classify"] = {"top": top_label(panel), "link": share(page), "photo": photo_address(page)}

            page = new_page(browser, contexts, app.url + "?model=facemask-deit")
            panel = visible_tab(page)
            upload(panel, SCENE)
            panel.get_by_role("button", name="Find faces and classify").click()
            summary = panel.get_by_text(re.compile(r"^3 faces: "))
            expect(summary).to_be_visible(timeout=MODEL_LOAD_MS)
            seen["faces"] = {"summary": summary.inner_text(), "link": share(page)}

            page = new_page(browser, contexts, app.url)
            open_tab(page, "Compare")
            panel = visible_tab(page)
            upload(panel, ASTRONAUT)
            panel.get_by_role("button", name="Compare", exact=True).click()
            titles = [get_entry(key).title for key in ("facemask-beit", "facemask-deit")]
            tops = {title: top_label(block(panel, title)) for title in titles}
            expect(panel.get_by_text("working...")).to_have_count(0, timeout=MODEL_LOAD_MS)
            for title in titles:  # each model's overlay, made after the comparison, is shared too
                expect(overlay(panel, title)).to_be_visible(timeout=MODEL_LOAD_MS)
            seen["compare"] = {"tops": tops, "link": share(page)}

            deadline = time.monotonic() + 3 * LIFETIME_S + 30
            while (status := page.request.get(seen["classify"]["photo"]).status) == 200:
                assert time.monotonic() < deadline, f"the upload outlived its lifetime: {seen['classify']['photo']}"
                time.sleep(2)
            assert status in (403, 404)
            check_links(browser, contexts, app, seen, cat)
        # The same folders, a new process that loads no model ahead: opening the links runs none either.
        with running_app(tmp_path, **{**environment, "BEIT_DEMO_PRELOAD": ""}) as restarted:
            check_links(browser, contexts, restarted, seen, cat)
            page = contexts[-1].pages[0]
            open_tab(page, "Models")
            rows = visible_tab(page).get_by_role("row")
            expect(rows.filter(has_text="facemask-deit")).to_be_visible()
            expect(rows.filter(has_text="in memory")).to_have_count(0)
    finally:
        for context in contexts:
            for page in context.pages:
                save_screenshot(page, f"{request.node.name}-{contexts.index(context)}")
            context.close()


def check_links(
    browser: Browser, contexts: list[BrowserContext], app: RunningApp, seen: dict[str, dict], cat: Path
) -> None:
    """Each link, in a fresh browser, shows what was shared: the top-1 and the photo, the faces, the panels."""
    page = new_page(browser, contexts, on(app, seen["classify"]["link"]))
    preview = page.locator('meta[property="og:image"]').first  # the first one is the one previews take
    screenshot = f"{HUB.url}/spaces/someone/beit-demo/resolve/main/docs/screenshot.png"  # the app's Hub: the double
    expect(preview).to_have_attribute("content", screenshot)
    panel = visible_tab(page)
    assert top_label(panel) == seen["classify"]["top"]
    with Image.open(cat) as photo:
        assert thumbnail_distance(shown_image(page, block(panel, "Image").locator("img").first), photo) < 8
    expect(page.get_by_text("has expired")).to_have_count(0)
    assert share(page) == on(app, seen["classify"]["link"])  # shared on from here: the same link

    page = new_page(browser, contexts, on(app, seen["faces"]["link"]))
    panel = visible_tab(page)
    expect(panel.get_by_text(seen["faces"]["summary"], exact=True)).to_be_visible()
    faces = block(panel, "Faces")
    expect(faces.locator("img")).to_have_count(4)  # the photo and a box per face
    with Image.open(SCENE) as photo:
        assert thumbnail_distance(shown_image(page, faces.locator("img").first), photo) < 8
    expect(panel.get_by_role("row").filter(has_text="[")).to_have_count(3)

    page = new_page(browser, contexts, on(app, seen["compare"]["link"]))
    expect(page.get_by_role("tab", name="Compare", selected=True)).to_be_visible()
    panel = visible_tab(page)
    for title, top in seen["compare"]["tops"].items():
        assert top_label(block(panel, title)) == top
        expect(overlay(panel, title)).to_be_visible()
    with Image.open(ASTRONAUT) as photo:
        assert thumbnail_distance(shown_image(page, block(panel, "Image").locator("img").first), photo) < 8
