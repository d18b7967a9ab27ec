"""Finding faces: MediaPipe's BlazeFace, run by Google's LiteRT interpreter from a model file inside the package.

Nothing is downloaded: the model file ships in ``beit_demo/models/data`` (Apache-2.0, credited in the README), so
the detector works offline on a Space and here alike. BlazeFace is an SSD: it scores a fixed grid of anchors and
regresses a box for each. LiteRT runs the network only; turning its two output tensors into boxes (the anchor grid,
the box decoding and MediaPipe's weighted non-maximum suppression) is written here, because no maintained library
does it apart from MediaPipe itself, whose current wheels no longer ship the model.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

DATA_DIR = Path(__file__).resolve().parent / "data"
_RAW_SCORE_LIMIT = 80.0  # logits are clipped here before the sigmoid, as MediaPipe does (float32 overflows past ~88)
_NMS_OVERLAP = 0.3  # boxes overlapping the best one by more than this IoU are merged into it
# Quarters of the photo are searched too once its longer side has this many pixels; each covers this fraction of the
# width and of the height, so neighbouring quarters overlap by a fifth and a face up to that size is whole in one.
_TILE_MIN_SIDE = 480
_TILE_FRACTION = 0.6


@dataclass(frozen=True)
class DetectorModel:
    """One BlazeFace model file and the anchor layout it was trained with."""

    filename: str
    input_size: int  # the square the network sees
    grids: tuple[tuple[int, int], ...]  # (stride, anchors per cell) of each feature map, in output order


# Short range: faces within about 2 m of the camera. Full range: within about 5 m, so smaller faces in a crowd.
SHORT_RANGE = DetectorModel("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)))
FULL_RANGE = DetectorModel("face_detection_full_range.tflite", 192, ((4, 1),))


@dataclass(frozen=True)
class DetectedFace:
    """A face found in an image: its box in that image's pixels, and how sure the detector is."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float


def _anchors(model: DetectorModel) -> np.ndarray:
    """The (x, y) centre of every anchor, in units of the network's input, in the order of its outputs."""
    centres = []
    for stride, per_cell in model.grids:
        cells = model.input_size // stride
        steps = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        ys, xs = np.meshgrid(steps, steps, indexing="ij")  # row by row, left to right
        centres.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
    return np.concatenate(centres)


class FaceDetector:
    """BlazeFace on the CPU. Thread-safe: one interpreter, used by one caller at a time (each call takes a few ms).

    Args:
        model: which BlazeFace model to run.
        threads: CPU threads the interpreter may use.
    """

    def __init__(self, model: DetectorModel = FULL_RANGE, threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self.model = model
        self._interpreter = Interpreter(model_path=str(DATA_DIR / model.filename), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        boxes, scores = self._interpreter.get_output_details()
        self._boxes, self._scores = boxes["index"], scores["index"]
        self._anchors = _anchors(model)
        if boxes["shape"][1] != len(self._anchors):
            raise ValueError(f"{model.filename} has {boxes['shape'][1]} anchors, expected {len(self._anchors)}")
        self._lock = threading.Lock()

    def detect(self, image: Image.Image, min_score: float = 0.5, *, quarters: bool = True) -> list[DetectedFace]:
        """Faces in an RGB ``image``, best first, with boxes in ``image``'s pixels (clipped to it).

        The network sees a downscaled copy: whole, and for a photo of some size (unless ``quarters`` is False) also
        as four overlapping quarters, so that faces a tenth of the photo wide are still a dozen pixels or more in its
        small input. Boxes found twice (in the whole and in a quarter, or in two quarters) are merged.
        """
        # Just large enough that a quarter of it fills the network's input (more detail found no more faces).
        copy = _downscaled(image, round(self.model.input_size / _TILE_FRACTION))
        regions = [(0, 0, copy.width, copy.height)]
        if quarters and max(image.size) >= _TILE_MIN_SIDE:
            regions += _quarters(copy.width, copy.height)
        boxes, scores = [], []
        for region in regions:
            found_boxes, found_scores = self._detect_region(copy, region, min_score)
            boxes.append(found_boxes)
            scores.append(found_scores)
        factor = image.width / copy.width
        faces = []
        for box, score in _weighted_nms(np.concatenate(boxes), np.concatenate(scores)):
            x0, y0, x1, y1 = (float(value) * factor for value in box)
            faces.append(
                DetectedFace((max(0.0, x0), max(0.0, y0), min(image.width, x1), min(image.height, y1)), score)
            )
        return faces

    def _detect_region(
        self, image: Image.Image, region: tuple[int, int, int, int], min_score: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (in ``image``'s pixels) and scores of the faces the network finds in ``region`` of ``image``.

        A box that touches an edge of the region inside the image is dropped: it is a face cut by the region's
        border, and the overlapping regions see it whole.
        """
        left, top, right, bottom = region
        tensor, (offset_x, offset_y, scale) = self._letterbox(image.crop(region))
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw_boxes = self._interpreter.get_tensor(self._boxes)[0]
            raw_scores = self._interpreter.get_tensor(self._scores)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)))
        # From the network's input (0..1) to the region's pixels (undo the padding, then the scale), then the image's.
        offsets = np.array([offset_x, offset_y, offset_x, offset_y], dtype=np.float32)
        boxes = (self._decode(raw_boxes) * self.model.input_size - offsets) / scale + [left, top, left, top]
        keep = (scores >= min_score) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        margin = 2.0
        keep &= ~((left > 0) & (boxes[:, 0] <= left + margin))
        keep &= ~((top > 0) & (boxes[:, 1] <= top + margin))
        keep &= ~((right < image.width) & (boxes[:, 2] >= right - margin))
        keep &= ~((bottom < image.height) & (boxes[:, 3] >= bottom - margin))
        return boxes[keep], scores[keep]

    def _letterbox(self, image: Image.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
        """The network's input (1, size, size, 3) in [-1, 1], and (left padding, top padding, scale) in its pixels."""
        size = self.model.input_size
        scale = size / max(image.width, image.height)
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        resized = image.resize((width, height), Image.Resampling.BILINEAR)
        offset_x, offset_y = (size - width) // 2, (size - height) // 2
        canvas = np.zeros((size, size, 3), dtype=np.float32)  # the padding is mid-grey once scaled to [-1, 1]
        pixels = np.asarray(resized, dtype=np.float32) * (2.0 / 255.0) - 1.0
        canvas[offset_y : offset_y + height, offset_x : offset_x + width] = pixels
        return canvas[np.newaxis], (offset_x, offset_y, scale)

    def _decode(self, raw_boxes: np.ndarray) -> np.ndarray:
        """(x0, y0, x1, y1) per anchor in units of the input, from the offsets and sizes the network regresses."""
        size = self.model.input_size
        centres = raw_boxes[:, 0:2] / size + self._anchors
        halves = raw_boxes[:, 2:4] / size / 2
        return np.concatenate([centres - halves, centres + halves], axis=1)


def _downscaled(image: Image.Image, longest_side: int) -> Image.Image:
    """A copy no longer than ``longest_side`` on either side (the image itself when already smaller)."""
    factor = max(image.size) // longest_side
    if factor >= 2:  # an integer box filter first: it reads a 12 MP photo once, in about 7 ms here
        image = image.reduce(factor)
    scale = longest_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _quarters(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Four overlapping regions, one in each corner, each `_TILE_FRACTION` of the width and of the height."""
    tile_width, tile_height = round(width * _TILE_FRACTION), round(height * _TILE_FRACTION)
    return [
        (left, top, left + tile_width, top + tile_height)
        for top in (0, height - tile_height)
        for left in (0, width - tile_width)
    ]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box with each of ``boxes``."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = width * height
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return intersection / np.maximum(area + areas - intersection, 1e-9)


def _weighted_nms(boxes: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: each cluster of overlapping boxes becomes their
    score-weighted average, scored by its best member. Best first."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    merged = []
    remaining = np.ones(len(boxes), dtype=bool)
    for index in range(len(boxes)):
        if not remaining[index]:
            continue
        cluster = remaining & (_iou(boxes[index], boxes) > _NMS_OVERLAP)
        cluster[index] = True
        weights = scores[cluster]
        merged.append(((boxes[cluster] * weights[:, None]).sum(axis=0) / weights.sum(), float(scores[index])))
        remaining &= ~cluster
    return merged


@functools.cache
def shared_detector() -> FaceDetector:
    """The process's one detector, built on first use (about 10 ms)."""
    return FaceDetector()
