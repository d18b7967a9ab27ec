"""The demo's tasks behind one facade that knows no front end.

The Gradio handlers (and, later, the CLI, the MCP tools and the bulk engine) call `DemoService`; none of them
re-implements borrow -> run -> time -> report. Everything here is plain data in and out: the texts a visitor
reads are built from it by `beit_demo.ui.texts`, and a `DemoError` raised here is shown by the front end as it is.
torch is imported on the first request, not here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from beit_demo.catalog import CATALOG, CatalogEntry, get_entry
from beit_demo.config import Settings
from beit_demo.errors import DemoError, ImageLoadError, InvalidRequestError
from beit_demo.images import load_image
from beit_demo.inference.batching import BatchingClassifier
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.registry import ModelRegistry, ModelStatus

# Called with (fraction done in [0, 1], a short description) while a model downloads or loads.
Progress = Callable[[float, str], None]
MAX_TOP_K = 20  # more rows than this are unreadable in a label list
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


@dataclass(frozen=True)
class CompareOutcome:
    """One model's part in a comparison: its answer, or the sentence saying why there is none."""

    entry: CatalogEntry
    classification: Classification | None
    error: str = ""


@dataclass(frozen=True)
class CatalogStatus:
    """Where one catalog model is (disk, memory, downloading)."""

    entry: CatalogEntry
    status: ModelStatus


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
        self.registry = registry or ModelRegistry(settings.max_models, settings.precision)
        self.batcher = BatchingClassifier(settings.max_batch)

    def decode(self, image: ImageInput, input_size: int) -> Image.Image:
        """Decode an upload for a model that sees ``input_size`` pixels a side.

        Raises:
            InvalidRequestError: no image was given.
            ImageLoadError: the upload is not a usable image (the sentence says why), or is gone.
        """
        if image is None:
            raise InvalidRequestError("Upload, paste or snap a photo first.")
        try:
            return load_image(image, max_pixels=self.settings.max_pixels, min_size=2 * input_size)
        except FileNotFoundError:  # front ends delete old uploads
            raise ImageLoadError("The image is no longer on the server (uploads expire): upload it again.") from None

    @contextmanager
    def _borrow(self, entry: CatalogEntry, progress: Progress | None) -> Iterator[tuple[LoadedModel, WeightsOrigin]]:
        """Borrow ``entry``'s model from the registry; yields it and where its weights came from."""
        in_memory = entry.source in self.registry.loaded_sources()
        with self.registry.use(entry.source, progress) as loaded:
            yield loaded, WeightsOrigin(in_memory, loaded.downloaded, loaded.load_seconds)

    def _classify_decoded(
        self, entry: CatalogEntry, picture: Image.Image, top_k: int, progress: Progress | None, with_input: bool
    ) -> Classification:
        started = time.perf_counter()
        with self._borrow(entry, progress) as (loaded, origin):
            prediction = self.batcher.classify(loaded, picture, top_k)
            seconds = time.perf_counter() - started
            model_input = _model_input(loaded, prediction.pixel_values) if with_input else None
        return Classification(entry, prediction.scores, seconds, loaded.device, loaded.precision, origin, model_input)

    def classify(
        self, image: ImageInput, model_key: str, top_k: float | str | None = 5, progress: Progress | None = None
    ) -> Classification:
        """Top-k predictions of one catalog model for one image, with the input the model saw.

        Raises:
            DemoError: a bad model key, top-k or image, or a model that cannot be fetched or loaded.
        """
        entry = get_entry(model_key)
        k = parse_top_k(top_k)
        return self._classify_decoded(entry, self.decode(image, entry.input_size), k, progress, with_input=True)

    def compare(
        self,
        image: ImageInput,
        model_keys: Sequence[str] | None,
        top_k: float | str | None = 3,
        progress: Progress | None = None,
    ) -> Iterator[dict[str, CompareOutcome]]:
        """Run several catalog models on one image, models already in memory first.

        Yields the outcomes so far (key -> outcome) before the first model runs and after each one, so a front
        end can show fast answers while slow models download. One model failing does not stop the others: its
        outcome holds the sentence instead.

        Raises:
            DemoError: no model ticked, a bad key, top-k or image (before any model runs).
        """
        entries = [get_entry(key) for key in model_keys or []]
        if not entries:
            raise InvalidRequestError("Tick at least one model to compare.")
        k = parse_top_k(top_k)
        picture = self.decode(image, max(entry.input_size for entry in entries))
        in_memory = set(self.registry.loaded_sources())
        outcomes: dict[str, CompareOutcome] = {}
        yield dict(outcomes)
        for entry in sorted(entries, key=lambda entry: entry.source not in in_memory):
            try:
                classification = self._classify_decoded(entry, picture, k, progress, with_input=False)
                outcomes[entry.key] = CompareOutcome(entry, classification)
            except DemoError as err:
                outcomes[entry.key] = CompareOutcome(entry, None, str(err))
            yield dict(outcomes)

    def prepare(self, model_key: str, progress: Progress | None = None) -> WeightsOrigin:
        """Download and load a catalog model ahead of use; says where its weights came from.

        Raises:
            DemoError: a bad key, or a model that cannot be fetched or loaded.
        """
        entry = get_entry(model_key)
        with self._borrow(entry, progress) as (_, origin):
            return origin

    def model_status(self) -> list[CatalogStatus]:
        """Where every catalog model is, in catalog order."""
        statuses = self.registry.status(entry.source for entry in CATALOG)
        return [CatalogStatus(entry, status) for entry, status in zip(CATALOG, statuses, strict=True)]

    def preload(self, model_keys: Sequence[str]) -> threading.Thread:
        """Load catalog models in the background, one after another (failures wait for a request to report them)."""
        return self.registry.preload(get_entry(key).source for key in model_keys)


def _model_input(loaded: LoadedModel, pixel_values: object) -> Image.Image:
    from beit_demo.inference.classify import model_view  # imports torch: on the first request, not at start-up

    return model_view(loaded, pixel_values)
