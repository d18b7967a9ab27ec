"""Live: a camera stream, answered frame by frame with bounded latency; faces found, tracked and judged.

Per frame, for a face-mask model: the faces are found on a shrunk copy of the frame, matched to the tracks of the
frames before (`beit_demo.inference.tracking`), and only the faces that are due (a new track, one not classified for
a while, one that moved a lot) are classified, all in one batched pass through the shared batcher, holding a work slot
like any request. That pass runs beside the stream (one at a time per session): the frames go on being answered with
the labels known so far, and the new ones are applied to the first frame after it ends. Each track's probabilities
are smoothed over time, and the frame is drawn with the boxes and their smoothed labels. A model without faces
classifies the whole frame a few times a second and keeps its last answer.

The newest frame is always the one answered: a frame that arrives while the session is busy waits in a one-frame
mailbox, and a newer one replaces it (the older is dropped, never queued).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from beit_demo.catalog import CatalogEntry
from beit_demo.errors import DemoError, ImageLoadError
from beit_demo.inference.faces import MIN_FACE_SIDE, JudgedFace, crop_box, wears_mask
from beit_demo.inference.tracking import FaceTracker, Track
from beit_demo.service.classify import adapted
from beit_demo.service.core import ServiceCore, parse_face_score

DETECT_SIDE = 320  # the frame's longer side when faces are searched (a 640 x 480 frame is searched at 320 x 240)
WHOLE_FRAME_EVERY_S = 0.3  # a model without faces classifies the frame at most this often
NEW_STREAM_AFTER_S = 2.0  # a frame this long after the last one starts the session afresh (a new stream)
LIVE_TOP_K = 3
_COLOURS = {True: (46, 125, 50), False: (198, 40, 40), None: (21, 101, 192)}  # mask, no mask, a label naming none


@dataclass(frozen=True)
class LiveAnswer:
    """One answered frame."""

    frame: Image.Image  # the frame with the boxes and labels drawn (or the live top-1)
    faces: tuple[JudgedFace, ...] | None  # for a face model: each face with its smoothed probabilities
    scores: dict[str, float] | None  # for another model: its latest top-k of the whole frame
    classified: int  # face crops (or whole frames) classified for this frame
    seconds: dict[str, float]  # stage -> seconds: detect, track, classify, draw


@dataclass
class LiveSession:
    """One visitor's stream: the tracks, the last whole-frame answer, the frame waiting, what was dropped."""

    model_key: str = ""
    tracker: FaceTracker = field(default_factory=FaceTracker)
    scores: dict[str, float] | None = None  # a whole-frame model's last answer
    scored_at: float = -1e9
    last_frame_at: float = -1e9
    answered: int = 0
    dropped: int = 0  # frames replaced by a newer one before they were answered
    _job: threading.Thread | None = None  # the faces' classification running beside the stream, if any
    error: DemoError | None = None  # why the last classification beside the stream failed, for the next frame
    _finished: list[tuple[int, dict[str, float], tuple, float]] = field(default_factory=list)  # id, scores, box, when
    _pending: Image.Image | None = None
    _mailbox: threading.Lock = field(default_factory=threading.Lock)
    _busy: threading.Lock = field(default_factory=threading.Lock)

    def offer(self, frame: Image.Image) -> None:
        """Put ``frame`` in the mailbox; one already waiting there is dropped."""
        with self._mailbox:
            if self._pending is not None:
                self.dropped += 1
            self._pending = frame

    def take(self) -> Image.Image | None:
        with self._mailbox:
            frame, self._pending = self._pending, None
        return frame

    def restart(self, model_key: str) -> None:
        """Forget the tracks and answers (a new stream, or another model)."""
        self.model_key, self.tracker, self.scores, self.scored_at = model_key, FaceTracker(), None, -1e9
        with self._mailbox:
            self._finished = []

    @property
    def classifying(self) -> bool:
        return self._job is not None and self._job.is_alive()

    def finish(self, tracker: FaceTracker, results: list[tuple[int, dict[str, float], tuple, float]]) -> None:
        """Keep a classification's results for the next frame, unless the session restarted meanwhile (its track
        ids would name the new tracker's faces, and its labels may be another model's)."""
        with self._mailbox:
            if tracker is self.tracker:
                self._finished.extend(results)

    def apply_finished(self) -> None:
        """Blend the classifications that ended since the last frame into their tracks (ended tracks are skipped)."""
        with self._mailbox:
            finished, self._finished = self._finished, []
        tracks = {track.id: track for track in self.tracker.tracks}
        for track_id, scores, box, when in finished:
            if track_id in tracks:
                tracks[track_id].update_scores(scores, when)
                tracks[track_id].classified_box = box


def live_frame(
    core: ServiceCore,
    session: LiveSession,
    frame: Image.Image | np.ndarray,
    model_key: str,
    min_face_score: float | str = 0.5,
    now: float | None = None,
    wait: bool = False,
) -> LiveAnswer | None:
    """Answer the newest frame of ``session``; None when another call is answering it already (it takes this frame,
    or a newer one).

    Args:
        now: the frame's time in seconds (default: the monotonic clock), for the tracks' schedule.
        wait: wait for the faces' classification this frame starts, and show its labels in this answer.

    Raises:
        DemoError: a bad model key or face score, a frame over the pixel limit, a model that cannot be had.
    """
    picture = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if picture.width * picture.height > core.settings.max_pixels:
        raise ImageLoadError("The camera frame is larger than this demo accepts: pick a smaller camera resolution.")
    entry, score = core.entry(model_key), parse_face_score(min_face_score)
    session.offer(picture.convert("RGB"))
    if not session._busy.acquire(blocking=False):
        return None
    try:
        answer = None
        while (newest := session.take()) is not None:
            moment = time.monotonic() if now is None else now
            if entry.key != session.model_key or moment - session.last_frame_at > NEW_STREAM_AFTER_S:
                session.restart(entry.key)
            session.last_frame_at = moment
            if entry.classifies_faces:
                answer = _faces_frame(core, session, entry, newest, score, moment, wait)
            else:
                answer = _whole_frame(core, session, entry, newest, moment)
            session.answered += 1
        return answer
    finally:
        session._busy.release()


def _faces_frame(
    core: ServiceCore,
    session: LiveSession,
    entry: CatalogEntry,
    frame: Image.Image,
    min_score: float,
    now: float,
    wait: bool,
) -> LiveAnswer:
    from beit_demo.models.face_detector import shared_detector

    if session.error is not None:  # the classification beside the stream failed: say why before any new work
        error, session.error = session.error, None
        raise error
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    scale = max(frame.width, frame.height) / DETECT_SIDE
    small = frame.resize((round(frame.width / scale), round(frame.height / scale)), Image.Resampling.BILINEAR)
    detected = shared_detector().detect(small, min_score, quarters=False)
    boxes = [tuple(value * scale for value in face.box) for face in detected]
    kept = [(box, face.score) for box, face in zip(boxes, detected, strict=True) if _side(box) >= MIN_FACE_SIDE]
    seconds["detect"] = time.perf_counter() - started
    started = time.perf_counter()
    tracks = session.tracker.update([box for box, _ in kept], [score for _, score in kept])
    session.apply_finished()
    due = [] if session.classifying else [track for track in tracks if track.due(now)]
    seconds["track"] = time.perf_counter() - started
    started = time.perf_counter()
    if due:
        crops = [frame.crop(crop_box(track.box, frame.width, frame.height)) for track in due]
        boxes = [track.box for track in due]
        ids = [track.id for track in due]
        job = threading.Thread(
            target=_classify_faces,
            args=(core, entry, session, session.tracker, ids, boxes, crops, now),
            daemon=True,
        )
        session._job = job
        job.start()
        if wait:
            job.join()
            session.apply_finished()
    seconds["classify"] = time.perf_counter() - started
    started = time.perf_counter()
    drawn = _draw_tracks(frame, tracks)
    seconds["draw"] = time.perf_counter() - started
    faces = tuple(
        JudgedFace(tuple(round(value) for value in track.box), track.face_score, track.scores) for track in tracks
    )
    return LiveAnswer(drawn, faces, None, len(due), seconds)


def _classify_faces(
    core: ServiceCore,
    entry: CatalogEntry,
    session: LiveSession,
    tracker: FaceTracker,
    ids: list[int],
    boxes: list,
    crops: list,
    frame_time: float,
) -> None:
    """The due faces of one frame in one batched pass, beside the stream; the results wait for the next frame, dated
    on the frames' clock (the frame's time plus how long the pass took)."""
    started = time.monotonic()
    try:
        with core.borrow(entry, None) as (loaded, _), core.work_slots:
            predictions = core.batcher.classify_together(loaded, crops, top_k=len(loaded.labels))
    except DemoError as err:  # a model that cannot be had: the next frame says why
        session.error = err
        return
    finished = frame_time + time.monotonic() - started
    results = [
        (number, prediction.scores, box, finished)
        for number, prediction, box in zip(ids, predictions, boxes, strict=True)
    ]
    session.finish(tracker, results)


def _whole_frame(
    core: ServiceCore, session: LiveSession, entry: CatalogEntry, frame: Image.Image, now: float
) -> LiveAnswer:
    started = time.perf_counter()
    classified = 0
    if now - session.scored_at >= WHOLE_FRAME_EVERY_S:
        picture = adapted(entry.input_adapter, frame)
        with core.borrow(entry, None) as (loaded, _), core.work_slots:
            session.scores = core.batcher.classify(loaded, picture, LIVE_TOP_K).scores
        session.scored_at, classified = now, 1
    seconds = {"classify": time.perf_counter() - started}
    started = time.perf_counter()
    drawn = frame.copy()
    if session.scores:
        label, probability = next(iter(session.scores.items()))
        _label_box(ImageDraw.Draw(drawn), (8, 8), f"{label} {probability:.0%}", _COLOURS[None], frame.height)
    seconds["draw"] = time.perf_counter() - started
    return LiveAnswer(drawn, None, session.scores, classified, seconds)


def _draw_tracks(frame: Image.Image, tracks: list[Track]) -> Image.Image:
    """The frame with a box per track, coloured by its smoothed label, captioned with it and its probability."""
    drawn = frame.copy()
    draw = ImageDraw.Draw(drawn)
    line = max(2, round(frame.height / 160))
    for track in tracks:
        colour = _COLOURS[wears_mask(track.label) if track.scores else None]
        x0, y0, x1, y1 = (round(value) for value in track.box)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=line)
        caption = f"{track.label} {track.scores[track.label]:.0%}" if track.scores else "..."
        _label_box(draw, (x0, max(0, y0 - round(frame.height / 20))), caption, colour, frame.height)
    return drawn


def _label_box(draw: ImageDraw.ImageDraw, corner: tuple[int, int], text: str, colour: tuple, height: int) -> None:
    font = _font(max(12, round(height / 30)))
    left, top, right, bottom = draw.textbbox(corner, text, font=font)
    draw.rectangle((left - 3, top - 2, right + 3, bottom + 2), fill=colour)
    draw.text(corner, text, fill=(255, 255, 255), font=font)


@functools.cache
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _side(box: tuple[float, ...]) -> float:
    return min(box[2] - box[0], box[3] - box[1])
