"""Live: the tracker, the smoothing, and the frame handler on sequences of real frames (faces known)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from PIL import Image, ImageDraw

from beit_demo.config import Settings
from beit_demo.inference.tracking import MAX_MISSED, RECLASSIFY_S, FaceTracker, Track
from beit_demo.service import DemoService, LiveSession
from beit_demo.ui.tabs.live import live_line
from tests.conftest import DATA

SCENE = DATA / "face-mask" / "scene_1.jpg"


def known_faces(name: str) -> list[list[int]]:
    return json.loads((DATA / "face-mask" / "faces.json").read_text())[name]


def frame_of(scene: Image.Image, shift: int, size=(640, 480)) -> Image.Image:
    """A 640 x 480 camera frame showing the whole scene 600 px wide, ``shift`` px right of centre (a pan moves it)."""
    width = 600
    shown = scene.resize((width, round(scene.height * width / scene.width)))
    frame = Image.new("RGB", size, (90, 90, 90))
    frame.paste(shown, ((size[0] - width) // 2 + shift, (size[1] - shown.height) // 2))
    return frame


def moved(box, dx, dy=0):
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def test_a_track_keeps_its_id_while_its_face_moves_and_a_new_face_gets_a_new_id():
    tracker = FaceTracker()
    first, second = (100, 100, 160, 170), (300, 120, 350, 180)
    ids = [track.id for track in tracker.update([first, second], [0.9, 0.8])]
    for step in range(1, 20):  # both faces drift 4 px a frame, listed in either order
        boxes = [moved(first, 4 * step, step), moved(second, -4 * step)]
        seen = tracker.update(boxes[::-1] if step % 2 else boxes, [0.9, 0.8])
        assert {track.id for track in seen} == set(ids)
        assert (seen[1] if step % 2 else seen[0]).id == ids[0]  # the first face keeps the first id
    newcomer = (500, 300, 560, 370)
    seen = tracker.update([moved(first, 80, 20), moved(second, -80), newcomer], [0.9, 0.8, 0.7])
    assert seen[2].id not in ids and [track.id for track in seen[:2]] == ids


def test_a_face_that_leaves_ends_its_track_and_a_blink_of_the_detector_does_not():
    tracker = FaceTracker()
    (track,) = tracker.update([(10, 10, 60, 60)], [0.9])
    for _ in range(MAX_MISSED):  # missed a few frames: still there, and it continues when seen again
        assert tracker.update([], []) == []
    assert [seen.id for seen in tracker.update([(12, 10, 62, 60)], [0.9])] == [track.id]
    for _ in range(MAX_MISSED + 1):
        tracker.update([], [])
    assert tracker.tracks == []
    (again,) = tracker.update([(12, 10, 62, 60)], [0.9])
    assert again.id != track.id  # the same place later is a new track


def test_one_noisy_classification_does_not_flip_a_label_but_a_lasting_change_does():
    track = Track(1, (0, 0, 10, 10), 0.9)
    for moment in range(5):
        track.update_scores({"Mask": 0.9, "No Mask": 0.1}, float(moment))
    track.update_scores({"Mask": 0.1, "No Mask": 0.9}, 5.0)  # one noisy frame
    assert track.label == "Mask"
    for moment in range(6, 9):  # the mask came off: the label follows within a few classifications
        track.update_scores({"Mask": 0.1, "No Mask": 0.9}, float(moment))
    assert track.label == "No Mask"


def test_a_face_is_classified_when_its_track_starts_then_only_when_due():
    track = Track(1, (0, 0, 100, 100), 0.9)
    assert track.due(0.0)
    track.update_scores({"Mask": 0.8, "No Mask": 0.2}, 0.0)
    assert not track.due(0.1)
    assert track.due(RECLASSIFY_S)
    track.box = (60, 0, 160, 100)  # moved a lot
    assert track.due(0.2)


def test_the_handler_tracks_the_known_faces_and_classifies_only_those_due():
    service = DemoService(Settings())
    scene = Image.open(SCENE).convert("RGB")
    session = LiveSession()
    first = service.live_frame(session, frame_of(scene, 0), "facemask-deit", now=100.0, wait=True)
    faces = len(known_faces(SCENE.name))
    assert len(first.faces) == faces and first.classified == faces
    assert live_line(first).startswith(f"{faces} faces: ")
    ids = {track.id for track in session.tracker.tracks}
    soon = service.live_frame(session, frame_of(scene, 4), "facemask-deit", now=100.1, wait=True)  # panned 4 px
    assert soon.classified == 0 and {track.id for track in session.tracker.tracks} == ids
    assert all(face.scores for face in soon.faces)  # still labelled, from the first classification
    later = service.live_frame(session, frame_of(scene, 8), "facemask-deit", now=101.0 + RECLASSIFY_S, wait=True)
    assert later.classified == faces and {track.id for track in session.tracker.tracks} == ids
    assert later.frame.size == (640, 480) and later.frame.tobytes() != frame_of(scene, 8).tobytes()  # boxes drawn


def numbered(scene: Image.Image, number: int) -> Image.Image:
    """A frame with its number painted as a grey level in the top-left corner."""
    frame = frame_of(scene, 0)
    ImageDraw.Draw(frame).rectangle((0, 0, 15, 15), fill=(number * 40,) * 3)
    return frame


def test_the_newest_frame_is_answered_and_the_frames_that_arrive_meanwhile_are_dropped():
    """Frames 2, 3 and 4 arrive while frame 1 is being answered (the model is still loading): the call answering
    frame 1 goes on with frame 4, the newest, and 2 and 3 are dropped, never answered."""
    service = DemoService(Settings())
    scene = Image.open(SCENE).convert("RGB")
    session = LiveSession()
    answers: list = []
    worker = threading.Thread(
        target=lambda: answers.append(service.live_frame(session, numbered(scene, 1), "facemask-deit", wait=True))
    )
    worker.start()
    deadline = time.monotonic() + 10
    while not session._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    others = [service.live_frame(session, numbered(scene, number), "facemask-deit") for number in (2, 3, 4)]
    worker.join(timeout=60)
    assert others == [None, None, None]  # nothing queued behind the busy call: they return at once
    (answer,) = answers
    assert answer.frame.getpixel((5, 5)) == (160, 160, 160)  # frame 4's corner
    assert (session.answered, session.dropped) == (2, 2)


def test_the_stream_goes_on_while_the_faces_are_classified_beside_it():
    """Without waiting, a frame is answered at once with the labels known so far; the labels of a classification
    that ran beside the stream reach the first frame after it ends."""
    service = DemoService(Settings())
    scene = Image.open(SCENE).convert("RGB")
    service.prepare("facemask-deit")
    session = LiveSession()
    first = service.live_frame(session, frame_of(scene, 0), "facemask-deit")
    assert first.classified == 3 and not any(face.scores for face in first.faces)  # started, not yet known
    deadline = time.monotonic() + 30
    while session.classifying and time.monotonic() < deadline:
        time.sleep(0.01)
    following = service.live_frame(session, frame_of(scene, 2), "facemask-deit")
    assert following.classified == 0 and all(face.scores for face in following.faces)
    assert live_line(following).startswith("3 faces: ")


def test_a_model_without_faces_classifies_the_frame_a_few_times_a_second_and_keeps_its_answer():
    service = DemoService(Settings())
    session = LiveSession()
    frame = Image.open(DATA / "photos" / "chelsea.jpg").convert("RGB")
    first = service.live_frame(session, frame, "fashion-mnist", now=50.0)
    again = service.live_frame(session, frame, "fashion-mnist", now=50.1)
    assert first.classified == 1 and again.classified == 0 and again.scores == first.scores
    assert service.live_frame(session, frame, "fashion-mnist", now=50.5).classified == 1
    assert "%" in live_line(again)


def test_a_frame_over_the_pixel_limit_is_refused_with_a_sentence():
    from dataclasses import replace

    from beit_demo.errors import ImageLoadError

    service = DemoService(replace(Settings(), max_pixels=100_000))
    with pytest.raises(ImageLoadError, match="camera frame is larger"):
        service.live_frame(LiveSession(), Image.new("RGB", (640, 480)), "facemask-deit")


def test_a_classification_that_ends_after_the_stream_restarted_is_not_applied_to_the_new_faces():
    session = LiveSession()
    old = session.tracker
    (track,) = old.update([(10, 10, 60, 60)], [0.9])
    session.restart("facemask-beit")  # another model: the new tracker's ids start at 1 again
    (new,) = session.tracker.update([(10, 10, 60, 60)], [0.9])
    assert new.id == track.id
    session.finish(old, [(track.id, {"Mask": 1.0}, track.box, 0.0)])
    session.apply_finished()
    assert new.scores == {}
    session.finish(session.tracker, [(new.id, {"Mask": 1.0}, new.box, 0.0)])
    session.apply_finished()
    assert new.label == "Mask"
