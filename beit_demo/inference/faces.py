"""Faces in a photo: detect -> crop -> one batched classify.

The face-mask checkpoints were fine-tuned on face crops (Face-Mask18K): shown a whole photo they see a scene, and
their one label means nothing. So the faces are found first (`beit_demo.models.face_detector`), each is cropped
from the full-resolution photo with a margin like the training crops', and all crops go through the model in one
forward pass. Never imports gradio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

from beit_demo.inference.batching import BatchingClassifier
from beit_demo.models.face_detector import DetectedFace, FaceDetector
from beit_demo.models.loaded import LoadedModel

MAX_FACES = 32  # faces classified per photo; the best-scored ones are kept
MIN_FACE_SIDE = 20  # pixels: a smaller face holds too little for the classifier, and is skipped
# Added on each side, as a fraction of the box's longer side: the detector's box runs from the brows to the chin, the
# training crops show the whole head with a little background.
CROP_MARGIN = 0.25


@dataclass(frozen=True)
class FoundFaces:
    """The faces to classify in one photo, and what was left out."""

    faces: tuple[DetectedFace, ...]  # best first, at most the cap
    found: int  # faces the detector returned at the minimum score
    too_small: int  # of those, skipped for a side under MIN_FACE_SIDE pixels
    capped: int  # of those, dropped because the cap was reached


@dataclass(frozen=True)
class JudgedFace:
    """One face and what the model says of it."""

    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in the photo's pixels (after EXIF orientation)
    face_score: float  # how sure the detector is that this is a face
    scores: dict[str, float]  # label -> probability, most likely first

    @property
    def label(self) -> str:
        return next(iter(self.scores))

    @property
    def probability(self) -> float:
        return next(iter(self.scores.values()))


def find_faces(detector: FaceDetector, image: Image.Image, min_score: float, max_faces: int = MAX_FACES) -> FoundFaces:
    """The faces of ``image`` worth classifying: at least ``min_score``, not too small, at most ``max_faces``."""
    detected = detector.detect(image, min_score)
    usable = [face for face in detected if min(face.box[2] - face.box[0], face.box[3] - face.box[1]) >= MIN_FACE_SIDE]
    kept = tuple(usable[:max_faces])
    return FoundFaces(kept, len(detected), len(detected) - len(usable), len(usable) - len(kept))


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """The square around a face box, grown by CROP_MARGIN on each side, kept inside a ``width`` x ``height`` photo."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * CROP_MARGIN)
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = max(0, round(centre_x - side / 2)), max(0, round(centre_y - side / 2))
    return left, top, min(width, round(centre_x + side / 2)), min(height, round(centre_y + side / 2))


def judge_faces(
    batcher: BatchingClassifier, loaded: LoadedModel, image: Image.Image, found: FoundFaces
) -> list[JudgedFace]:
    """Classify every face of ``found`` with ``loaded``: all crops in one forward pass, every label scored."""
    if not found.faces:
        return []
    crops = [image.crop(crop_box(face.box, image.width, image.height)) for face in found.faces]
    predictions = batcher.classify_together(loaded, crops, top_k=len(loaded.labels))
    return [
        JudgedFace(tuple(round(value) for value in face.box), face.score, prediction.scores)
        for face, prediction in zip(found.faces, predictions, strict=True)
    ]


_NEGATIONS = frozenset({"no", "not", "without", "un"})


def wears_mask(label: str) -> bool | None:
    """Whether a face-mask model's label means a mask is worn; None for a label that names no mask.

    The labels come from each checkpoint's own config ("Mask" / "No Mask", "with_mask" / "without_mask", "nomask",
    ...), so they are read, not assumed.
    """
    text = label.casefold()
    if "mask" not in text:
        return None
    words = set(re.findall(r"[a-z]+", text.replace("mask", " mask ")))
    return not words & _NEGATIONS
