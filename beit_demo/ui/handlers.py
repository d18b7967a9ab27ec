"""Gradio <-> service: the functions the page's events call.

Each handler unpacks Gradio's inputs, calls `DemoService`, and packs the result into component values with the
texts of `beit_demo.ui.texts`. `shows_errors` is the one place a `DemoError` becomes the `gr.Error` a visitor reads,
so a new error needs no edit here; any other exception stays hidden behind Gradio's generic error.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import secrets
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.processing_utils import ssrf_protected_download
from gradio.utils import get_upload_folder
from PIL import Image

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, CatalogEntry
from beit_demo.errors import DemoError, InvalidRequestError
from beit_demo.hub import ProgressCallback
from beit_demo.hub_ids import catalog_entry_for, parse_hub_id
from beit_demo.inference.heatmaps import heatmap_image, overlay_image
from beit_demo.service import (
    MAX_HUB_MODELS_COMPARED,
    Comparison,
    DemoService,
    Explanation,
    FaceReport,
    ImageInput,
)
from beit_demo.ui import texts
from beit_demo.ui.components import ImageUrl

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
MAX_BATCH_FILES = 64  # images in one batch from the page or the API (the command line has no cap)
ANNOTATED_SIDE = 1024  # the annotated photo is sent back at most this large (the faces JSON has full-size boxes)


class ClassifyMode(StrEnum):
    """What the Classify tab's button runs (each mode has its own button, so /classify keeps its three inputs)."""

    PLAIN = "classify"  # the model on the photo, through its input adapter if it has one
    AS_IS = "as is"  # a model with an input adapter, on the photo as it is ("Adapt ..." unticked)
    FACES = "faces"  # a face model, face by face ("Find faces first" ticked)


def catalog_entry(model: str | None) -> CatalogEntry | None:
    """The catalog entry of a key (or of a catalog repo typed as a Hub id), else None: never asks the Hub."""
    entry = next((entry for entry in CATALOG if entry.key == model), None)
    if entry is None and isinstance(model, str) and "/" in model:
        with contextlib.suppress(DemoError):
            entry = catalog_entry_for(parse_hub_id(model))
    return entry


def panel_slots(models: list[str] | None) -> list[str | None]:
    """The Compare tab's panels, in order: one per catalog model (its key, or None when not chosen), then one per
    model typed from the Hub (its id as typed, or None)."""
    chosen = [catalog_entry(model).key if catalog_entry(model) else model for model in models or []]
    typed = [model for model in dict.fromkeys(chosen) if catalog_entry(model) is None][:MAX_HUB_MODELS_COMPARED]
    catalog = [entry.key if entry.key in chosen else None for entry in CATALOG]
    return catalog + [_nth(typed, index) for index in range(MAX_HUB_MODELS_COMPARED)]


def classify_mode(model_key: str, find_faces: bool, adapt: bool) -> ClassifyMode:
    """The mode the Classify tab is in for this model and these two ticks."""
    entry = catalog_entry(model_key)
    if entry is not None and entry.classifies_faces and find_faces:
        return ClassifyMode.FACES
    if entry is not None and entry.input_adapter and not adapt:
        return ClassifyMode.AS_IS
    return ClassifyMode.PLAIN


def shows_errors(handler: Callable) -> Callable:
    """Wrap a handler (plain or generator) so a `DemoError` reaches the visitor as its own sentence."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except DemoError as err:
                raise gr.Error(str(err)) from None

        return generator

    @functools.wraps(handler)
    def plain(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except DemoError as err:
            raise gr.Error(str(err)) from None

    return plain


def example_samples(entry: CatalogEntry) -> list[list[str]]:
    """The example images that suit ``entry``, as `gr.Dataset` samples."""
    return [[str(EXAMPLES_DIR / name)] for name in entry.examples if (EXAMPLES_DIR / name).is_file()]


def _quiet_progress(*_args, **_kwargs) -> None:
    """For a handler called by another: its own progress bar is shown already."""


def _progress_reporter(progress: gr.Progress) -> ProgressCallback:
    return lambda fraction, text: progress(fraction, desc=text)


def _save_image(image: Image.Image, folder: str, suffix: str, **options) -> str:
    """Save an output image under a name of its own in Gradio's cache, and return the path."""
    # Given the image itself, Gradio names the file after its content and rewrites it in place, so two requests with
    # the same output would rewrite the file one of their clients is downloading.
    directory = Path(get_upload_folder()) / folder
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}{suffix}"
    image.save(path, **options)
    return str(path)


def _save_model_input(view: Image.Image) -> str:
    # Lossless keeps the exact pixels; method 0 encodes in ~2 ms instead of ~50 ms for a slightly larger file.
    return _save_image(view, "model-views", ".webp", format="WEBP", lossless=True, method=0)


def _annotated_photo(report: FaceReport) -> tuple[str, list[tuple[np.ndarray, str]]]:
    """The photo, at most ANNOTATED_SIDE px a side, with a box per face labelled with the model's answer."""
    photo = report.photo.copy()
    photo.thumbnail((ANNOTATED_SIDE, ANNOTATED_SIDE))
    scale = photo.width / report.photo.width
    masks = [
        (_box_mask(tuple(round(value * scale) for value in face.box), photo.size), face.label) for face in report.faces
    ]
    return _save_image(photo, "faces", ".jpg", format="JPEG", quality=90), masks


def _box_mask(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """A box drawn as `gr.AnnotatedImage` draws one (a 3 px border over a half-tinted inside), with a faint dot of
    its own in a corner.

    Gradio names each mask file after its content and rewrites it in place: two visitors with a face in the same
    place would share the file, and one's download was cut while the other's answer rewrote it (seen under load).
    The dot, at most a quarter opaque at a random place of the top row, makes every mask its own file.
    """
    width, height = size
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 0.5
    for rows, columns in ((slice(y0, y1), slice(x0, x0 + 3)), (slice(y0, y1), slice(x1 - 3, x1))):
        mask[rows, columns] = 1.0
    mask[y0 : y0 + 3, x0:x1] = mask[y1 - 3 : y1, x0:x1] = 1.0
    marker = secrets.randbelow(width * 60)
    mask[0, marker % width] = max(mask[0, marker % width], (1 + marker // width) / 255)
    return mask


class Handlers:
    """The event handlers of the page, bound to one service."""

    def __init__(self, service: DemoService):
        self.service = service

    @shows_errors
    def classify(self, image: ImageInput, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Classify one image with one model: its most likely classes, with their probabilities.

        Args:
            image: the photo (JPEG, PNG, WebP, GIF or BMP).
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            top_k: how many classes to return, 1 to 20.

        Returns:
            The top-k classes (label and confidences), a status line (model, device, time, where the weights came
            from), and the exact input the model saw after resizing and cropping.
        """
        return self._classify(image, model_key, top_k, progress, adapt=True)

    @shows_errors
    def classify_as_is(self, image: ImageInput, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """As `classify`, without the model's input adapter."""
        return self._classify(image, model_key, top_k, progress, adapt=False)

    def _classify(self, image: ImageInput, model_key: str, top_k: float, progress: gr.Progress, adapt: bool):
        result = self.service.classify(image, model_key, top_k, _progress_reporter(progress), adapt=adapt)
        return result.scores, texts.status_line(result), _save_model_input(result.model_input)

    @shows_errors
    def detect_faces(self, image: ImageInput, model_key: str, min_face_score: float, progress=gr.Progress()):  # noqa: B008
        """Find every face in a photo and judge each with a face-mask model (mask or no mask).

        Args:
            image: the photo, with one or many people.
            model_key: a face-mask model: facemask-beit or facemask-deit.
            min_face_score: the detector's least confidence for a face, 0 to 1 (0.5 is a good default).

        Returns:
            The photo with a labelled box on each face, the faces as JSON (box in the photo's pixels, label,
            probability, face score; best face first), and a one-line summary.
        """
        report = self.service.detect_faces(image, model_key, min_face_score, _progress_reporter(progress))
        return _annotated_photo(report), texts.faces_json(report), texts.face_summary(report)

    def classify_example(
        self, image: str, model_key: str, top_k: float, find_faces: bool, adapt: bool, min_face_score: float
    ):
        """An example was clicked: run what the button in view runs (faces first for a face model)."""
        mode = classify_mode(model_key, find_faces, adapt)
        if mode is ClassifyMode.FACES:
            return gr.skip(), gr.skip(), gr.skip(), *self.detect_faces(image, model_key, min_face_score)
        run = self.classify if mode is ClassifyMode.PLAIN else self.classify_as_is
        return *run(image, model_key, top_k), gr.skip(), gr.skip(), gr.skip()

    @shows_errors
    def select_model(self, model_key: str):
        """The card and examples that follow a change of model (a typed Hub id is checked and resolved here); old
        predictions are cleared."""
        entry = self.service.entry(model_key)
        examples = example_samples(entry) if entry.from_catalog else example_samples(catalog_entry(DEFAULT_MODEL_KEY))
        return texts.model_card(entry), gr.Dataset(samples=examples), None, "", None

    def model_from_url(self, request: gr.Request) -> str:
        """The model named by ``?model=KEY`` or ``?model=owner/name`` in a shared link, else the default.

        Only the syntax of a Hub id is checked here; choosing it then resolves it like a typed one.
        """
        model = request.query_params.get("model", "") if request else ""
        if catalog_entry(model) is not None:
            return model
        try:
            return str(parse_hub_id(model)) if self.service.settings.hub_models else DEFAULT_MODEL_KEY
        except DemoError:
            return DEFAULT_MODEL_KEY

    @shows_errors
    def compare(self, image: ImageInput, model_keys: list[str], top_k: float, progress=gr.Progress()):  # noqa: B008
        """Compare several models on one image: each one's top-k, side by side.

        Yields as each model finishes, so fast ones show while others download.

        Args:
            image: the photo.
            model_keys: the models: catalog keys (beit-in22k, facemask-deit, ...) or Hub ids owner/name (at most 2).
            top_k: how many classes each model returns, 1 to 20.

        Returns:
            One panel per catalog model (shown for those asked for; a face-mask model's panel gives the share of
            faces per label), then a Markdown table of every model's top-1, time and weights, with whether models
            of one label space agree.
        """
        for comparison in self.service.compare(image, model_keys, top_k, _progress_reporter(progress)):
            yield self._compare_outputs(comparison)[: len(CATALOG) + 1]

    @shows_errors
    def compare_view(self, image: ImageInput, model_keys: list[str], top_k: float, progress=gr.Progress()):  # noqa: B008
        """As `compare`, with the page's panels for models typed from the Hub after the summary."""
        for comparison in self.service.compare(image, model_keys, top_k, _progress_reporter(progress)):
            yield self._compare_outputs(comparison)

    @staticmethod
    def _compare_outputs(comparison: Comparison) -> list:
        """One `gr.Label` update per catalog model (shown only for those chosen), the summary, then one per panel
        for models from the Hub."""
        chosen = {entry.key for entry in comparison.entries}
        hub_entries = [entry for entry in comparison.entries if not entry.from_catalog]

        def panel(entry: CatalogEntry | None) -> gr.Label:
            if entry is None or entry.key not in chosen:
                return gr.Label(value=None, visible=False)
            outcome = comparison.outcomes.get(entry.key)
            scores = None
            if outcome and outcome.classification:
                scores = outcome.classification.scores
            elif outcome and outcome.faces:
                scores = texts.face_shares(outcome.faces)
            return gr.Label(value=scores, label=texts.compare_caption(entry, outcome is not None), visible=True)

        hub_panels = [panel(_nth(hub_entries, index)) for index in range(MAX_HUB_MODELS_COMPARED)]
        return [*(panel(entry) for entry in CATALOG), texts.compare_summary(comparison), *hub_panels]

    @shows_errors
    def explain(self, image: ImageInput, model_key: str, label: str, method: str, progress=gr.Progress()):  # noqa: B008
        """Explain a prediction: which parts of the photo made the model give a class.

        Args:
            image: the photo.
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            label: the class to explain; empty for the model's top-1.
            method: "gradient x activation" (default: for the class) or "attention rollout" (for any class).

        Returns:
            The relevance drawn over the photo, the relevance alone as a greyscale heatmap (brighter is more
            relevant; the photo's aspect, at most 1024 px a side), and the class explained.
        """
        photo, overlay, heatmap, explained = self._explanation(image, model_key, label, method, progress)
        return overlay, heatmap, explained

    @shows_errors
    def explain_view(self, image: ImageInput, model_key: str, label: str, method: str, progress=gr.Progress()):  # noqa: B008
        """As `explain`, with the photo and the overlay side by side for the page's slider."""
        photo, overlay, heatmap, explained = self._explanation(image, model_key, label, method, progress)
        return (photo, overlay), heatmap, explained

    @shows_errors
    def explain_faces_view(
        self,
        image: ImageInput,
        model_key: str,
        method: str,
        min_face_score: float,
        progress=gr.Progress(),  # noqa: B008
    ):
        """The faces view's explanation: each face's own label on its crop, the photo and the overlay side by side."""
        progress(0.0, desc="Explaining each face ...")
        result = self.service.explain_faces(
            image, model_key, method or "", min_face_score, _progress_reporter(progress)
        )
        photo, overlay, _, explained = _saved_explanation(result)
        return (photo, overlay), explained

    def _explanation(self, image: ImageInput, model_key: str, label: str, method: str, progress) -> tuple:
        progress(0.0, desc="Explaining ...")
        return _saved_explanation(
            self.service.explain(image, model_key, label or "", method or "", _progress_reporter(progress))
        )

    @staticmethod
    def class_choices(prediction: dict | None) -> gr.Dropdown:
        """The Explain dropdown after a classification: empty (the top-1), then the classes shown, best first."""
        labels = [row["label"] for row in (prediction or {}).get("confidences", [])]
        return gr.Dropdown(choices=["", *labels], value="")

    def compare_explanations(self, image: ImageInput, model_keys: list[str]):
        """After a comparison: each chosen model's overlay for its own top-1, filled in as each is ready (catalog
        panels first, then those of the models from the Hub)."""
        slots = panel_slots(model_keys)
        overlays: dict[str, str] = {}
        for key in (slot for slot in slots if slot is not None):
            entry = catalog_entry(key)
            try:
                if entry is not None and entry.classifies_faces:  # its panel gives face-by-face answers
                    _, overlays[key], _, _ = _saved_explanation(self.service.explain_faces(image, key))
                else:
                    _, overlays[key], _, _ = self._explanation(image, key, "", "", _quiet_progress)
            except DemoError:
                continue  # the comparison itself already said why this model has no answer (or cannot be explained)
            yield [gr.Image(value=overlays.get(slot), visible=slot is not None) for slot in slots]

    @shows_errors
    def classify_batch(self, images: list | None, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Classify up to 64 images with one model, in batched forward passes.

        Args:
            images: the image files (JPEG, PNG, WebP, GIF or BMP), at most 64: uploads, data URLs or public URLs.
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            top_k: classes per image, 1 to 20.

        Returns:
            A table with one row per file (file, top-1, probability, top-k, error: a file that fails gets its sentence,
            the others go on), a summary line, and the same results as a CSV file (path, label, probability, top_k as
            JSON, error).
        """
        from beit_demo.bulk.results import write_csv

        files = [path for path in images or [] if path]
        if not files:
            raise InvalidRequestError("Upload one or more images first.")
        if len(files) > MAX_BATCH_FILES:
            raise InvalidRequestError(f"Upload at most {MAX_BATCH_FILES} images at once; you chose {len(files)}.")
        started = time.perf_counter()
        progress(0.0, desc="Loading the model ...")
        results, rows = [], []
        named = [_named_image(number, image) for number, image in enumerate(files, start=1)]
        for result in self.service.classify_files(named, model_key, top_k, _progress_reporter(progress)):
            results.append(result)
            rows.append(texts.batch_row(result))
            progress(len(results) / len(files), desc=f"{len(results)} of {len(files)} images")
            failed = sum(bool(each.error) for each in results)
            summary = texts.batch_summary(len(results), len(files), failed, time.perf_counter() - started)
            if len(results) < len(files):
                yield rows, summary, None
        directory = Path(get_upload_folder()) / "batches" / uuid.uuid4().hex
        directory.mkdir(parents=True)
        csv_path = directory / "classified.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as stream:
            write_csv(results, stream)
        yield rows, summary, str(csv_path)

    def model_table(self) -> list[list]:
        """One row per catalog model: where it is and how big it is on disk."""
        return texts.model_table(self.service.model_status())

    @shows_errors
    def prepare(self, model_key: str, progress=gr.Progress()):  # noqa: B008
        """Download and load a model ahead of use."""
        origin = self.service.prepare(model_key, _progress_reporter(progress))
        return texts.ready_line(self.service.entry(model_key), origin), self.model_table()


def _named_image(number: int, image: str | bytes) -> tuple[str, str | bytes]:
    """A batch's image as (the name its row shows, a path or the bytes); an `ImageUrl` is fetched first."""
    if isinstance(image, bytes):
        return f"image {number}", image
    if isinstance(image, ImageUrl):
        try:  # Gradio's own SSRF-protected download: public hosts only, every redirect checked again
            path = ssrf_protected_download(image, str(Path(get_upload_folder()) / "fetched"))
        except Exception:  # noqa: BLE001 - Gradio raises bare Exceptions for refused hosts and failed requests
            raise InvalidRequestError(
                f"The image at {image[:80]!r} could not be fetched: use a public http(s) URL, or send the image."
            ) from None
        return Path(path).name, path
    return Path(image).name, image


def _saved_explanation(result: Explanation) -> tuple[str, str, str, str]:
    """The photo, the overlay and the greyscale heatmap saved for the page, and the text saying what was explained."""
    save = functools.partial(_save_image, folder="explanations")
    return (
        save(result.photo, suffix=".jpg", format="JPEG", quality=90),
        save(overlay_image(result.photo, result.relevance), suffix=".jpg", format="JPEG", quality=90),
        save(heatmap_image(result.relevance), suffix=".png", format="PNG"),
        texts.explained_text(result),
    )


def _nth(items: list, index: int):
    return items[index] if index < len(items) else None
