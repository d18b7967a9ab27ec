"""Share as link: the bounded share store, the per-visitor rate, and the page's share and restore, in-process.

The page's half runs on tabs built as `build_demo` builds them, with real `gr.Request`s around real Starlette
requests (a session, an address, the link's query). The browser's half is in `test_share_browser.py`.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

import gradio as gr
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from PIL import Image
from starlette.requests import Request

from beit_demo.config import Settings
from beit_demo.errors import InvalidRequestError
from beit_demo.models.registry import ModelRegistry
from beit_demo.service import DemoService
from beit_demo.share_store import MAX_SIDE, InvalidShareId, ShareRate, ShareStore
from beit_demo.ui.page import TABS, build_demo, page_head
from beit_demo.ui.shared import Page
from beit_demo.ui.sharing import EXPIRED, Sharing
from tests.conftest import DATA, HUB, PHOTOS, REPO_ROOT

PHOTO = str(PHOTOS / "chelsea.jpg")
SCENE = str(DATA / "face-mask" / "scene_1.jpg")
HOSTILE_IDS = [
    "../../../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "AAAAAAAAAAAAAAAAAAAAA/",  # 22 characters, one a slash
    "A" * 23,
    "A" * 10_000,
    "",
    "ÄAAAAAAAAAAAAAAAAAAAAA"[:22],
    "AAAAAAAAAAAAAAAAAAAA\x00A",
    ".incoming",
    "AAAAAAAAAAAAAAAAAAAAA\n",
]


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like picture that JPEG cannot shrink much: random colours, smoothed a little."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 4, size[0] // 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)


def disk_usage(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# -- the store ----------------------------------------------------------------------------------------------------


def test_a_share_comes_back_as_stored_with_its_pictures_shrunk_and_re_encoded(tmp_path):
    store = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600)
    photo = noise((2400, 1600), seed=1)
    exif = Image.Exif()
    exif[0x010F] = "a camera maker"  # Make
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif)
    with Image.open(buffer) as with_exif:
        assert with_exif.getexif()
        share_id = store.save({"tab": "classify", "results": {"a": [1, 2]}}, {"photo.jpg": with_exif.copy()})
    stored = store.open(share_id)
    assert stored.record["tab"] == "classify" and stored.record["results"] == {"a": [1, 2]}
    with Image.open(stored.files["photo.jpg"]) as kept:
        assert kept.format == "JPEG" and max(kept.size) == MAX_SIDE and kept.size == (1024, 683)
        assert not kept.getexif()
    assert set(os.listdir(tmp_path / "shares" / share_id)) == {"share.json", "photo.jpg"}


def test_a_share_that_cannot_be_written_leaves_nothing_behind(tmp_path):
    store = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600)
    with pytest.raises(TypeError):
        store.save({"not json": object()}, {"photo.jpg": noise((64, 64), seed=2)})
    assert not [path for path in (tmp_path / "shares").rglob("*") if path.is_file()]
    assert store.usage() == (0, 0)


@pytest.fixture
def audit() -> list[tuple[str, tuple]]:
    """The file-system audit events raised while the test runs (open, listdir, scandir, stat-free calls...)."""
    events: list[tuple[str, tuple]] = []
    _AUDIT_SINKS.append(events)
    yield events
    _AUDIT_SINKS.remove(events)


_AUDIT_SINKS: list[list] = []
_FILE_EVENTS = {"open", "os.listdir", "os.scandir", "os.remove", "os.rename", "os.mkdir", "os.utime", "shutil.rmtree"}


def _audit(event: str, args: tuple) -> None:
    if _AUDIT_SINKS and event in _FILE_EVENTS:
        for sink in _AUDIT_SINKS:
            sink.append((event, args))


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one records only while a test asks


@pytest.mark.parametrize("share_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_a_hostile_id_is_refused_before_any_file_is_touched(tmp_path, audit, share_id):
    store = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600)
    store.save({"tab": "classify"}, {})  # the store is read from disk before the test watches
    audit.clear()
    with pytest.raises(InvalidShareId, match="not valid"):
        store.open(share_id)
    assert audit == []


def test_an_unknown_id_and_an_expired_share_open_as_none(tmp_path):
    clock = Clock()
    store = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600, clock=clock)
    kept, dropped = (store.save({"n": n}, {}) for n in range(2))
    assert store.open("A" * 22) is None
    clock.now += 3000
    assert store.open(kept).record["n"] == 0  # opening it makes it young again
    clock.now += 3000
    assert store.open(dropped) is None and not (tmp_path / "shares" / dropped).exists()
    assert store.open(kept).record["n"] == 0


def test_the_store_stays_within_its_caps_under_200_shares_and_drops_the_least_recently_opened(tmp_path):
    clock = Clock()
    cap = 6_000_000
    store = ShareStore(tmp_path / "shares", max_bytes=cap, max_age_s=86_400, clock=clock)
    favourite = store.save({"n": -1}, {"photo.jpg": noise((1200, 900), seed=0)})
    ids = []
    for n in range(200):
        clock.now += 10
        ids.append(store.save({"n": n}, {"photo.jpg": noise((1200, 900), seed=n + 1)}))
        if n % 2 == 0:
            assert store.open(favourite) is not None  # opened now and then: never the least recently opened
        count, size = store.usage()
        assert size <= cap and disk_usage(tmp_path / "shares") <= cap + 8 * count * 1024  # + the folders' blocks
        assert count == len([p for p in (tmp_path / "shares").iterdir() if p.name != ".incoming"])
    assert 5 <= count < 200  # bounded by the size, not by luck: a share is hundreds of kB
    alive = {share_id for share_id in ids if store.open(share_id) is not None}
    assert store.open(favourite) is not None
    assert alive == set(ids[-len(alive) :])  # the newest ones, in order: the oldest unopened went first

    clock.now += 86_400 + 1  # a day with nobody opening them: all past the age cap
    store.prune()
    assert store.usage() == (0, 0) and {p.name for p in (tmp_path / "shares").iterdir()} <= {".incoming"}


def test_a_restarted_store_finds_its_shares_and_drops_half_written_ones(tmp_path):
    first = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600)
    share_id = first.save({"tab": "compare"}, {"photo.jpg": noise((64, 64), seed=3)})
    (tmp_path / "shares" / ".incoming" / ("B" * 22)).mkdir(parents=True)  # a share cut by a stop
    again = ShareStore(tmp_path / "shares", max_bytes=10**8, max_age_s=3600)
    assert again.open(share_id).record["tab"] == "compare"
    assert not (tmp_path / "shares" / ".incoming").exists()


def test_a_visitor_gets_at_most_the_minutes_shares_and_others_are_not_held_back():
    clock = Clock()
    rate = ShareRate(3, clock=clock)
    for _ in range(3):
        rate.take("1.2.3.4")
    with pytest.raises(InvalidRequestError, match="3 results in the last minute"):
        rate.take("1.2.3.4")
    rate.take("5.6.7.8")
    clock.now += 60
    rate.take("1.2.3.4")


# -- the page -----------------------------------------------------------------------------------------------------


class BuiltPage:
    """The page's tabs built as `build_demo` builds them, with their `Sharing`."""

    def __init__(self, settings: Settings):
        self.service = DemoService(settings, ModelRegistry(settings.max_models, settings.precision))
        with gr.Blocks() as self.blocks:
            self.sharing = Sharing(settings)
            page = Page(self.blocks, settings, self.sharing)
            self.tabs = {tab.key: tab for tab in (tab(self.service, self.sharing) for tab in TABS)}
            with gr.Tabs() as bar:
                for tab in self.tabs.values():
                    with gr.Tab(tab.title, id=tab.key) as page.tabs[tab.title]:
                        tab.build(page)
            for tab in self.tabs.values():
                tab.finish(page)
            self.sharing.wire(self.blocks, bar, list(self.tabs), gr.Markdown())

    def share(self, tab: str, visitor: gr.Request) -> str:
        """The link's query, as the share button makes it."""
        return self.sharing.share(tab, visitor).value

    def open(self, query: str) -> tuple[dict, str]:
        """The page's updates for a link, and the sentence it shows ("" when none)."""
        updates = self.sharing.open_link(visitor("opener", query))
        notice = next(value for component, value in updates.items() if component is self.sharing._notice)
        return updates, notice.value or ""


def visitor(session: str, query: str = "", address: str = "10.0.0.1") -> gr.Request:
    scope = {"type": "http", "headers": [], "client": (address, 5000), "query_string": query.lstrip("?").encode()}
    return gr.Request(request=Request(scope), session_hash=session)


@pytest.fixture
def built(tmp_path) -> BuiltPage:
    return BuiltPage(Settings(share_dir=str(tmp_path / "shares"), shares_per_minute=5))


def test_a_shared_classification_opens_with_its_model_settings_photo_and_answer(built, tmp_path):
    classify = built.tabs["classify"]
    me = visitor("session-1")
    scores, status, _ = classify.classify(PHOTO, "fashion-mnist", 3, request=me)
    query = built.share("classify", me)
    assert query.startswith("?tab=classify&model=fashion-mnist&top_k=3&")

    updates, notice = built.open(query)
    assert notice == ""
    assert built.share("classify", visitor("opener")) == query  # the opener shares it on: the same link
    assert updates[classify.model] == "fashion-mnist" and updates[classify.top_k] == 3
    assert updates[classify.predictions] == scores and updates[classify.status] == status
    assert updates[classify.adapt] is True and updates[classify.find_faces] is False
    photo = Path(updates[classify.image])
    assert photo.is_relative_to(get_upload_folder()) and not photo.is_relative_to(tmp_path / "shares")
    with Image.open(photo) as shown, Image.open(PHOTO) as original:
        assert shown.size == original.size
    record = (tmp_path / "shares" / query.rsplit("share=", 1)[1] / "share.json").read_text()
    assert "/" not in json.dumps(json.loads(record)["results"])  # no server path, no upload address


def test_a_face_result_with_its_explanation_opens_with_the_boxes_and_the_overlay(built):
    classify = built.tabs["classify"]
    me = visitor("session-2")
    (_, boxes), faces, summary = classify.faces.detect_faces(SCENE, "facemask-deit", 0.5, request=me)
    (_, overlay), explained = classify.faces.explain_faces_view(SCENE, "facemask-deit", "", 0.5, request=me)
    updates, notice = built.open(built.share("classify", me))
    assert notice == ""
    assert updates[classify.find_faces] is True and updates[classify.min_face_score] == 0.5
    assert updates[classify.faces.faces] == faces and updates[classify.faces.summary] == summary
    _, restored_boxes = updates[classify.faces.annotated]
    assert [label for _, label in restored_boxes] == [label for _, label in boxes]
    assert [mask.shape for mask, _ in restored_boxes] == [mask.shape for mask, _ in boxes]
    assert updates[classify.faces.explained] == explained
    assert all(Path(path).is_file() for path in updates[classify.faces.explained_slider])


def test_an_explanation_of_another_photo_is_not_shared_with_the_result(built):
    classify = built.tabs["classify"]
    me = visitor("session-3")
    classify.explanation.explain_view(SCENE, "fashion-mnist", "", "attention rollout", request=me)
    classify.classify(PHOTO, "fashion-mnist", 2, request=me)
    updates, _ = built.open(built.share("classify", me))
    assert classify.explanation.explained not in updates
    assert classify.predictions in updates


def test_a_visitor_shares_only_their_own_result_and_only_so_often(built):
    classify = built.tabs["classify"]
    me, other = visitor("session-4"), visitor("session-5")
    with pytest.raises(gr.Error, match="Run the model first"):
        built.share("classify", me)
    classify.classify(PHOTO, "fashion-mnist", 2, request=me)
    with pytest.raises(gr.Error, match="Run the model first"):
        built.share("classify", other)
    first = built.share("classify", me)
    assert built.share("classify", me) == first  # the same result shared twice: one share, one link
    for top_k in range(3, 7):
        classify.classify(PHOTO, "fashion-mnist", top_k, request=me)
        assert built.share("classify", me) != first
    classify.classify(PHOTO, "fashion-mnist", 7, request=me)
    with pytest.raises(gr.Error, match="in the last minute"):
        built.share("classify", me)
    assert built.sharing.store.usage()[0] == 5


def test_a_shared_comparison_opens_on_the_compare_tab_with_every_panel(built):
    compare = built.tabs["compare"]
    me = visitor("session-6")
    *_, done = compare.compare_view(PHOTO, ["fashion-mnist", "facemask-deit"], 2, request=me)
    query = built.share("compare", me)
    assert "models=fashion-mnist&models=facemask-deit" in query

    updates, notice = built.open(query)
    assert notice == "" and updates[built.sharing._tabs].selected == "compare"
    assert updates[compare.models] == ["fashion-mnist", "facemask-deit"] and updates[compare.top_k] == 2
    shown = [update for update in done if isinstance(update, gr.Label)]
    restored = [updates[label] for label in compare.labels]
    assert [(label.value, label.label, label.visible) for label in restored] == [
        (label.value, label.label, label.visible) for label in shown
    ]


def test_a_shared_evaluation_opens_with_its_tables_pictures_and_report(built):
    evaluate = built.tabs["evaluate"]
    me = visitor("session-7")
    archive = str(REPO_ROOT / "examples" / "fashion-mnist-sample.zip")
    outputs = evaluate.evaluate_view(archive, ["fashion-mnist"], 3, None, request=me)
    updates, notice = built.open(built.share("evaluate", me))
    assert notice == ""
    summary, figures, sentences, confusions, _, mistakes, _, downloads, mapping = outputs
    assert updates[evaluate.outputs[0]] == summary and updates[evaluate.outputs[1]] == figures
    assert [caption for _, caption in updates[evaluate.outputs[5]]] == [caption for _, caption in mistakes]
    assert len(updates[evaluate.outputs[3]]) == len(confusions)
    report, rows = updates[evaluate.outputs[7]]
    assert Path(report).read_text() == Path(downloads[0]).read_text()
    assert Path(rows).name == "rows.csv" and updates[evaluate.mapping] == mapping


@pytest.mark.parametrize("share_id", ["A" * 22, "expired"])
def test_an_expired_or_unknown_link_says_so_and_restores_the_model_and_settings(built, share_id):
    compare = built.tabs["compare"]
    if share_id == "expired":
        me = visitor("session-8")
        list(compare.compare_view(PHOTO, ["fashion-mnist"], 2, request=me))
        share_id = built.share("compare", me).rsplit("share=", 1)[1]
        built.sharing.store.max_age_s = -1  # every share is past its age now
    query = "?" + urlencode([("tab", "compare"), ("models", "facemask-beit"), ("models", "fashion-mnist")])
    updates, notice = built.open(f"{query}&top_k=4&share={share_id}")
    assert notice == f"**{EXPIRED}**"
    assert updates[compare.models] == ["facemask-beit", "fashion-mnist"] and updates[compare.top_k] == 4
    assert compare.image not in updates and all(label not in updates for label in compare.labels)


@pytest.mark.parametrize("share_id", HOSTILE_IDS[:5], ids=range(5))
def test_a_hostile_link_is_refused_with_a_sentence_and_restores_only_what_checks_out(built, share_id):
    classify = built.tabs["classify"]
    query = urlencode([("model", "../../etc"), ("top_k", "1e9"), ("faces", "<b>"), ("share", share_id)])
    updates, notice = built.open("?" + query)
    assert "This share link is not valid" in notice
    assert classify.model not in updates and classify.top_k not in updates and classify.image not in updates


def test_the_upload_lifetime_sets_the_clean_up_of_gradios_cache(monkeypatch):
    assert Settings().upload_lifetime_s == 3600
    for lifetime, expected in (("3600", (600, 3600)), ("45", (45, 45))):
        monkeypatch.setenv("BEIT_DEMO_UPLOAD_LIFETIME_S", lifetime)
        settings = Settings.from_env()
        demo = build_demo(DemoService(settings, ModelRegistry(settings.max_models, settings.precision)))
        assert demo.delete_cache == expected


def test_link_previews_show_the_screenshot_from_the_spaces_repo_and_the_card_names_it_too():
    on_a_space = page_head(Settings(space_id="someone/beit-demo", hub_endpoint=HUB.url))
    address = f"{HUB.url}/spaces/someone/beit-demo/resolve/main/docs/screenshot.png"
    assert f'<meta property="og:image" content="{address}">' in on_a_space
    assert "og:image" not in page_head(Settings()) and "og:title" in page_head(Settings())
    assert "og:image" not in page_head(Settings(space_id='x/"><script>'))
    front_matter = (REPO_ROOT / "README.md").read_text().split("---")[1]
    thumbnail = re.search(r"^thumbnail: (\S+)$", front_matter, re.MULTILINE).group(1)
    assert thumbnail.endswith("/resolve/main/docs/screenshot.png")
    assert (REPO_ROOT / "docs" / "screenshot.png").is_file()


def test_a_share_damaged_on_disk_opens_as_expired_and_repeated_names_do_no_harm(built, tmp_path):
    classify = built.tabs["classify"]
    me = visitor("session-9")
    classify.classify(PHOTO, "fashion-mnist", 2, request=me)
    query = built.share("classify", me)
    record = tmp_path / "shares" / query.rsplit("share=", 1)[1] / "share.json"
    data = json.loads(record.read_text())
    del data["results"]["scores"]
    record.write_text(json.dumps(data))
    updates, notice = built.open(query)
    assert notice == f"**{EXPIRED}**" and updates[classify.model] == "fashion-mnist"
    assert classify.predictions not in updates

    classify.classify(PHOTO, "fashion-mnist", 3, request=me)
    query = built.share("classify", me)
    (tmp_path / "shares" / query.rsplit("share=", 1)[1] / "view.png").unlink()  # a picture gone from the share
    updates, notice = built.open(query)
    assert notice == f"**{EXPIRED}**" and updates[classify.top_k] == 3 and classify.predictions not in updates

    updates, notice = built.open("?tab=classify&tab=compare&share=a&share=b")
    assert "not valid" in notice and built.sharing._tabs not in updates


def test_a_share_folder_that_cannot_be_written_gives_a_sentence_and_links_still_open_their_settings(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    page = BuiltPage(Settings(share_dir=str(blocked / "shares")))
    me = visitor("session-10")
    page.tabs["classify"].classify(PHOTO, "fashion-mnist", 2, request=me)
    with pytest.raises(gr.Error, match="cannot be kept on this server"):
        page.share("classify", me)
    updates, notice = page.open("?tab=classify&model=fashion-mnist&top_k=2&share=" + "A" * 22)
    assert "cannot be kept on this server" in notice
    assert updates[page.tabs["classify"].model] == "fashion-mnist" and updates[page.tabs["classify"].top_k] == 2
