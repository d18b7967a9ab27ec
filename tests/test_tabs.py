"""The page's tabs, called in-process (no server): what each returns, and how errors reach the visitor."""

from __future__ import annotations

import io
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from PIL import Image

from beit_demo.catalog import CATALOG, get_entry
from beit_demo.config import Settings
from beit_demo.errors import DemoError
from beit_demo.inference.adapters import ADAPTER_TITLES
from beit_demo.models.registry import ModelRegistry
from beit_demo.service import MAX_TOP_K, DemoService
from beit_demo.testing.hub_double import Fault
from beit_demo.ui import texts
from beit_demo.ui.shared import shows_errors
from beit_demo.ui.tabs.batch import BatchTab
from beit_demo.ui.tabs.classify import ClassifyTab
from beit_demo.ui.tabs.compare import CompareTab
from beit_demo.ui.tabs.explain_panel import ExplainPanel
from beit_demo.ui.tabs.faces_panel import ANNOTATED_SIDE
from beit_demo.ui.tabs.models import ModelsTab
from tests.conftest import DATA, PHOTOS

PHOTO = str(PHOTOS / "chelsea.jpg")
FACE_MASK_KEYS = ["facemask-beit", "facemask-deit"]


class RecordedProgress:
    """Stands in for `gr.Progress`, which reports only inside a running event: records what it is told."""

    def __init__(self):
        self.calls: list[tuple[float, str]] = []

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        self.calls.append((fraction, desc))


@dataclass
class Tabs:
    """The page's tabs bound to one service, as `build_demo` binds them (their handlers are their methods)."""

    service: DemoService

    def __post_init__(self):
        self.classify, self.compare = ClassifyTab(self.service), CompareTab(self.service)
        self.batch, self.models = BatchTab(self.service), ModelsTab(self.service)


def make_tabs(**registry_args) -> Tabs:
    settings = Settings()
    return Tabs(DemoService(settings, ModelRegistry(settings.max_models, settings.precision, **registry_args)))


def table_states(tabs: Tabs) -> dict[str, str]:
    return {row[1]: row[2] for row in tabs.models.model_table()}


def panels_by_title(outputs: list) -> dict[str, gr.Label]:
    """The visible compare panels (all but the last output, the summary), by their model's title."""
    return {panel.label.removesuffix(" (working...)"): panel for panel in outputs[:-1] if panel.visible}


def test_classify_returns_the_scores_a_status_line_and_the_model_input():
    entry = get_entry("facemask-deit")
    progress = RecordedProgress()
    scores, status, model_input = make_tabs().classify.classify(PHOTO, entry.key, 2, progress)

    assert list(scores) in (["Mask", "No Mask"], ["No Mask", "Mask"])
    assert 0.999 < sum(scores.values()) <= 1.0001 and list(scores.values()) == sorted(scores.values(), reverse=True)
    assert status.startswith(f"**{entry.title}**") and " ms · downloaded from the Hub" in status
    assert model_input.startswith(get_upload_folder()) and model_input.endswith(".webp")
    with Image.open(model_input) as view:
        assert view.size == (224, 224) and view.mode == "RGB"
    assert any(desc and desc.startswith(f"Downloading {entry.title}") for _, desc in progress.calls)


def test_classify_caps_top_k_and_says_when_the_model_was_in_memory():
    tabs = make_tabs()
    tabs.classify.classify(PHOTO, "fashion-mnist", 3, RecordedProgress())
    scores, status, _ = tabs.classify.classify(PHOTO, "fashion-mnist", MAX_TOP_K, RecordedProgress())
    assert len(scores) == 10  # all the labels there are
    assert status.endswith("model already in memory · photo adapted to " + ADAPTER_TITLES["fashion-mnist"])


def test_compare_shows_the_ticked_models_as_they_finish_those_in_memory_first():
    tabs = make_tabs()
    beit, deit = (get_entry(key) for key in FACE_MASK_KEYS)
    tabs.models.prepare(deit.key, RecordedProgress())  # in memory: it answers first
    outputs = list(tabs.compare.compare(PHOTO, FACE_MASK_KEYS, 2, RecordedProgress()))

    assert len(outputs) == 3  # before any model, after the first, after the second
    assert len(outputs[0]) == len(CATALOG) + 1
    first, after_deit, done = (panels_by_title(output) for output in outputs)
    assert set(first) == set(done) == {beit.title, deit.title}  # only the ticked models have a panel
    assert all(not panel.value and panel.label.endswith("(working...)") for panel in first.values())
    assert after_deit[deit.title].value and not after_deit[beit.title].value
    assert all(panel.label == title and panel.value for title, panel in done.items())
    summary = outputs[-1][-1]
    assert beit.title in summary and deit.title in summary and "working..." not in summary
    assert "model already in memory" in summary and "downloaded from the Hub" in summary
    assert "**face-mask** models" in summary and "on the top-1 label." in summary


def test_compare_keeps_the_other_models_when_one_fails(hub_double):
    beit, deit = (get_entry(key) for key in FACE_MASK_KEYS)
    hub_double.inject(Fault("status", path_contains=beit.repo_id, status=404, error_code="RepoNotFound"))
    done = list(make_tabs().compare.compare(PHOTO, FACE_MASK_KEYS, 2, RecordedProgress()))[-1]
    panels = panels_by_title(done)
    assert panels[deit.title].value and not panels[beit.title].value
    failed_row = next(line for line in done[-1].splitlines() if line.startswith(f"| {beit.title} |"))
    assert "was not found on the Hub" in failed_row


def test_the_model_table_follows_a_model_from_the_hub_into_memory():
    tabs = make_tabs()
    assert set(table_states(tabs).values()) == {"not downloaded"}
    message, rows = tabs.models.prepare("fashion-mnist", RecordedProgress())
    assert message.startswith(get_entry("fashion-mnist").title + " is ready (downloaded from the Hub")
    states = {row[1]: row for row in rows}
    assert states["fashion-mnist"][2] == "in memory" and states["fashion-mnist"][3].endswith(" MB")
    assert [row[1] for row in rows] == [entry.key for entry in CATALOG]
    assert table_states(tabs) == {row[1]: row[2] for row in rows}


def test_select_model_gives_the_card_and_examples_and_clears_the_old_answer():
    entry = get_entry("fashion-mnist")
    card, examples, scores, status, model_input = make_tabs().classify.select_model(entry.key)
    assert card.startswith(f"### {entry.title}") and entry.repo_id in card
    assert [sample[0].rsplit("/", 1)[-1] for sample in examples.raw_samples] == list(entry.examples)
    assert (scores, status, model_input) == (None, "", None)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        pytest.param(
            lambda h: h.classify.classify(PHOTO, "resnet50", 5, RecordedProgress()), "Valid models:", id="unknown_key"
        ),
        pytest.param(
            lambda h: h.classify.classify(None, "fashion-mnist", 5, RecordedProgress()), "Upload", id="no_image"
        ),
        pytest.param(
            lambda h: h.classify.classify(PHOTO, "fashion-mnist", "many", RecordedProgress()),
            "Top-k",
            id="top_k_not_a_number",
        ),
        pytest.param(
            lambda h: h.classify.classify(b"plain text", "fashion-mnist", 5, RecordedProgress()),
            "not a supported image",
            id="not_an_image",
        ),
        pytest.param(lambda h: h.classify.select_model("resnet50"), "Valid models:", id="select_unknown_key"),
        pytest.param(
            lambda h: h.models.prepare("resnet50", RecordedProgress()), "Valid models:", id="prepare_unknown_key"
        ),
        pytest.param(
            lambda h: list(h.compare.compare(PHOTO, [], 3, RecordedProgress())), "Tick", id="compare_nothing"
        ),
        pytest.param(
            lambda h: list(h.compare.compare(PHOTO, ["resnet50"], 3, RecordedProgress())),
            "Valid models:",
            id="compare_unknown",
        ),
    ],
)
def test_a_visitor_mistake_becomes_a_gradio_error_with_the_sentence(call, fragment):
    with pytest.raises(gr.Error) as caught:
        call(make_tabs())
    assert fragment in caught.value.message and caught.value.message.endswith(".")


def test_a_hub_failure_reaches_the_visitor_as_the_hub_sentence(hub_double):
    entry = get_entry("facemask-beit")
    hub_double.inject(Fault("status", path_contains=entry.repo_id, status=401, error_code="GatedRepo"))
    with pytest.raises(gr.Error) as caught:
        make_tabs().classify.classify(PHOTO, entry.key, 2, RecordedProgress())
    assert caught.value.message.startswith(f"{entry.title} ({entry.repo_id}) is gated on the Hub")


def test_any_new_demo_error_is_converted_without_a_ui_edit_and_other_errors_stay_hidden():
    class BrandNewError(DemoError):
        pass

    def handler(kind: str):
        raise BrandNewError("Something new went wrong: try again.") if kind == "ours" else KeyError("internal detail")

    def generator_handler(kind: str):
        yield "started"
        handler(kind)

    for wrapped in (shows_errors(handler), lambda kind: list(shows_errors(generator_handler)(kind))):
        with pytest.raises(gr.Error) as caught:
            wrapped("ours")
        assert caught.value.message == "Something new went wrong: try again."
        with pytest.raises(KeyError) as hidden:  # Gradio shows its generic error for these, not their text
            wrapped("a bug")
        assert not isinstance(hidden.value, gr.Error)


def test_a_bug_in_a_loader_is_not_shown_to_the_visitor():
    def broken_loader(source, precision, progress):
        raise ZeroDivisionError("a traceback detail")

    with pytest.raises(ZeroDivisionError):
        make_tabs(loader=broken_loader).classify.classify(PHOTO, "fashion-mnist", 3, RecordedProgress())


SCENE = str(DATA / "face-mask" / "scene_1.jpg")  # three faces, one of them masked


def mask_box(mask) -> tuple[int, int, int, int]:
    """The box a face's mask draws (its border and half-tinted inside; not the faint dot that makes it unique)."""
    rows, columns = (mask >= 0.5).nonzero()
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


def test_every_face_mask_is_a_file_of_its_own():
    (_, first), _, _ = make_tabs().classify.faces.detect_faces(SCENE, "facemask-deit", 0.5, RecordedProgress())
    (_, second), _, _ = make_tabs().classify.faces.detect_faces(SCENE, "facemask-deit", 0.5, RecordedProgress())
    # The same faces twice: the same boxes, but masks that differ (Gradio names mask files after their content).
    assert [mask_box(mask) for mask, _ in first] == [mask_box(mask) for mask, _ in second]
    assert all(not (a == b).all() for (a, _), (b, _) in zip(first, second, strict=True))


def test_detect_faces_gives_the_annotated_photo_the_faces_and_a_summary():
    (photo_path, boxes), faces, summary = make_tabs().classify.faces.detect_faces(
        SCENE, "facemask-deit", 0.5, RecordedProgress()
    )
    with Image.open(photo_path) as shown, Image.open(SCENE) as original:
        assert shown.size == original.size  # small enough to send back as it is
    assert [mask_box(mask) for mask, _ in boxes] == [tuple(face["box"]) for face in faces["faces"]]
    assert [label for _, label in boxes] == [face["label"] for face in faces["faces"]]
    assert len(faces["faces"]) == 3 and summary.startswith("3 faces: ") and summary.endswith(".")
    assert [row[0] for row in texts.face_rows(faces)] == [1, 2, 3]


def test_a_big_photo_comes_back_smaller_with_its_boxes_scaled():
    big = Image.open(SCENE).resize((3296, 1724))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    (photo_path, boxes), faces, _ = make_tabs().classify.faces.detect_faces(
        buffer.getvalue(), "facemask-deit", 0.5, RecordedProgress()
    )
    with Image.open(photo_path) as shown:
        assert max(shown.size) == ANNOTATED_SIDE
        scale = shown.width / big.width
    for (mask, _), face in zip(boxes, faces["faces"], strict=True):
        assert mask_box(mask) == tuple(round(value * scale) for value in face["box"])


def test_an_example_runs_what_the_button_in_view_runs():
    tabs = make_tabs()
    as_faces = tabs.classify.classify_example(SCENE, "facemask-deit", 2, True, True, 0.5)
    assert as_faces[:3] == (gr.skip(), gr.skip(), gr.skip()) and as_faces[5].startswith("3 faces")
    as_photo = tabs.classify.classify_example(SCENE, "facemask-deit", 2, False, True, 0.5)
    assert set(as_photo[0]) == {"Mask", "No Mask"} and as_photo[3:] == (gr.skip(), gr.skip(), gr.skip())
    adapted = tabs.classify.classify_example(SCENE, "fashion-mnist", 2, True, True, 0.5)  # not a face model
    assert len(adapted[0]) == 2 and adapted[3:] == (gr.skip(), gr.skip(), gr.skip()) and "adapted" in adapted[1]
    as_is = tabs.classify.classify_example(SCENE, "fashion-mnist", 2, True, False, 0.5)
    assert len(as_is[0]) == 2 and "adapted" not in as_is[1]


def test_compare_judges_the_same_faces_with_both_face_models():
    outputs = list(make_tabs().compare.compare(SCENE, FACE_MASK_KEYS, 2, RecordedProgress()))[-1]
    panels, summary = panels_by_title(outputs), outputs[-1]
    for panel in panels.values():  # the share of the three faces given each label
        shares = [row["confidence"] for row in panel.value["confidences"]]
        assert {row["label"] for row in panel.value["confidences"]} == {"Mask", "No Mask"}
        assert sum(shares) == pytest.approx(1) and all(
            share * 3 == pytest.approx(round(share * 3)) for share in shares
        )
    assert summary.count("3 faces: ") == 2 and "**Face by face**" in summary
    assert len([line for line in summary.splitlines() if line.startswith(("| 1 |", "| 2 |", "| 3 |"))]) == 3
    assert "The face models agree on " in summary and "of 3 faces." in summary


def test_compare_finds_the_faces_once_for_both_face_models(monkeypatch):
    from beit_demo.models.face_detector import shared_detector

    detector = shared_detector()
    searches = []
    detect = detector.detect
    monkeypatch.setattr(detector, "detect", lambda *args, **kwargs: searches.append(1) or detect(*args, **kwargs))
    *_, summary = list(make_tabs().compare.compare(SCENE, FACE_MASK_KEYS, 2, RecordedProgress()))[-1]
    assert searches == [1]  # the detector ran for the first face model; the second judged the same boxes
    assert summary.count("3 faces: ") == 2


def test_a_face_mistake_becomes_a_gradio_error():
    with pytest.raises(gr.Error, match="does not classify faces"):
        make_tabs().classify.faces.detect_faces(SCENE, "beit-in22k", 0.5, RecordedProgress())
    with pytest.raises(gr.Error, match="from 0 to 1"):
        make_tabs().classify.faces.detect_faces(SCENE, "facemask-deit", 2, RecordedProgress())


def test_explain_gives_an_overlay_a_greyscale_heatmap_and_the_class():
    tabs = make_tabs()
    overlay, heatmap, label = tabs.classify.explanation.explain(
        str(PHOTOS / "coffee.jpg"), "facemask-deit", "", "", RecordedProgress()
    )
    with Image.open(PHOTOS / "coffee.jpg") as photo, Image.open(overlay) as shown, Image.open(heatmap) as grey:
        assert shown.size == grey.size == photo.size  # 600 x 400: under the 1024 px cap, the photo's own size
        assert grey.mode == "L" and max(grey.getextrema()) >= 230  # normalised: the peak is (nearly) white
    assert label in {"Mask", "No Mask"}
    (photo_path, overlay_again), _, same = tabs.classify.explanation.explain_view(
        str(PHOTOS / "coffee.jpg"), "facemask-deit", label, "attention rollout", RecordedProgress()
    )
    assert same == label and Image.open(photo_path).size == Image.open(overlay_again).size


def test_explain_refuses_an_unknown_class_or_method_with_a_sentence():
    tabs = make_tabs()
    with pytest.raises(gr.Error, match="has no class 'Hat'"):
        tabs.classify.explanation.explain(str(PHOTOS / "coffee.jpg"), "facemask-deit", "Hat", "", RecordedProgress())
    with pytest.raises(gr.Error, match="Unknown explanation method"):
        tabs.classify.explanation.explain(str(PHOTOS / "coffee.jpg"), "facemask-deit", "", "lime", RecordedProgress())


def test_a_big_photo_is_explained_in_its_own_aspect_and_what_the_crop_cut_off_stays_dark():
    big = Image.open(PHOTOS / "rocket.jpg").resize((3000, 2000))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG")
    _, heatmap, _ = make_tabs().classify.explanation.explain(
        buffer.getvalue(), "beit-in1k-timm", "", "", RecordedProgress()
    )
    with Image.open(heatmap) as grey:
        assert max(grey.size) <= 1024 and grey.width / grey.height == pytest.approx(1.5, abs=0.01)
        # timm's processor keeps the centre 224 x 224 of the shorter side resized to 248: the sides were never seen.
        side = grey.width * 40 // 372  # 74 of the 372 px of the resized width are cut off on each side; 40 to be safe
        assert max(grey.crop((0, 0, side, grey.height)).getextrema()) == 0
        assert max(grey.crop((side * 3, 0, grey.width - side * 3, grey.height)).getextrema()) > 0


def test_the_explain_dropdown_lists_the_classes_shown():
    update = ExplainPanel.class_choices(
        {"label": "a", "confidences": [{"label": "a", "confidence": 0.6}, {"label": "b"}]}
    )
    assert update.choices == [("", ""), ("a", "a"), ("b", "b")] and update.value == ""


def test_compare_panels_put_a_catalog_repo_typed_as_a_hub_id_in_its_catalog_panel():
    from beit_demo.ui.tabs.compare import panel_slots

    typed_catalog_repo = get_entry("facemask-deit").repo_id
    slots = panel_slots(["beit-in22k", typed_catalog_repo, "someone/vit", "someone/vit", "../.."])
    keys = [entry.key for entry in CATALOG]
    assert slots[: len(keys)] == [key if key in {"beit-in22k", "facemask-deit"} else None for key in keys]
    assert slots[len(keys) :] == ["someone/vit", "../.."]  # typed ids in order, once each (the service refuses ../..)


def test_the_faces_view_explains_each_face_on_its_own_crop_and_nothing_else():
    from beit_demo.inference.faces import crop_box

    tabs = make_tabs()
    report = make_tabs().service.detect_faces(SCENE, "facemask-beit", 0.5)
    (photo_path, overlay_path), explained = tabs.classify.faces.explain_faces_view(
        SCENE, "facemask-beit", "", 0.5, RecordedProgress()
    )
    assert explained.startswith("3 faces, each for its own label: ")
    result = tabs.service.explain_faces(SCENE, "facemask-beit", "gradient x activation")
    assert [face.box for face in result.faces] == [face.box for face in report.faces] and result.label == ""
    crops = [crop_box(face.box, report.photo.width, report.photo.height) for face in result.faces]
    inside = np.zeros(result.relevance.shape, dtype=bool)
    for left, top, right, bottom in crops:  # the photo is under the display cap: the same pixels
        inside[top:bottom, left:right] = True
        assert result.relevance[top:bottom, left:right].max() > 0.9  # each face scaled to its own peak
    assert result.relevance[~inside].max() == 0.0
    with Image.open(photo_path) as photo, Image.open(overlay_path) as overlay:
        assert photo.size == overlay.size == report.photo.size


def test_compare_explains_a_face_model_face_by_face():
    from beit_demo.inference.faces import crop_box

    tabs = make_tabs()
    report = tabs.service.detect_faces(SCENE, "facemask-deit", 0.5)
    *_, last = tabs.compare.compare_explanations(SCENE, ["facemask-deit", "fashion-mnist"])
    shown = [update for update in last if update.visible]
    assert len(shown) == 2 and all(update.value for update in shown)
    chosen_in_catalog_order = [entry.key for entry in CATALOG if entry.key in {"facemask-deit", "fashion-mnist"}]
    face_overlay = shown[chosen_in_catalog_order.index("facemask-deit")].value["path"]
    photo = np.asarray(report.photo, dtype=np.float32)
    overlay = np.asarray(Image.open(face_overlay).convert("RGB"), dtype=np.float32)
    inside = np.zeros(photo.shape[:2], dtype=bool)
    for face in report.faces:
        left, top, right, bottom = crop_box(face.box, report.photo.width, report.photo.height)
        inside[top:bottom, left:right] = True
    difference = np.abs(overlay - photo).mean(axis=2)
    assert difference[~inside].mean() < 3  # outside the faces' crops, the photo shows through (JPEG noise aside)
    assert difference[inside].mean() > 3 * difference[~inside].mean()


def test_every_component_of_the_page_has_a_frontend_gradio_knows():
    """Gradio draws a component by its block name (a template's: its direct parent's); an unknown one leaves the
    whole page on "Loading..." (a subclass of a subclass once did)."""
    from beit_demo.ui.page import build_demo

    demo = build_demo(DemoService(Settings()))
    import gradio.layouts

    known = {name.lower() for name in [*dir(gr), *dir(gradio.layouts)]}  # gradio.layouts has Form, which gr hides
    names = {block.get_block_name() for block in demo.blocks.values()}
    assert names <= known, names - known
    # A template's frontend settings come from its __init__'s signature: the batch input must stay multi-file.
    from beit_demo.ui.components import ImageFiles

    (batch_input,) = [block for block in demo.blocks.values() if isinstance(block, ImageFiles)]
    assert batch_input.get_config()["file_count"] == "multiple"
