"""Finding faces and judging each: the detector on real photos with known faces, and the pipeline around it."""

from __future__ import annotations

import io
import json
import threading

import pytest
from PIL import Image

from beit_demo.catalog import get_entry
from beit_demo.config import Settings
from beit_demo.errors import ImageLoadError, InvalidRequestError
from beit_demo.inference.faces import MAX_FACES, MIN_FACE_SIDE, crop_box, wears_mask
from beit_demo.models.face_detector import FULL_RANGE, SHORT_RANGE, FaceDetector, shared_detector
from beit_demo.service import DemoService
from beit_demo.ui import texts
from tests.conftest import DATA, PHOTOS

SCENES = DATA / "face-mask"
# The boxes of every clearly visible face of the scenes, drawn by hand (the file says how).
KNOWN_FACES = {
    name: [tuple(box) for box in boxes]
    for name, boxes in json.loads((SCENES / "faces.json").read_text()).items()
    if name.endswith(".jpg")
}
NO_FACES = ("coffee.jpg", "rocket.jpg", "horse.jpg", "chelsea.jpg")  # chelsea is a cat


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def matched(found, truth, threshold: float = 0.5) -> int:
    """How many of ``truth`` some box of ``found`` overlaps by ``threshold`` IoU or more, each box used once."""
    unused = list(found)
    hits = 0
    for box in truth:
        best = max(unused, key=lambda candidate: iou(candidate, box), default=None)
        if best is not None and iou(best, box) >= threshold:
            unused.remove(best)
            hits += 1
    return hits


def photo(path) -> Image.Image:
    return Image.open(path).convert("RGB")


def make_service() -> DemoService:
    return DemoService(Settings())


@pytest.mark.parametrize("model", [FULL_RANGE, SHORT_RANGE], ids=["full_range", "short_range"])
def test_every_known_face_of_the_scenes_is_found_at_the_default_score(model):
    detector = FaceDetector(model)
    for name, truth in KNOWN_FACES.items():
        found = [face.box for face in detector.detect(photo(SCENES / name))]
        assert matched(found, truth) == len(truth), (name, found)
        assert len(found) == len(truth), (name, found)  # nothing else


@pytest.mark.parametrize("name", NO_FACES)
def test_photos_without_faces_get_no_box(name):
    assert shared_detector().detect(photo(PHOTOS / name)) == []


def test_the_astronaut_has_one_face():
    faces = shared_detector().detect(photo(PHOTOS / "astronaut.jpg"))
    assert len(faces) == 1 and matched([faces[0].box], [(175, 70, 278, 175)]) == 1


def test_boxes_are_in_the_upload_pixels_after_exif_orientation():
    """A phone held upright stores the picture on its side and says so in EXIF: the boxes are in the upright view."""
    scene = photo(SCENES / "scene_1.jpg")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    scene.rotate(90, expand=True).save(buffer, "JPEG", quality=95, exif=exif)  # stored on its side
    report = make_service().detect_faces(buffer.getvalue(), "facemask-deit")
    assert report.photo.size == scene.size
    assert matched([face.box for face in report.faces], KNOWN_FACES["scene_1.jpg"]) == 3


def test_all_crops_of_a_photo_go_through_one_forward_pass():
    service = make_service()
    entry = get_entry("facemask-beit")
    passes = []
    with service.registry.use(entry.source) as loaded:
        hook = loaded.model.register_forward_hook(
            lambda module, args, kwargs, output: passes.append(kwargs), with_kwargs=True
        )
        try:
            report = service.detect_faces(str(SCENES / "scene_1.jpg"), entry.key)
        finally:
            hook.remove()
    assert len(report.faces) == 3
    assert [call["pixel_values"].shape[0] for call in passes] == [3]


def test_each_face_keeps_its_box_label_probability_and_face_score():
    report = make_service().detect_faces(str(SCENES / "scene_0.jpg"), "facemask-deit", 0.5)
    assert len(report.faces) == 2 and report.whole_photo is None
    for face in report.faces:
        assert set(face.scores) == {"Mask", "No Mask"} and face.label in face.scores
        assert face.probability == max(face.scores.values()) and 0.5 <= face.face_score <= 1
    payload = texts.faces_json(report)
    assert [entry["box"] for entry in payload["faces"]] == [list(face.box) for face in report.faces]
    assert set(payload["faces"][0]) == {"box", "label", "probability", "face_score"}
    assert texts.face_summary(report).startswith("2 faces: ")


def test_a_crop_is_square_around_the_face_and_stays_inside_the_photo():
    assert crop_box((100, 100, 200, 180), 1000, 1000) == (75, 65, 225, 215)
    assert crop_box((0, 0, 50, 50), 60, 60) == (0, 0, 60, 60)


def test_no_face_says_so_and_gives_the_whole_photo_prediction():
    report = make_service().detect_faces(str(PHOTOS / "coffee.jpg"), "facemask-beit")
    assert report.faces == () and set(report.whole_photo) == {"Mask", "No Mask"}
    summary = texts.face_summary(report)
    assert summary.startswith("No face found at a face score of 0.50") and "whole photo" in summary


def test_a_higher_minimum_score_keeps_fewer_faces():
    service = make_service()
    low = service.detect_faces(str(SCENES / "scene_1.jpg"), "facemask-deit", 0.5)
    high = service.detect_faces(str(SCENES / "scene_1.jpg"), "facemask-deit", 0.9)
    assert len(low.faces) == 3 and 1 <= len(high.faces) < 3
    assert all(face.face_score >= 0.9 for face in high.faces)


def face_mosaic(columns: int, rows: int, side: int) -> bytes:
    """A grid of the scenes' faces, ``side`` px each: a photo with columns x rows faces."""
    faces = [
        photo(SCENES / name).crop(crop_box(box, 10_000, 10_000)).resize((side, side))
        for name, boxes in KNOWN_FACES.items()
        for box in boxes
    ]
    mosaic = Image.new("RGB", (columns * side, rows * side), "white")
    for index in range(columns * rows):
        mosaic.paste(faces[index % len(faces)], ((index % columns) * side, (index // columns) * side))
    buffer = io.BytesIO()
    mosaic.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_crowd_beyond_the_cap_is_cut_to_the_cap_with_a_message():
    report = make_service().detect_faces(face_mosaic(8, 6, 160), "facemask-deit")
    assert report.found.found > MAX_FACES
    assert len(report.faces) == MAX_FACES and report.found.capped == report.found.found - MAX_FACES
    assert f"the {MAX_FACES} most face-like of {report.found.found} are shown" in texts.face_summary(report)


def test_a_mosaic_of_a_thousand_tiny_faces_is_answered_as_a_photo_without_faces():
    """1,000 faces of 64 px in a 2560 x 1600 photo: each is under a tenth of a quarter's side, too small for the
    detector's 192 px input, so none is found (the cap is checked with a crowd it can see, above); the request is
    answered, with the model's answer for the whole photo."""
    report = make_service().detect_faces(face_mosaic(40, 25, 64), "facemask-deit")
    assert report.photo.size == (2560, 1600)
    assert report.found.found == 0 and report.faces == ()
    assert set(report.whole_photo) == {"Mask", "No Mask"}
    assert texts.face_summary(report).startswith("No face found")


def test_faces_under_the_minimum_size_are_skipped_not_crashed_on():
    tiny = photo(SCENES / "scene_2.jpg").reduce(6)  # the face is now about 19 px wide
    buffer = io.BytesIO()
    tiny.save(buffer, "PNG")
    report = make_service().detect_faces(buffer.getvalue(), "facemask-deit")
    assert report.found.too_small >= 1 and report.faces == ()
    assert f"under {MIN_FACE_SIDE} px skipped" in texts.face_summary(report)


@pytest.mark.parametrize(
    ("image", "model", "score", "error", "fragment"),
    [
        (b"not an image at all", "facemask-deit", 0.5, ImageLoadError, "not a supported image"),
        (None, "facemask-deit", 0.5, InvalidRequestError, "Upload"),
        (str(SCENES / "scene_2.jpg"), "beit-in22k", 0.5, InvalidRequestError, "does not classify faces"),
        (str(SCENES / "scene_2.jpg"), "facemask-deit", 1.5, InvalidRequestError, "from 0 to 1"),
        (str(SCENES / "scene_2.jpg"), "facemask-deit", "nan", InvalidRequestError, "from 0 to 1"),
    ],
)
def test_bad_input_is_refused_with_the_sentence(image, model, score, error, fragment):
    with pytest.raises(error, match=fragment):
        make_service().detect_faces(image, model, score)


def test_the_detector_is_safe_to_share_between_threads():
    detector = shared_detector()
    scene = photo(SCENES / "scene_1.jpg")
    counts = []

    def detect() -> None:
        counts.append(len(detector.detect(scene)))

    threads = [threading.Thread(target=detect) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [3] * 6


@pytest.mark.parametrize(
    ("label", "masked"),
    [("Mask", True), ("No Mask", False), ("with_mask", True), ("without_mask", False), ("LABEL_0", None)],
)
def test_mask_labels_are_read_from_the_checkpoint_names(label, masked):
    assert wears_mask(label) is masked
