"""The real app (``python app.py`` against the Hub double) driven by a person's hands: headless Chromium.

One app process and one browser serve the whole module; each test opens its own browser context and leaves a
screenshot in ``artifacts/<test name>.png`` (also when it fails). The tests share the app's models in memory,
so a test that watches a download uses a model that no earlier test in this file has loaded.

``BEIT_DEMO_UPDATE_SCREENSHOT=1 python -m pytest tests/test_browser.py`` rewrites the README's screenshot,
``docs/screenshot.png``; other runs leave the committed one alone, so CI does not dirty the tree.
"""

from __future__ import annotations

import io
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from beit_demo.catalog import CATALOG, get_entry
from beit_demo.testing.checkpoints import FASHION_MNIST_LABELS
from tests.conftest import DATA, HUB, PHOTOS, REPO_ROOT, RunningApp, running_app
from tests.image_corpus import build_corpus

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # Chromium's sandbox refuses to start as root, as in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "artifacts"
README_SCREENSHOT = REPO_ROOT / "docs" / "screenshot.png"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
EXAMPLES = REPO_ROOT / "examples"
MODEL_LOAD_MS = 60_000  # a first classification downloads and loads the model; the rest take well under a second
WEBCAM_PHOTO = PHOTOS / "chelsea.jpg"
FACE_MASK_LABELS = {"Mask", "No Mask"}
FASHION_LABELS = set(FASHION_MNIST_LABELS)
WEIGHT_SOURCES = re.compile(r"model already in memory|downloaded from the Hub|loaded from the local cache")


def write_webcam_video(photo: Path, path: Path, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Write ``photo``, cropped to ``size``, as a one-frame Y4M video for Chromium's fake camera; return the frame.

    Y4M is a header line, then per frame ``FRAME`` and the raw Y, Cb and Cr planes, the two chroma planes at half
    the width and height (4:2:0). Pillow's YCbCr conversion gives the planes.
    """
    with Image.open(photo) as opened:
        frame = ImageOps.fit(ImageOps.exif_transpose(opened).convert("RGB"), size)
    luma, blue, red = frame.convert("YCbCr").split()
    half = (size[0] // 2, size[1] // 2)
    header = b"YUV4MPEG2 W%d H%d F30:1 Ip A1:1 C420jpeg\n" % size
    planes = luma.tobytes() + blue.resize(half).tobytes() + red.resize(half).tobytes()
    path.write_bytes(header + b"FRAME\n" + planes)
    return frame


def thumbnail_distance(first: Image.Image, second: Image.Image, side: int = 16) -> float:
    """Mean absolute difference (0-255) of small grey thumbnails: a few units when both show the same scene."""
    small = [image.convert("L").resize((side, side), Image.Resampling.BOX) for image in (first, second)]
    return ImageStat.Stat(ImageChops.difference(*small)).mean[0]


# -- fixtures ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webcam_frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Image.Image]:
    """A Y4M video made at run time from a real photo (not committed), and the frame it shows."""
    path = tmp_path_factory.mktemp("webcam") / "frame.y4m"
    return path, write_webcam_video(WEBCAM_PHOTO, path)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """One `python app.py` for the module, with its own empty Hub cache and the session's Hub double."""
    with running_app(tmp_path_factory.mktemp("browser-app")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(webcam_frame: tuple[Path, Image.Image]) -> Iterator[Browser]:
    """Debian's Chromium (never a browser downloaded by Playwright), with a fake camera showing the webcam frame."""
    video, _ = webcam_frame
    camera = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *camera])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_page(browser: Browser, app: RunningApp, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """``open_page(query="", **context_options)`` opens the app in a fresh context; teardown saves a screenshot."""
    contexts = []

    def _open(query: str = "", **context_options: object) -> Page:
        context = browser.new_context(**{"viewport": DESKTOP, **context_options})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto(app.url + query)
        expect(page.get_by_role("tab", name="Classify")).to_be_visible()
        return page

    try:
        yield _open
    finally:
        for context in contexts:
            for page in context.pages:
                save_screenshot(page, request.node.name)
            context.close()


# -- helpers ----------------------------------------------------------------------------------------------------


def visible_tab(page: Page) -> Locator:
    """The tab panel a person is looking at (Gradio keeps the other tabs in the page, hidden)."""
    return page.get_by_role("tabpanel")


def open_tab(page: Page, name: str) -> None:
    """Open a tab as a person does: its button, or on a narrow screen the "More tabs" menu when it is there."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.is_visible():
        tab.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown").get_by_role("button", name=name, exact=True).click()


def upload(scope: Locator, path: Path) -> None:
    """Choose a file in the image input of ``scope``, as a person does with the file picker."""
    scope.get_by_test_id("image").locator("input[data-testid=file-upload]").first.set_input_files(path)
    expect(scope.get_by_label("Remove Image")).to_be_visible()


def block(scope: Locator, label: str) -> Locator:
    """The component whose caption reads ``label`` (the innermost block, when blocks are nested)."""
    caption = scope.page.get_by_test_id("block-label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    return scope.locator(".block").filter(has=caption).last


def prediction_rows(scope: Locator) -> Locator:
    return scope.locator("[data-testid$='-confidence-set']")


def classify_the_whole_photo(panel: Locator) -> None:
    """Untick "Find faces first" (on by default for the face-mask models), so Classify runs on the whole photo."""
    panel.get_by_label("Find faces first").uncheck()
    expect(panel.get_by_role("button", name="Classify", exact=True)).to_be_visible()


def pick_models_to_compare(panel: Locator, names: list[str]) -> None:
    """Add catalog titles (picked from the list) or typed Hub ids (typed, then Enter) to "Models to compare"."""
    picker = panel.get_by_label("Models to compare")
    titles = {entry.title for entry in CATALOG}
    for name in names:
        chosen = panel.locator(".token").filter(has_text=re.compile(rf"^\s*{re.escape(name)}\s*$"))
        if chosen.count():
            continue
        picker.click()
        if name in titles:
            panel.page.get_by_role("option", name=name, exact=True).click()
        else:
            picker.fill(name)
            picker.press("Enter")
        expect(chosen).to_have_count(1)
    picker.press("Escape")


def row_label(row: Locator) -> str:
    """The class name of one prediction row (its text is the name, then the percentage)."""
    return row.inner_text().splitlines()[0].strip()


def shown_image(page: Page, image: Locator) -> Image.Image:
    """Fetch the picture an ``<img>`` shows, as the browser got it from the app."""
    expect(image).to_be_visible()
    response = page.request.get(image.get_attribute("src"))
    assert response.ok, response.status
    return Image.open(io.BytesIO(response.body())).convert("RGB")


def model_view(page: Page, panel: Locator) -> Image.Image:
    """Open "What the model sees" and return the image it shows."""
    panel.get_by_text("What the model sees").click()
    return shown_image(page, block(panel, "The exact input after resizing and cropping").locator("img"))


def classify(panel: Locator) -> Locator:
    """Click Classify and wait for the top label; return it."""
    panel.get_by_role("button", name="Classify", exact=True).click()
    top_label = panel.get_by_test_id("label-output-value")
    expect(top_label).to_be_visible(timeout=MODEL_LOAD_MS)
    return top_label


def sideways_overflow(page: Page) -> list[str]:
    """Visible controls that stick out of the viewport sideways, outside any container meant to scroll sideways."""
    return page.evaluate(
        """() => {
            const width = document.documentElement.clientWidth;
            const inSideScroller = (element) => {
                for (let node = element.parentElement; node; node = node.parentElement) {
                    const overflow = getComputedStyle(node).overflowX;
                    if ((overflow === "auto" || overflow === "scroll") && node.scrollWidth > node.clientWidth) {
                        return true;
                    }
                }
                return false;
            };
            const controls = "button, input, textarea, select, a, [role=tab], [role=checkbox], [role=listbox]";
            return [...document.querySelectorAll(controls)]
                .filter((element) => element.getClientRects().length > 0)
                // Gradio measures the tab bar with a copy of its buttons in a visually hidden box: never seen
                .filter((element) => !element.closest(".visually-hidden"))
                .filter((element) => {
                    const box = element.getBoundingClientRect();
                    return box.width > 0 && (box.left < -0.5 || box.right > width + 0.5);
                })
                .filter((element) => !inSideScroller(element))
                .map((element) => element.outerHTML.slice(0, 160));
        }"""
    )


def save_screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like now as ``artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


def page_scroll_width(page: Page) -> tuple[int, int]:
    """(scrollable width, visible width) of the page: equal when there is nothing to scroll to sideways."""
    return tuple(page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"))


# -- tests ------------------------------------------------------------------------------------------------------


def test_upload_a_photo_and_classify_shows_the_top_label_k_rows_and_what_the_model_sees(open_page):
    spec = get_entry("beit-in22k")  # the model a visitor gets without choosing
    page = open_page()
    panel = visible_tab(page)
    upload(panel, PHOTOS / "chelsea.jpg")
    top_k = panel.get_by_label("number input for Top-k predictions")
    top_k.fill("7")
    top_k.press("Enter")

    top_label = classify(panel)

    rows = prediction_rows(panel)
    expect(rows).to_have_count(7)
    labels = [row_label(row) for row in rows.all()]
    assert top_label.inner_text() == labels[0]
    assert all(re.fullmatch(r"label \d+", label) for label in labels), labels  # the test checkpoint's class names
    expect(panel.get_by_text(re.compile(rf"{re.escape(spec.title)}.*\d+ ms.*downloaded from the Hub"))).to_be_visible()
    seen = model_view(page, panel)
    assert seen.size == (224, 224)
    with Image.open(PHOTOS / "chelsea.jpg") as photo:  # this model resizes to 224 x 224 without cropping
        squashed = photo.convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    assert thumbnail_distance(seen, squashed) < 4  # about 0.3 measured; a cropped view: over 20


def test_webcam_capture_then_classify_sees_the_camera_frame(open_page, webcam_frame):
    _, frame = webcam_frame
    spec = get_entry("facemask-beit")
    page = open_page(f"?model={spec.key}", permissions=["camera"])  # a shared link opens the model it names
    panel = visible_tab(page)
    expect(panel.get_by_role("heading", name=spec.title)).to_be_visible()

    panel.get_by_label("Capture from camera").click()
    panel.get_by_text("Click to Access Webcam").click()
    # Capturing before the stream has a frame would send an empty picture.
    page.wait_for_function("() => [...document.querySelectorAll('video')].some((video) => video.readyState >= 2)")
    panel.get_by_label("capture photo").click()
    expect(panel.get_by_label("Remove Image")).to_be_visible()  # the capture is uploaded
    classify_the_whole_photo(panel)
    top_label = classify(panel)

    expect(prediction_rows(panel)).to_have_count(2)
    assert top_label.inner_text() in FACE_MASK_LABELS
    seen = model_view(page, panel)
    expected = frame.resize((224, 224), Image.Resampling.BICUBIC)
    # Gradio may mirror the capture, as a selfie preview is; either way it is the camera's picture.
    distance = min(thumbnail_distance(seen, expected), thumbnail_distance(seen, ImageOps.mirror(expected)))
    assert distance < 8, distance  # about 3 measured (the camera's colour conversion); another picture: over 20


def test_switching_the_model_changes_the_card_the_examples_and_the_results(open_page):
    before, after = get_entry("beit-in22k"), get_entry("fashion-mnist")
    page = open_page()
    panel = visible_tab(page)
    upload(panel, PHOTOS / "coffee.jpg")
    top_label = classify(panel)
    assert re.fullmatch(r"label \d+", top_label.inner_text())
    expect(panel.get_by_role("heading", name=before.title)).to_be_visible()

    panel.get_by_label("Model").click()
    page.get_by_role("option", name=after.title).click()

    expect(panel.get_by_role("heading", name=after.title)).to_be_visible()
    expect(panel.get_by_text(after.expected_input)).to_be_visible()
    expect(panel.get_by_role("heading", name=before.title)).to_have_count(0)
    expect(top_label).to_have_count(0)  # the old model's answer is gone
    examples_block = panel.locator(".block").filter(has=page.get_by_text("Examples (click one)", exact=True))
    examples = examples_block.last.get_by_role("button")
    expect(examples).to_have_count(len(after.examples))

    examples.first.click()  # an example fills the image and classifies it with the new model

    expect(top_label).to_be_visible(timeout=MODEL_LOAD_MS)
    assert top_label.inner_text() in FASHION_LABELS
    expect(prediction_rows(panel)).to_have_count(5)
    expect(panel.get_by_text(re.compile(rf"{re.escape(after.title)}.*\d+ ms"))).to_be_visible()


def test_a_bad_file_shows_an_error_and_the_next_good_upload_still_works(open_page, tmp_path):
    cases = {case.name: case for case in build_corpus(tmp_path / "corpus")}
    page = open_page("?model=facemask-beit")
    panel = visible_tab(page)
    classify_the_whole_photo(panel)

    for name in ("text", "truncated_jpeg"):
        upload(panel, cases[name].path)
        panel.get_by_role("button", name="Classify", exact=True).click()
        expect(page.get_by_text(cases[name].message_contains).first).to_be_visible(timeout=MODEL_LOAD_MS)
        expect(prediction_rows(panel)).to_have_count(0)
        panel.get_by_label("Remove Image").click()

    upload(panel, PHOTOS / "astronaut.jpg")
    top_label = classify(panel)

    assert top_label.inner_text() in FACE_MASK_LABELS
    expect(prediction_rows(panel)).to_have_count(2)


def test_compare_runs_every_ticked_model_and_fills_each_panel_as_it_is_ready(open_page):
    chosen = [get_entry(key) for key in ("facemask-beit", "facemask-deit", "fashion-mnist")]
    downloading = get_entry("facemask-deit")  # loaded by no earlier test in this file
    page = open_page()
    page.get_by_role("tab", name="Compare", exact=True).click()
    panel = visible_tab(page)
    upload(panel, PHOTOS / "astronaut.jpg")
    pick_models_to_compare(panel, [spec.title for spec in chosen])
    HUB.throttle_bytes_per_s = 100_000  # about 2 s for the face-mask DeiT files: long enough to watch
    try:
        panel.get_by_role("button", name="Compare", exact=True).click()
        # While one model downloads, its progress shows and the models already finished have their row.
        expect(page.get_by_text(f"Downloading {downloading.title}").first).to_be_visible(timeout=MODEL_LOAD_MS)
        expect(panel.get_by_role("row").filter(has_text=downloading.title).first).to_contain_text("working...")
        expect(panel.get_by_role("row").filter(has_text=re.compile(r"\d+ ms")).first).to_be_visible()
        expect(panel.get_by_text("working...")).to_have_count(0, timeout=MODEL_LOAD_MS)
    finally:
        HUB.throttle_bytes_per_s = None

    panels = panel.get_by_test_id("label").filter(visible=True)
    expect(panels).to_have_count(len(chosen))
    for spec in chosen:
        result = block(panel, spec.title)
        expect(result.get_by_test_id("label-output-value")).to_be_visible()
        expect(prediction_rows(result)).to_have_count(2 if spec.label_space == "face-mask" else 3)
        summary_row = panel.get_by_role("row").filter(has_text=spec.title).first  # the summary table comes first
        expect(summary_row).to_contain_text(re.compile(r"\d+ ms"))
        expect(summary_row).to_contain_text(WEIGHT_SOURCES)
    expect(panel.get_by_role("row").filter(has_text=downloading.title).first).to_contain_text(
        "downloaded from the Hub"
    )
    face_mask_tops = {
        block(panel, spec.title).get_by_test_id("label-output-value").inner_text()
        for spec in chosen
        if spec.label_space == "face-mask"
    }
    # The photo shows one face: the face models judge that face, each panel showing the share of faces per label.
    agreed = 1 if len(face_mask_tops) == 1 else 0
    expect(panel.get_by_text(f"The face models agree on {agreed} of 1 face.")).to_be_visible()
    expect(block(panel, get_entry("beit-in22k").title)).to_be_hidden()  # not ticked, no panel


def test_models_tab_shows_where_each_model_is_and_loads_one_ahead_of_use(open_page):
    spec = get_entry("beit-in1k-timm")  # loaded by no earlier test in this file
    page = open_page()
    page.get_by_role("tab", name="Models", exact=True).click()
    panel = visible_tab(page)
    expect(panel.get_by_text(re.compile(r"Up to \d+ models stay in memory"))).to_be_visible()
    table_row = panel.get_by_role("row").filter(has_text=spec.key)
    expect(table_row).to_contain_text("not downloaded")

    panel.get_by_label("Model").click()
    page.get_by_role("option", name=spec.title).click()
    HUB.throttle_bytes_per_s = 100_000  # about 3.5 s: the table (refreshed every 2 s) catches the download
    try:
        panel.get_by_role("button", name="Download and load now").click()
        expect(table_row).to_contain_text(re.compile(r"downloading / loading \d+%"), timeout=MODEL_LOAD_MS)
        expect(panel.get_by_text(f"{spec.title} is ready")).to_be_visible(timeout=MODEL_LOAD_MS)
    finally:
        HUB.throttle_bytes_per_s = None
    expect(table_row).to_contain_text("in memory")
    expect(table_row).to_contain_text(re.compile(r"\d+\.\d MB"))


def test_a_phone_sized_screen_has_no_sideways_scrolling_and_every_control_in_reach(open_page):
    page = open_page("?model=facemask-beit", viewport=PHONE, is_mobile=True, has_touch=True)
    panel = visible_tab(page)
    upload(panel, PHOTOS / "astronaut.jpg")
    panel.get_by_role("button", name="Find faces and classify").click()
    summary = panel.get_by_text(re.compile(r"^1 face: "))
    expect(summary).to_be_visible(timeout=MODEL_LOAD_MS)
    summary.scroll_into_view_if_needed()
    expect(block(panel, "Faces").locator("img")).to_have_count(2)  # the photo and the box on its one face
    save_screenshot(page, "phone-classify")
    assert page_scroll_width(page) == (PHONE["width"], PHONE["width"])
    assert sideways_overflow(page) == []

    page.get_by_role("tab", name="Compare", exact=True).click()
    panel = visible_tab(page)
    upload(panel, PHOTOS / "astronaut.jpg")
    panel.get_by_role("button", name="Compare", exact=True).click()
    expect(panel.get_by_test_id("label-output-value").filter(visible=True)).to_have_count(2, timeout=MODEL_LOAD_MS)
    save_screenshot(page, "phone-compare")
    assert page_scroll_width(page) == (PHONE["width"], PHONE["width"])
    assert sideways_overflow(page) == []

    open_tab(page, "Models")  # on a phone, the tabs that do not fit are under "More tabs"
    panel = visible_tab(page)
    expect(panel.get_by_role("button", name="Download and load now")).to_be_visible()
    assert page_scroll_width(page) == (PHONE["width"], PHONE["width"])
    assert sideways_overflow(page) == []


def test_readme_screenshot_is_the_real_page_after_a_real_classification(open_page):
    spec = get_entry("facemask-deit")
    page = open_page(f"?model={spec.key}")
    panel = visible_tab(page)
    upload(panel, PHOTOS / "astronaut.jpg")  # public domain, unlike the face-mask photos (see their CREDITS.md)
    classify_the_whole_photo(panel)
    top_label = classify(panel)
    assert top_label.inner_text() in FACE_MASK_LABELS
    seen = model_view(page, panel)
    with Image.open(PHOTOS / "astronaut.jpg") as photo:  # DeiT: resized to 256 x 256, then the centre 224 x 224
        cropped = photo.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC).crop((16, 16, 240, 240))
    assert thumbnail_distance(seen, cropped) < 4  # about 0.3 measured; the uncropped photo: over 20
    page.mouse.move(0, 0)  # no hover effects in the picture

    save_screenshot(page, "readme-screenshot")
    if os.environ.get("BEIT_DEMO_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=README_SCREENSHOT, full_page=True)
    assert README_SCREENSHOT.is_file(), "make it with: BEIT_DEMO_UPDATE_SCREENSHOT=1 pytest tests/test_browser.py"
    with Image.open(README_SCREENSHOT) as committed:
        assert committed.format == "PNG" and committed.width == DESKTOP["width"]


def test_a_face_model_finds_each_face_and_draws_a_labelled_box_on_it(open_page):
    page = open_page("?model=facemask-beit")
    panel = visible_tab(page)
    expect(panel.get_by_label("Find faces first")).to_be_checked()
    expect(panel.get_by_role("button", name="Classify", exact=True)).to_be_hidden()
    upload(panel, DATA / "face-mask" / "scene_1.jpg")  # test data only: its copyright is unclear, never on the page
    panel.get_by_role("button", name="Find faces and classify").click()

    expect(panel.get_by_text(re.compile(r"^3 faces: "))).to_be_visible(timeout=MODEL_LOAD_MS)
    faces = block(panel, "Faces")
    # The photo, then one box per face, each drawn over it as a mask image of the photo's size.
    expect(faces.locator("img")).to_have_count(4)
    boxes = [shown_image(page, image) for image in faces.locator("img").all()[1:]]
    assert all(box.size == (824, 431) for box in boxes)
    legend = {button.inner_text().strip() for button in faces.get_by_role("button").all()} & FACE_MASK_LABELS
    assert legend and legend <= FACE_MASK_LABELS
    expect(panel.get_by_role("row").filter(has_text="[")).to_have_count(3)  # the per-face table, boxes as [x0, ...]
    expect(prediction_rows(panel)).to_have_count(0)  # the whole-photo answer is not shown

    classify_the_whole_photo(panel)  # and back: the plain path on the same photo
    top_label = classify(panel)
    assert top_label.inner_text() in FACE_MASK_LABELS


def test_the_fashion_model_adapts_a_product_photo_and_the_toggle_turns_it_off(open_page):
    spec = get_entry("fashion-mnist")
    page = open_page(f"?model={spec.key}")
    panel = visible_tab(page)
    adapt = panel.get_by_label("Adapt the photo to the model's training style")
    expect(adapt).to_be_checked()
    expect(panel.get_by_label("Find faces first")).to_be_hidden()
    upload(panel, REPO_ROOT / "examples" / "fashion_product_sneaker.jpg")  # a dark sneaker on a light backdrop
    classify(panel)
    expect(panel.get_by_text(re.compile(r"photo adapted to the Fashion-MNIST look"))).to_be_visible()
    adapted_view = model_view(page, panel)
    # The model sees a light garment on black: the view's border is black, its centre is not.
    assert ImageStat.Stat(adapted_view.convert("L").crop((0, 0, 224, 8))).mean[0] < 5

    view_image = block(panel, "The exact input after resizing and cropping").locator("img")
    adapted_src = view_image.get_attribute("src")
    adapt.uncheck()
    top_label = classify(panel)  # the button in view now classifies the photo as it is
    expect(view_image).not_to_have_attribute("src", adapted_src)  # the new answer has arrived
    assert top_label.inner_text() in FASHION_LABELS
    expect(panel.get_by_text(re.compile(rf"{re.escape(spec.title)}.*\d+ ms"))).not_to_contain_text("adapted")
    as_is_view = shown_image(page, view_image)
    assert ImageStat.Stat(as_is_view.convert("L").crop((0, 0, 224, 8))).mean[0] > 200  # the light backdrop


def test_explain_shows_where_the_model_looked_over_the_photo(open_page):
    page = open_page("?model=beit-in1k-timm")
    panel = visible_tab(page)
    upload(panel, PHOTOS / "chelsea.jpg")
    top_label = classify(panel)
    panel.get_by_text("Explain: where did the model look?").click()
    panel.get_by_role("button", name="Explain", exact=True).click()
    expect(panel.get_by_label("Class explained")).to_have_value(top_label.inner_text(), timeout=MODEL_LOAD_MS)
    slider = block(panel, "Photo | where the model looked")
    expect(slider.locator("img")).to_have_count(2)
    photo, overlay = (shown_image(page, image) for image in slider.locator("img").all())
    assert photo.size == overlay.size == (451, 300)
    assert thumbnail_distance(photo, overlay) > 3  # the overlay is drawn over the photo, not the photo again


def test_explain_each_face_draws_each_face_s_map_on_its_crop_only(open_page):
    page = open_page("?model=facemask-deit")
    panel = visible_tab(page)
    upload(panel, DATA / "face-mask" / "scene_1.jpg")  # test data only: its copyright is unclear, never on the page
    panel.get_by_role("button", name="Find faces and classify").click()
    expect(panel.get_by_text(re.compile(r"^3 faces: "))).to_be_visible(timeout=MODEL_LOAD_MS)
    panel.get_by_text("Explain: where did the model look on each face?").click()
    panel.get_by_role("button", name="Explain each face").click()
    explained = panel.get_by_label("Explained", exact=True)
    expect(explained).to_have_value(re.compile(r"^3 faces, each for its own label: "), timeout=MODEL_LOAD_MS)
    slider = block(panel, "Photo | where the model looked")
    expect(slider.locator("img")).to_have_count(2)
    photo, overlay = (shown_image(page, image).convert("RGB") for image in slider.locator("img").all())
    assert photo.size == overlay.size == (824, 431)
    # The top-left corner is far from every face: the photo shows through there; over the faces it does not.
    corner = (0, 0, 60, 60)
    assert thumbnail_distance(photo.crop(corner), overlay.crop(corner)) < 3
    assert thumbnail_distance(photo, overlay) > 3


def test_type_a_hub_id_classify_with_it_then_compare_it_with_a_catalog_model(open_page):
    from beit_demo.testing import hub_models

    typed = "tests-browser/tiny-vit"
    HUB.add_repo(typed, hub_models.family_files("vit"))
    labels = set(hub_models.FAMILY_LABELS["vit"])
    page = open_page()
    panel = visible_tab(page)
    picker = panel.get_by_label("Model", exact=True)
    picker.click()
    picker.fill(typed)
    picker.press("Enter")
    expect(panel.get_by_role("heading", name=typed)).to_be_visible(timeout=MODEL_LOAD_MS)
    expect(panel.get_by_text("Not from our catalog")).to_be_visible()
    upload(panel, PHOTOS / "coffee.jpg")
    assert classify(panel).inner_text() in labels
    expect(prediction_rows(panel)).to_have_count(3)  # top-5 of a 3-class model

    page.get_by_role("tab", name="Compare", exact=True).click()
    compare = visible_tab(page)
    upload(compare, PHOTOS / "coffee.jpg")
    pick_models_to_compare(compare, [get_entry("beit-in22k").title, typed])
    compare.get_by_role("button", name="Compare", exact=True).click()
    typed_panel = block(compare, f"{typed} (from the Hub)")
    expect(typed_panel.get_by_test_id("label-output-value")).to_be_visible(timeout=MODEL_LOAD_MS)
    assert typed_panel.get_by_test_id("label-output-value").inner_text() in labels
    expect(block(compare, get_entry("beit-in22k").title).get_by_test_id("label-output-value")).to_be_visible()
    expect(compare.get_by_role("row").filter(has_text=typed).first).to_contain_text(re.compile(r"\d+ ms"))

    shared = open_page(f"?model={typed}")  # a shared link opens the typed model, card and all
    expect(visible_tab(shared).get_by_role("heading", name=typed)).to_be_visible(timeout=MODEL_LOAD_MS)
    hostile = open_page("?model=../../etc/passwd")  # not a Hub id: the default model, and no error
    expect(visible_tab(hostile).get_by_role("heading", name=get_entry("beit-in22k").title)).to_be_visible()


def test_the_batch_tab_fills_a_row_per_file_and_offers_the_csv(open_page, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:2000])
    files = [PHOTOS / "coffee.jpg", PHOTOS / "horse.jpg", PHOTOS / "rocket.jpg", broken]
    page = open_page()
    page.get_by_role("tab", name="Batch").click()
    panel = visible_tab(page)
    panel.locator("input[type=file]").first.set_input_files(files)
    expect(panel.get_by_role("row").filter(has_text="rocket")).to_have_count(1)  # the uploads are listed
    panel.get_by_role("button", name="Classify all").click()
    expect(panel.get_by_text(re.compile(r"4 of 4 images done \(1 failed\)"))).to_be_visible(timeout=MODEL_LOAD_MS)
    # A row per file in the results (the upload list above has one too: its rows say "Remove this file").
    uploads = page.get_by_role("button", name="Remove this file")
    results = panel.get_by_role("row").filter(has_not=uploads).filter(has_text=re.compile(r"\.jpg"))
    expect(results).to_have_count(len(files))
    for path in files:
        expect(results.filter(has_text=path.name)).to_have_count(1)
    expect(results.filter(has_text="broken.jpg")).to_contain_text("damaged or incomplete")
    expect(results.filter(has_text="coffee.jpg")).to_contain_text(re.compile(r"\d+\.\d%"))
    download = block(panel, "Results as CSV")
    expect(download.get_by_role("row", name=re.compile(r"classified\.csv"))).to_be_visible()
    link = download.get_by_role("link").first
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    lines = response.text().splitlines()
    assert lines[0] == "path,label,probability,top_k,error"
    assert sorted(line.split(",")[0] for line in lines[1:]) == sorted(path.name for path in files)


def test_the_evaluate_tab_reads_a_zip_of_class_folders_and_shows_the_figures_and_the_report(open_page, tmp_path):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as written:
        for folder, photo in (("Mask", "astronaut_face_mask.jpg"), ("No Mask", "astronaut_face.jpg")):
            for number in range(3):
                written.writestr(f"{folder}/{number}.jpg", (EXAMPLES / photo).read_bytes())
    page = open_page()
    page.get_by_role("tab", name="Evaluate").click()
    panel = visible_tab(page)
    panel.locator("input[type=file]").first.set_input_files(archive)
    expect(panel.get_by_role("row").filter(has_text="No Mask")).to_have_count(1)  # the mapping table's folders
    panel.get_by_role("button", name="Evaluate", exact=True).click()
    expect(panel.get_by_text(re.compile(r"6 images\s+in 2 folders"))).to_be_visible(timeout=2 * MODEL_LOAD_MS)
    for key in ("facemask-beit", "facemask-deit"):  # a row of figures each: accuracy, its interval, ...
        expect(panel.get_by_role("row").filter(has_text=key)).to_contain_text(re.compile(r"0\.\d{3}-\d\.\d{3}"))
    expect(block(panel, "Confusion matrices").locator("img")).to_have_count(2)
    expect(block(panel, "Reliability diagram").locator("img")).to_be_visible()
    downloads = block(panel, "The report (JSON) and the rows (CSV)")
    link = downloads.get_by_role("row", name=re.compile(r"report\.json")).get_by_role("link")
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    report = response.json()
    assert report["images"] == 6 and set(report["models"]) == {"facemask-beit", "facemask-deit"}
    assert report["classes"] == ["Mask", "No Mask"]


def write_pan_video(path: Path) -> None:
    """A Y4M video of a slow pan over a face-mask scene (three faces), back and forth, 10 frames a second."""
    from tests.test_live import SCENE, frame_of

    scene = Image.open(SCENE).convert("RGB")
    shifts = [*range(-20, 21, 2), *range(20, -21, -2)]
    with path.open("wb") as video:
        video.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for shift in shifts:
            luma, blue, red = frame_of(scene, shift).convert("YCbCr").split()
            video.write(
                b"FRAME\n" + luma.tobytes() + blue.resize((320, 240)).tobytes() + red.resize((320, 240)).tobytes()
            )


def test_the_live_tab_answers_a_panning_camera_several_times_a_second_and_counts_the_faces(
    app, browser, tmp_path, request
):
    video = tmp_path / "pan.y4m"
    write_pan_video(video)
    camera = ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    # A Chromium of its own: its fake camera plays the pan (the module's plays a still photo).
    panning = browser.browser_type.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *camera])
    try:
        page = panning.new_context(viewport=DESKTOP, permissions=["camera"]).new_page()
        page.goto(app.url)
        page.get_by_role("tab", name="Live").click()
        panel = visible_tab(page)
        panel.get_by_text("Click to Access Webcam").click()
        expect(panel.locator("video")).to_be_visible()
        panel.get_by_role("button", name="capture photo").click()  # the record button starts the stream
        answered = block(panel, "Live: the faces and what the model says").locator("img")
        expect(answered).to_be_visible(timeout=MODEL_LOAD_MS)
        expect(panel.get_by_text(re.compile(r"^3 faces: "))).to_be_visible(timeout=MODEL_LOAD_MS)
        sources, started = set(), time.monotonic()
        while time.monotonic() - started < 3:
            sources.add(answered.get_attribute("src"))
            page.wait_for_timeout(40)
        save_screenshot(page, request.node.name)
    finally:
        panning.close()
    assert len(sources) / 3 >= 3, len(sources)  # new frames, several a second (tiny models: detection dominates)
