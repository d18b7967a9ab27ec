"""Faces: find every face in a photo and judge each with a face-mask model."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from beit_demo.catalog import CatalogEntry
from beit_demo.hub import ProgressCallback
from beit_demo.images import shrink
from beit_demo.inference.faces import FoundFaces, JudgedFace, find_faces, judge_faces
from beit_demo.models.face_detector import shared_detector
from beit_demo.service.core import ImageInput, ServiceCore, WeightsOrigin, face_entry, parse_face_score

DEFAULT_FACE_SCORE = 0.5  # the detector's own threshold in MediaPipe; 9 of 9 faces in the test scenes, no false ones


@dataclass(frozen=True)
class FaceReport:
    """The faces of one photo as one face-mask model judges them."""

    entry: CatalogEntry
    photo: Image.Image  # the upload at full resolution, after EXIF orientation: the boxes are in its pixels
    faces: tuple[JudgedFace, ...]  # best face score first
    found: FoundFaces
    min_face_score: float
    whole_photo: dict[str, float] | None  # the model's answer for the whole photo, when no face was found
    seconds: float
    device: str
    precision: str
    origin: WeightsOrigin


def detect_faces(
    core: ServiceCore,
    image: ImageInput,
    model_key: str,
    min_face_score: float | str | None = DEFAULT_FACE_SCORE,
    progress: ProgressCallback | None = None,
) -> FaceReport:
    """Find every face in a photo and classify each with a face-mask model (all faces in one forward pass).

    Raises:
        DemoError: a model that does not classify faces, a bad score or image, or a model that cannot load.
    """
    entry = face_entry(core.entry(model_key))
    return judge(core, entry, image, parse_face_score(min_face_score), progress)


def judge(
    core: ServiceCore,
    entry: CatalogEntry,
    image: ImageInput,
    min_face_score: float,
    progress: ProgressCallback | None,
    found: FoundFaces | None = None,
) -> FaceReport:
    """Find the faces (unless ``found`` says where they are in this very photo) and judge each with ``entry``."""
    started = time.perf_counter()
    with core.model_and_image(entry, image, None, progress) as (loaded, origin, photo):
        found = found or find_faces(shared_detector(), photo, min_face_score)
        faces = tuple(judge_faces(core.batcher, loaded, photo, found))
        whole_photo = None
        if not faces:  # say what the model makes of the photo instead
            picture = shrink(photo, 2 * entry.input_size)
            whole_photo = core.batcher.classify(loaded, picture, len(loaded.labels)).scores
    seconds = time.perf_counter() - started
    return FaceReport(
        entry, photo, faces, found, min_face_score, whole_photo, seconds, loaded.device, loaded.precision, origin
    )
