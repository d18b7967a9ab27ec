"""The real app, launched on 127.0.0.1 in its own process and called over HTTP with gradio_client."""

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from beit_demo.catalog import get_entry
from beit_demo.testing.checkpoints import FASHION_MNIST_LABELS
from tests.conftest import DATA, PHOTOS, running_app

pytestmark = pytest.mark.app


@contextmanager
def app_client(tmp_path, **env: str) -> Iterator[Client]:  # a Path
    """A gradio_client `Client` of a fresh `python app.py` (see `running_app`), closed before the app stops."""
    with running_app(tmp_path, **env) as app:
        client = Client(app.url, verbose=False)
        try:
            yield client
        finally:
            client.close()


def top_labels(result) -> list[str]:
    return [row["label"] for row in result["confidences"]]


def test_classify_a_real_photo_over_http(tmp_path, hub_double):
    spec = get_entry("fashion-mnist")
    with app_client(tmp_path) as client:
        result, status, view = client.predict(
            handle_file(str(PHOTOS / "coffee.jpg")), spec.key, 3, api_name="/classify"
        )
        again, status_again, _ = client.predict(
            handle_file(str(PHOTOS / "horse.jpg")), spec.key, 3, api_name="/classify"
        )
    labels = top_labels(result)
    assert len(labels) == 3 and result["label"] == labels[0]
    assert set(labels) <= set(FASHION_MNIST_LABELS)
    assert spec.title in status and "downloaded from the Hub" in status
    with Image.open(view) as seen:  # what the model sees: the 224 x 224 input, as an image
        assert seen.size == (224, 224)
    assert "already in memory" in status_again and len(top_labels(again)) == 3


def test_an_uncached_model_offline_gives_the_sentence_and_the_server_keeps_serving(tmp_path, hub_double):
    spec = get_entry("facemask-deit")
    with app_client(tmp_path, HF_HUB_OFFLINE="1") as client:
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(PHOTOS / "astronaut.jpg")), spec.key, 2, api_name="/classify")
        card, *_ = client.predict(spec.key, api_name="/select_model")
    assert f"python -m beit_demo download {spec.key}" in str(caught.value)
    assert spec.repo_id in card and "0.9894" in card
    assert hub_double.log() == []


def test_compare_two_face_mask_models_and_the_status_panel(tmp_path):
    deit, beit = get_entry("facemask-deit"), get_entry("facemask-beit")
    with app_client(tmp_path) as client:
        message, table = client.predict(deit.key, api_name="/load_model")
        *panels, summary = client.predict(
            handle_file(str(PHOTOS / "astronaut.jpg")), [beit.key, deit.key], 2, api_name="/compare"
        )
    assert message.startswith(deit.title) and "downloaded from the Hub" in message
    states = {row[1]: row[2] for row in table["data"]}
    assert states[deit.key] == "in memory" and states[beit.key] == "not downloaded"
    # Each panel comes back as an update: visible only for the models ticked, captioned with the model's title.
    shown = {panel["label"]: panel["value"] for panel in panels if panel["visible"]}
    assert set(shown) == {beit.title, deit.title}
    filled = list(shown.values())
    assert all({row["label"] for row in panel["confidences"]} == {"Mask", "No Mask"} for panel in filled)
    assert beit.title in summary and deit.title in summary
    assert "model already in memory" in summary  # the DeiT was loaded ahead by /load_model
    # The astronaut photo shows one face: both face models judge that face, and the summary says if they agree.
    assert "1 face: " in summary and "**Face by face**" in summary and "The face models agree on " in summary


def test_preloading_starts_after_the_page_answers(tmp_path, hub_double):
    spec = get_entry("facemask-deit")
    hub_double.throttle_bytes_per_s = 200_000  # the tiny checkpoint now takes a few seconds to arrive
    try:
        with app_client(tmp_path, BEIT_DEMO_PRELOAD=spec.key) as client:  # returns once "/" answers
            first = {row[1]: row[2] for row in client.predict(api_name="/model_status")["data"]}
            deadline = time.monotonic() + 60
            while (state := {row[1]: row[2] for row in client.predict(api_name="/model_status")["data"]}) and (
                state[spec.key] != "in memory" and time.monotonic() < deadline
            ):
                time.sleep(0.5)
    finally:
        hub_double.throttle_bytes_per_s = None
    assert first[spec.key] != "in memory"
    assert state[spec.key] == "in memory"
    assert {key for key, value in state.items() if value == "in memory"} == {spec.key}


def test_detect_faces_over_http(tmp_path):
    entry = get_entry("facemask-beit")
    with app_client(tmp_path) as client:
        annotated, faces, summary = client.predict(
            handle_file(str(DATA / "face-mask" / "scene_1.jpg")), entry.key, 0.5, api_name="/detect_faces"
        )
        with pytest.raises(AppError, match="does not classify faces"):
            client.predict(handle_file(str(PHOTOS / "chelsea.jpg")), "beit-in22k", 0.5, api_name="/detect_faces")
    assert len(faces["faces"]) == 3 and summary.startswith("3 faces: ")
    for face in faces["faces"]:
        assert set(face) == {"box", "label", "probability", "face_score"} and face["label"] in {"Mask", "No Mask"}
        x0, y0, x1, y1 = face["box"]
        assert 0 <= x0 < x1 <= 824 and 0 <= y0 < y1 <= 431  # pixels of the upload
    assert len(annotated["annotations"]) == 3
    assert {box["label"] for box in annotated["annotations"]} <= {"Mask", "No Mask"}


def test_explain_over_http(tmp_path):
    entry = get_entry("facemask-beit")
    with app_client(tmp_path) as client:
        overlay, heatmap, label = client.predict(
            handle_file(str(PHOTOS / "horse.jpg")), entry.key, "", "", api_name="/explain"
        )
        again = client.predict(
            handle_file(str(PHOTOS / "horse.jpg")), entry.key, label, "attention rollout", api_name="/explain"
        )
        with pytest.raises(AppError, match="Unknown explanation method"):
            client.predict(handle_file(str(PHOTOS / "horse.jpg")), entry.key, "", "guess", api_name="/explain")
    assert label in {"Mask", "No Mask"} and again[2] == label
    with Image.open(PHOTOS / "horse.jpg") as photo, Image.open(overlay) as shown, Image.open(heatmap) as grey:
        assert shown.size == grey.size == photo.size and grey.mode == "L"


def test_classify_a_batch_over_http_with_its_csv(tmp_path):
    files = [PHOTOS / "coffee.jpg", PHOTOS / "horse.jpg", tmp_path / "broken.jpg"]
    files[2].write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:2000])
    with app_client(tmp_path) as client:
        table, summary, csv_path = client.predict(
            [handle_file(str(path)) for path in files], "fashion-mnist", 2, api_name="/classify_batch"
        )
        with pytest.raises(AppError, match="at most 64 images"):
            client.predict([handle_file(str(files[0]))] * 65, "fashion-mnist", 2, api_name="/classify_batch")
    rows = {row[0]: row for row in table["data"]}
    assert set(rows) == {"coffee.jpg", "horse.jpg", "broken.jpg"}
    assert rows["coffee.jpg"][1] in FASHION_MNIST_LABELS and rows["coffee.jpg"][4] == ""
    assert "damaged or incomplete" in rows["broken.jpg"][4]
    assert "3 of 3 images done (1 failed)" in summary
    with open(csv_path, encoding="utf-8") as stream:
        lines = stream.read().splitlines()
    assert lines[0] == "path,label,probability,top_k,error" and len(lines) == 4
