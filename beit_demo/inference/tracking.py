"""Faces followed from frame to frame: boxes matched by overlap, an id per track, labels smoothed over time.

A live camera shows the same faces many times a second. Matching each frame's boxes to the tracks of the frame
before (the assignment that maximises overlap, scipy's `linear_sum_assignment`) keeps an id per face, so a face is
classified when its track starts and then only now and then, and its probabilities are averaged over time so that
its label does not flicker. NumPy and scipy only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

MATCH_IOU = 0.3  # a box continues a track when it overlaps the track's last box at least this much
MAX_MISSED = 3  # frames a track survives without a box (a blink of the detector); then it ends
RECLASSIFY_S = 0.7  # a track is classified again after this long
MOVED_IOU = 0.5  # ... or sooner, when its box overlaps the one it was classified at less than this
SMOOTHING = 0.35  # weight of a new classification in a track's running probabilities


def iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return inter / (area - inter)


@dataclass
class Track:
    """One face followed over frames."""

    id: int
    box: Box
    face_score: float
    missed: int = 0  # frames in a row without a matching box
    scores: dict[str, float] = field(default_factory=dict)  # smoothed probabilities; empty until first classified
    classified_at: float | None = None  # when it was last classified (seconds, the caller's clock)
    classified_box: Box | None = None  # its box then

    def due(self, now: float) -> bool:
        """Whether it should be classified in this frame: new, not classified for a while, or moved a lot."""
        if self.classified_at is None or self.classified_box is None:
            return True
        return now - self.classified_at >= RECLASSIFY_S or iou(self.box, self.classified_box) < MOVED_IOU

    def update_scores(self, probabilities: dict[str, float], now: float) -> None:
        """Blend a new classification into the running probabilities (the first one is taken as it is)."""
        if not self.scores:
            blended = dict(probabilities)
        else:
            labels = set(self.scores) | set(probabilities)
            blended = {
                label: (1 - SMOOTHING) * self.scores.get(label, 0.0) + SMOOTHING * probabilities.get(label, 0.0)
                for label in labels
            }
        self.scores = dict(sorted(blended.items(), key=lambda item: -item[1]))
        self.classified_at, self.classified_box = now, self.box

    @property
    def label(self) -> str:
        return next(iter(self.scores), "")


class FaceTracker:
    """The tracks of one camera stream."""

    def __init__(self):
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: Sequence[Box], face_scores: Sequence[float]) -> list[Track]:
        """Match this frame's boxes to the tracks; start a track per unmatched box, end those missed too long.

        Returns:
            The tracks seen in this frame, in the order of ``boxes``.
        """
        from scipy.optimize import linear_sum_assignment

        seen: list[Track | None] = [None] * len(boxes)
        matched_tracks: set[int] = set()
        if self.tracks and boxes:
            overlap = np.array([[iou(track.box, box) for box in boxes] for track in self.tracks])
            rows, columns = linear_sum_assignment(-overlap)
            for row, column in zip(rows, columns, strict=True):
                if overlap[row, column] >= MATCH_IOU:
                    track = self.tracks[row]
                    track.box, track.face_score, track.missed = tuple(boxes[column]), face_scores[column], 0
                    seen[column] = track
                    matched_tracks.add(row)
        for number, track in enumerate(self.tracks):
            if number not in matched_tracks:
                track.missed += 1
        self.tracks = [track for track in self.tracks if track.missed <= MAX_MISSED]
        for column, box in enumerate(boxes):
            if seen[column] is None:
                track = Track(self._next_id, tuple(box), face_scores[column])
                self._next_id += 1
                self.tracks.append(track)
                seen[column] = track
        return [track for track in seen if track is not None]
