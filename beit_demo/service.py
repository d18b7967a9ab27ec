"""The demo's tasks behind one facade that knows no front end.

The Gradio handlers (and, later, the CLI, the MCP tools and the bulk engine) call `DemoService`; none of them
re-implements borrow -> run -> time -> report. Everything here is plain data in and out: the texts a visitor
reads are built from it by `beit_demo.ui.texts`, and a `DemoError` raised here is shown by the front end as it is.
torch is imported on the first request, not here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from beit_demo import hub
from beit_demo.catalog import CATALOG, CatalogEntry, get_entry
from beit_demo.config import Settings
from beit_demo.errors import DemoError, ImageLoadError, InvalidRequestError, UnknownModelError
from beit_demo.hub import ProgressCallback
from beit_demo.hub_ids import HubModelResolver, catalog_entry_for, parse_hub_id, quoted
from beit_demo.images import load_image, shrink
from beit_demo.inference.adapters import ADAPTERS
from beit_demo.inference.batching import BatchingClassifier
from beit_demo.inference.faces import FoundFaces, JudgedFace, find_faces, judge_faces
from beit_demo.inference.heatmaps import display_size, onto_image
from beit_demo.models.face_detector import shared_detector
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.registry import ModelRegistry, ModelStatus

MAX_TOP_K = 20  # more rows than this are unreadable in a label list
MAX_HUB_MODELS_COMPARED = 2  # typed Hub models in one comparison, beside the catalog's (the page has two panels)
DEFAULT_FACE_SCORE = 0.5  # the detector's own threshold in MediaPipe; 9 of 9 faces in the test scenes, no false ones
MAX_EXPLAINED_FACES = 6  # faces explained in one photo: each is an explanation of its own (12 passes each by default)
ImageInput = str | bytes | None  # a path or the file's bytes, as a front end receives it


@dataclass(frozen=True)
class WeightsOrigin:
    """Where the weights behind an answer came from."""

    in_memory: bool  # the model was loaded before this request asked for it
    downloaded: bool  # this request's load had to download files
    load_seconds: float


@dataclass(frozen=True)
class Classification:
    """One model's answer for one image."""

    entry: CatalogEntry
    scores: dict[str, float]  # label -> probability, most likely first
    seconds: float  # from asking for the model to having the scores (a download included)
    device: str
    precision: str
    origin: WeightsOrigin
    model_input: Image.Image | None  # what the model saw, when asked for
    adapter: str = ""  # the input adapter that ran first (its name in `ADAPTERS`), if any


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


@dataclass(frozen=True)
class CompareOutcome:
    """One model's part in a comparison: its answer (face by face for a face model), or why there is none."""

    entry: CatalogEntry
    classification: Classification | None
    error: str = ""
    faces: FaceReport | None = None


@dataclass(frozen=True)
class Comparison:
    """A comparison as it stands: the models asked for, and the outcomes of those finished so far."""

    entries: tuple[CatalogEntry, ...]  # in the order asked for
    outcomes: dict[str, CompareOutcome]  # catalog key -> outcome


@dataclass(frozen=True)
class FileResult:
    """One file of a batch: its top-k (most likely first), or the sentence saying why it has none."""

    name: str  # as the caller named it (a path, an upload's file name)
    scores: dict[str, float]  # label -> probability; empty when the file failed
    error: str = ""

    @property
    def label(self) -> str:
        return next(iter(self.scores), "")

    @property
    def probability(self) -> float | None:
        return next(iter(self.scores.values()), None)


@dataclass(frozen=True)
class CatalogStatus:
    """Where one catalog model is (disk, memory, downloading)."""

    entry: CatalogEntry
    status: ModelStatus


def parse_face_score(value: float | str | None) -> float:
    """A minimum face score from a front end, in 0..1.

    Raises:
        InvalidRequestError: not a number between 0 and 1.
    """
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = float("nan")
    if not 0.0 <= score <= 1.0:  # NaN fails too
        raise InvalidRequestError("The minimum face score must be a number from 0 to 1.")
    return score


def parse_top_k(value: float | str | None) -> int:
    """A top-k from a front end as a whole number in 1..MAX_TOP_K (larger ones are capped).

    Raises:
        InvalidRequestError: not a number.
    """
    try:
        return max(1, min(int(value), MAX_TOP_K))
    except (TypeError, ValueError):
        raise InvalidRequestError(f"Top-k must be a whole number from 1 to {MAX_TOP_K}.") from None


class DemoService:
    """Classify, compare and manage models, for any front end.

    Args:
        settings: the demo's settings (limits, precision, batching).
        registry: the models in memory; one bounded by ``settings`` when not given.
    """

    def __init__(self, settings: Settings, registry: ModelRegistry | None = None):
        self.settings = settings
        self.registry = registry or ModelRegistry(
            settings.max_models,
            settings.precision,
            max_downloads=settings.downloads,
            max_hub_models=settings.max_hub_models,
        )
        self.batcher = BatchingClassifier(settings.max_batch)
        self._work_slots = threading.BoundedSemaphore(settings.concurrency)  # requests holding decoded pixels
        self.resolver = HubModelResolver(settings.max_model_bytes)

    def entry(self, model: str) -> CatalogEntry:
        """The model a front end names: a catalog key, or a Hub id typed by a visitor (``owner/name[@revision]``).

        A Hub id is checked before anything is asked of the Hub, then resolved once (`beit_demo.hub_ids`): its
        commit, size, architecture and labels. A Hub id of a catalog model gives the catalog's entry.

        Raises:
            UnknownModelError: not a catalog key, and not a Hub id (or typed ids are switched off); lists the keys.
            InvalidRequestError: it looks like a Hub id but breaks the Hub's rules (paths, URLs, odd characters).
            ModelUnavailableError: a Hub model this demo will not load (gated, too big, not an image classifier...).
        """
        if isinstance(model, str) and model in _CATALOG_KEYS:
            return get_entry(model)
        if not (self.settings.hub_models and isinstance(model, str) and "/" in model):
            valid = ", ".join(entry.key for entry in CATALOG)
            typed = ", or a Hub id such as owner/name" if self.settings.hub_models else ""
            raise UnknownModelError(f"Unknown model {quoted(str(model))}. Valid models: {valid}{typed}.")
        hub_id = parse_hub_id(model)
        return catalog_entry_for(hub_id) or self.resolver.resolve(hub_id)

    def decode(self, image: ImageInput, input_size: int | None) -> Image.Image:
        """Decode an upload for a model that sees ``input_size`` pixels a side (None: at full resolution).

        Raises:
            InvalidRequestError: no image was given.
            ImageLoadError: the upload is not a usable image (the sentence says why), or is gone.
        """
        if image is None:
            raise InvalidRequestError("Upload, paste or snap a photo first.")
        try:
            min_size = None if input_size is None else 2 * input_size
            return load_image(image, max_pixels=self.settings.max_pixels, min_size=min_size)
        except FileNotFoundError:  # front ends delete old uploads
            raise ImageLoadError("The image is no longer on the server (uploads expire): upload it again.") from None

    @contextmanager
    def _borrow(
        self, entry: CatalogEntry, progress: ProgressCallback | None
    ) -> Iterator[tuple[LoadedModel, WeightsOrigin]]:
        """Borrow ``entry``'s model from the registry; yields it and where its weights came from."""
        in_memory = entry.source in self.registry.loaded_sources()
        with self.registry.use(entry.source, progress) as loaded:
            yield loaded, WeightsOrigin(in_memory, loaded.downloaded, loaded.load_seconds)

    @contextmanager
    def _model_and_image(
        self, entry: CatalogEntry, image: ImageInput, input_size: int | None, progress: ProgressCallback | None
    ) -> Iterator[tuple[LoadedModel, WeightsOrigin, Image.Image]]:
        """Borrow ``entry``'s model, then take a work slot and decode the image for it.

        A download happens before the work slot is taken, so requests for models in memory never wait behind it;
        at most ``settings.concurrency`` requests hold decoded pixels at once. An upload that is not a usable image
        is refused before anything is downloaded.
        """
        if entry.source not in self.registry.loaded_sources():
            self.decode(image, input_size)  # fail fast on a bad upload; these pixels are dropped at once
        with self._borrow(entry, progress) as (loaded, origin), self._work_slots:
            yield loaded, origin, self.decode(image, input_size)

    def _classify(
        self,
        entry: CatalogEntry,
        image: ImageInput,
        top_k: int,
        progress: ProgressCallback | None,
        with_input: bool,
        adapt: bool = True,
    ) -> Classification:
        started = time.perf_counter()
        adapter = entry.input_adapter if adapt else ""
        with self._model_and_image(entry, image, entry.input_size, progress) as (loaded, origin, picture):
            prediction = self.batcher.classify(loaded, _adapted(adapter, picture), top_k)
            seconds = time.perf_counter() - started
            model_input = _model_input(loaded, prediction.pixel_values) if with_input else None
        return Classification(
            entry, prediction.scores, seconds, loaded.device, loaded.precision, origin, model_input, adapter
        )

    def classify(
        self,
        image: ImageInput,
        model_key: str,
        top_k: float | str | None = 5,
        progress: ProgressCallback | None = None,
        adapt: bool = True,
    ) -> Classification:
        """Top-k predictions of one catalog model for one image, with the input the model saw.

        Args:
            adapt: run the model's input adapter first, if it has one (the Fashion-MNIST look).

        Raises:
            DemoError: a bad model key, top-k or image, or a model that cannot be fetched or loaded.
        """
        entry = self.entry(model_key)
        return self._classify(entry, image, parse_top_k(top_k), progress, with_input=True, adapt=adapt)

    def detect_faces(
        self,
        image: ImageInput,
        model_key: str,
        min_face_score: float | str | None = 0.5,
        progress: ProgressCallback | None = None,
    ) -> FaceReport:
        """Find every face in a photo and classify each with a face-mask model (all faces in one forward pass).

        Raises:
            DemoError: a model that does not classify faces, a bad score or image, or a model that cannot load.
        """
        entry = _face_entry(self.entry(model_key))
        return self._judge_faces(entry, image, parse_face_score(min_face_score), progress)

    def explain(
        self,
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
        from beit_demo.inference.explain import check_explainable, explain_patches  # imports torch: on first use

        entry = self.entry(model_key)
        started = time.perf_counter()
        with self._model_and_image(entry, image, entry.input_size, progress) as (loaded, _, photo):
            check_explainable(loaded)
            adapted = ADAPTERS[entry.input_adapter](photo) if entry.input_adapter else None
            picture = adapted.image if adapted else photo
            patches = explain_patches(loaded, picture, label, method, self.batcher.exclusive)
            relevance = onto_image(patches.grid, loaded.processor, picture.size)
            if adapted:
                relevance = adapted.back_onto(relevance, photo.size)
            shown = photo.resize(display_size(photo.size), Image.Resampling.BILINEAR)
        relevance = np.asarray(Image.fromarray(relevance, mode="F").resize(shown.size, Image.Resampling.BILINEAR))
        seconds = time.perf_counter() - started
        return Explanation(
            entry, patches.label, patches.method, shown, relevance.clip(0, 1), seconds, entry.input_adapter
        )

    def explain_faces(
        self,
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
        from beit_demo.inference.explain import check_explainable, explain_faces, pick_method  # imports torch

        entry = _face_entry(self.entry(model_key))
        score, method = parse_face_score(min_face_score), pick_method(method)
        started = time.perf_counter()
        with self._model_and_image(entry, image, None, progress) as (loaded, _, photo):
            check_explainable(loaded)
            faces = tuple(judge_faces(self.batcher, loaded, photo, find_faces(shared_detector(), photo, score)))
            faces = faces[:MAX_EXPLAINED_FACES]
            size = display_size(photo.size)
            if faces:
                relevance = explain_faces(loaded, photo, faces, size, method, self.batcher.exclusive)
                shown = photo.resize(size, Image.Resampling.BILINEAR)
        if not faces:
            return self.explain(image, model_key, "", method, progress)
        return Explanation(entry, "", method, shown, relevance, time.perf_counter() - started, faces=faces)

    def _judge_faces(
        self,
        entry: CatalogEntry,
        image: ImageInput,
        min_face_score: float,
        progress: ProgressCallback | None,
        found: FoundFaces | None = None,
    ) -> FaceReport:
        """Find the faces (unless ``found`` says where they are in this very photo) and judge each with ``entry``."""
        started = time.perf_counter()
        with self._model_and_image(entry, image, None, progress) as (loaded, origin, photo):
            found = found or find_faces(shared_detector(), photo, min_face_score)
            faces = tuple(judge_faces(self.batcher, loaded, photo, found))
            whole_photo = None
            if not faces:  # say what the model makes of the photo instead
                picture = shrink(photo, 2 * entry.input_size)
                whole_photo = self.batcher.classify(loaded, picture, len(loaded.labels)).scores
        seconds = time.perf_counter() - started
        return FaceReport(
            entry, photo, faces, found, min_face_score, whole_photo, seconds, loaded.device, loaded.precision, origin
        )

    def compare(
        self,
        image: ImageInput,
        model_keys: Sequence[str] | None,
        top_k: float | str | None = 3,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Comparison]:
        """Run several catalog models on one image, models already in memory first.

        Yields the comparison before the first model runs and after each one, so a front end can show fast
        answers while slow models download. One model failing does not stop the others: its outcome holds the
        sentence instead. The faces are found once, and every face-mask model judges those same faces.

        Raises:
            DemoError: no model ticked, a bad key, top-k or image (before any model runs).
        """
        entries = tuple(dict.fromkeys(self.entry(key) for key in model_keys or []))  # each model once, in order
        if not entries:
            raise InvalidRequestError("Tick at least one model to compare.")
        if sum(not entry.from_catalog for entry in entries) > MAX_HUB_MODELS_COMPARED:
            raise InvalidRequestError(
                f"Compare at most {MAX_HUB_MODELS_COMPARED} models from the Hub at once, beside the catalog's."
            )
        k = parse_top_k(top_k)
        self.decode(image, max(entry.input_size for entry in entries))  # a bad upload fails before any model runs
        in_memory = set(self.registry.loaded_sources())
        outcomes: dict[str, CompareOutcome] = {}
        found: FoundFaces | None = None  # the faces, found by the first face model's turn, for every other one
        yield Comparison(entries, dict(outcomes))
        for entry in sorted(entries, key=lambda entry: entry.source not in in_memory):
            try:
                if entry.classifies_faces:
                    report = self._judge_faces(entry, image, DEFAULT_FACE_SCORE, progress, found)
                    found = report.found
                    outcomes[entry.key] = CompareOutcome(entry, None, faces=report)
                else:
                    classification = self._classify(entry, image, k, progress, with_input=False)
                    outcomes[entry.key] = CompareOutcome(entry, classification)
            except DemoError as err:
                outcomes[entry.key] = CompareOutcome(entry, None, str(err))
            yield Comparison(entries, dict(outcomes))

    def classify_files(
        self,
        files: Sequence[tuple[str, ImageInput]],
        model_key: str,
        top_k: float | str | None = 5,
        progress: ProgressCallback | None = None,
    ) -> Iterator[FileResult]:
        """Classify many images with one model, ``settings.max_batch`` of them per forward pass.

        The batch tab, the command line and the Ray workers all run this. Yields one result per file, in order, as
        each pass finishes. A file that cannot be used gets its sentence in its result; the batch goes on.

        Args:
            files: (name, image) pairs: a path or the file's bytes, named as the caller wants them reported.

        Raises:
            DemoError: a bad model key or top-k, or a model that cannot be fetched or loaded (before any file).
        """
        entry = self.entry(model_key)
        k = parse_top_k(top_k)
        files = list(files)
        with self._borrow(entry, progress) as (loaded, _):
            for start in range(0, len(files), self.settings.max_batch):
                chunk = files[start : start + self.settings.max_batch]
                with self._work_slots:  # the chunk's pictures are shrunk to about twice the model's input
                    pictures = [self._picture_or_error(entry, image) for _, image in chunk]
                    good = [picture for picture in pictures if isinstance(picture, Image.Image)]
                    predictions = iter(self.batcher.classify_together(loaded, good, k) if good else ())
                for (name, _), picture in zip(chunk, pictures, strict=True):
                    if isinstance(picture, Image.Image):
                        yield FileResult(name, next(predictions).scores)
                    else:
                        yield FileResult(name, {}, picture)

    def _picture_or_error(self, entry: CatalogEntry, image: ImageInput) -> Image.Image | str:
        """The picture ``entry``'s model is given (through its input adapter), or the sentence saying why not."""
        try:
            picture = self.decode(image, entry.input_size)
        except DemoError as err:
            return str(err)
        except OSError:  # a file that went away or cannot be read
            return "The file could not be read."
        return _adapted(entry.input_adapter, picture)

    def prepare(self, model_key: str, progress: ProgressCallback | None = None) -> WeightsOrigin:
        """Download and load a catalog model ahead of use; says where its weights came from.

        Raises:
            DemoError: a bad key, or a model that cannot be fetched or loaded.
        """
        entry = self.entry(model_key)
        with self._borrow(entry, progress) as (_, origin):
            return origin

    def model_status(self) -> list[CatalogStatus]:
        """Where every catalog model is, in catalog order."""
        statuses = self.registry.status(entry.source for entry in CATALOG)
        return [CatalogStatus(entry, status) for entry, status in zip(CATALOG, statuses, strict=True)]

    def remove_orphaned_downloads(self) -> int:
        """Delete the partial files that a process killed mid-download left in the catalog models' cache folders."""
        return sum(hub.remove_partial_downloads(entry.source, hub.ORPHAN_AGE_S) for entry in CATALOG)

    def preload(self, model_keys: Sequence[str]) -> threading.Thread:
        """Load catalog models in the background, one after another (failures wait for a request to report them)."""
        return self.registry.preload(get_entry(key).source for key in model_keys)


_CATALOG_KEYS = frozenset(entry.key for entry in CATALOG)


def _face_entry(entry: CatalogEntry) -> CatalogEntry:
    if not entry.classifies_faces:
        face_keys = ", ".join(candidate.key for candidate in CATALOG if candidate.classifies_faces)
        raise InvalidRequestError(f"{entry.title} does not classify faces: pick one of {face_keys}.")
    return entry


def _adapted(adapter: str, picture: Image.Image) -> Image.Image:
    """``picture`` through the input adapter named ``adapter`` ("" for none)."""
    return ADAPTERS[adapter](picture).image if adapter else picture


def _model_input(loaded: LoadedModel, pixel_values: object) -> Image.Image:
    from beit_demo.inference.classify import model_view  # imports torch: on the first request, not at start-up

    return model_view(loaded, pixel_values)
