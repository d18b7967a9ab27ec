"""Explain: which parts of the photo made a model give a class; for a face-mask model, face by face."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from beit_demo.catalog import CatalogEntry
from beit_demo.hub import ProgressCallback
from beit_demo.inference.adapters import ADAPTERS
from beit_demo.inference.faces import JudgedFace, find_faces, judge_faces
from beit_demo.inference.heatmaps import display_size, onto_image
from beit_demo.models.face_detector import shared_detector
from beit_demo.service.core import ImageInput, ServiceCore, face_entry, parse_face_score
from beit_demo.service.faces import DEFAULT_FACE_SCORE

MAX_EXPLAINED_FACES = 6  # faces explained in one photo: each is an explanation of its own (12 passes each by default)


@dataclass(frozen=True)
class Explanation:
    """Where one model looked for one class: relevance over the photo (at most MAX_SIDE px a side).

    For a face-mask model explained face by face, ``faces`` holds the faces and each face's crop explains that
    face's own label; ``label`` is then "".
    """

    entry: CatalogEntry
    label: str  # the class explained
    method: str
    photo: Image.Image  # the upload after EXIF orientation, at the display size
    relevance: np.ndarray  # (height, width) of ``photo``, in [0, 1]; 0 where the model saw nothing
    seconds: float
    adapter: str = ""  # the input adapter that ran first, if any
    faces: tuple[JudgedFace, ...] = ()  # the faces explained, each for its own label


def explain(
    core: ServiceCore,
    image: ImageInput,
    model_key: str,
    label: str = "",
    method: str = "",
    progress: ProgressCallback | None = None,
) -> Explanation:
    """Which parts of the photo made the model give ``label`` (its top-1 for ""), by ``method`` ("": default).

    The explanation's passes run under the same queue and concurrency limits as a classification, one at a time
    beside the batched passes (`BatchingClassifier.exclusive`).

    Raises:
        DemoError: a bad key, image, label or method, or a model that cannot be fetched or loaded.
    """
    from beit_demo.inference import explain as explaining  # imports torch: on first use

    entry = core.entry(model_key)
    started = time.perf_counter()
    with core.model_and_image(entry, image, entry.input_size, progress) as (loaded, _, photo):
        explaining.check_explainable(loaded)
        adapted = ADAPTERS[entry.input_adapter](photo) if entry.input_adapter else None
        picture = adapted.image if adapted else photo
        patches = explaining.explain_patches(loaded, picture, label, method, core.batcher.exclusive)
        relevance = onto_image(patches.grid, loaded.processor, picture.size)
        if adapted:
            relevance = adapted.back_onto(relevance, photo.size)
        shown = photo.resize(display_size(photo.size), Image.Resampling.BILINEAR)
    relevance = np.asarray(Image.fromarray(relevance, mode="F").resize(shown.size, Image.Resampling.BILINEAR))
    seconds = time.perf_counter() - started
    return Explanation(entry, patches.label, patches.method, shown, relevance.clip(0, 1), seconds, entry.input_adapter)


def explain_faces(
    core: ServiceCore,
    image: ImageInput,
    model_key: str,
    method: str = "",
    min_face_score: float | str | None = DEFAULT_FACE_SCORE,
    progress: ProgressCallback | None = None,
) -> Explanation:
    """A face-mask model's explanation face by face: each face's own label, on that face's crop, laid back onto
    the photo (the faces view shows one label per face, so its explanation is one map per face).

    At most MAX_EXPLAINED_FACES faces are explained, the best-found first. Without a face, the whole photo's
    top-1 is explained, as the faces view then shows the whole photo's answer.

    Raises:
        DemoError: a model that does not classify faces, a bad score, image or method, or a model that cannot load.
    """
    from beit_demo.inference import explain as explaining  # imports torch: on first use

    entry = face_entry(core.entry(model_key))
    score, method = parse_face_score(min_face_score), explaining.pick_method(method)
    started = time.perf_counter()
    with core.model_and_image(entry, image, None, progress) as (loaded, _, photo):
        explaining.check_explainable(loaded)
        faces = tuple(judge_faces(core.batcher, loaded, photo, find_faces(shared_detector(), photo, score)))
        faces = faces[:MAX_EXPLAINED_FACES]
        size = display_size(photo.size)
        if faces:
            relevance = explaining.explain_faces(loaded, photo, faces, size, method, core.batcher.exclusive)
            shown = photo.resize(size, Image.Resampling.BILINEAR)
    if not faces:
        return explain(core, image, model_key, "", method, progress)
    return Explanation(entry, "", method, shown, relevance, time.perf_counter() - started, faces=faces)
