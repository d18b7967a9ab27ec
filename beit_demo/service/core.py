"""What every task shares: the models in memory, the work slots, decoding an upload, borrowing a model.

`DemoService` is this runtime with one method per task; each task's body and result types live in a module of their
own beside this one (`classify`, `faces`, `explain`, `compare`, `files`, `models`), so a new task is one new module
and one facade method. Nothing here knows a front end; torch is imported on the first request, not here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image

from beit_demo.catalog import CATALOG, CatalogEntry, get_entry
from beit_demo.config import Settings
from beit_demo.errors import ImageLoadError, InvalidRequestError, UnknownModelError
from beit_demo.hub import ProgressCallback
from beit_demo.hub_ids import HubModelResolver, catalog_entry_for, parse_hub_id, quoted
from beit_demo.images import load_image
from beit_demo.inference.batching import BatchingClassifier
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.registry import ModelRegistry

MAX_TOP_K = 20  # more rows than this are unreadable in a label list
ImageInput = str | bytes | None  # a path or the file's bytes, as a front end receives it


@dataclass(frozen=True)
class WeightsOrigin:
    """Where the weights behind an answer came from."""

    in_memory: bool  # the model was loaded before this request asked for it
    downloaded: bool  # this request's load had to download files
    load_seconds: float


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


class ServiceCore:
    """The runtime every task uses.

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
        self.work_slots = threading.BoundedSemaphore(settings.concurrency)  # requests holding decoded pixels
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
    def borrow(
        self, entry: CatalogEntry, progress: ProgressCallback | None
    ) -> Iterator[tuple[LoadedModel, WeightsOrigin]]:
        """Borrow ``entry``'s model from the registry; yields it and where its weights came from."""
        in_memory = entry.source in self.registry.loaded_sources()
        with self.registry.use(entry.source, progress) as loaded:
            yield loaded, WeightsOrigin(in_memory, loaded.downloaded, loaded.load_seconds)

    @contextmanager
    def model_and_image(
        self, entry: CatalogEntry, image: ImageInput, input_size: int | None, progress: ProgressCallback | None
    ) -> Iterator[tuple[LoadedModel, WeightsOrigin, Image.Image]]:
        """Borrow ``entry``'s model, then take a work slot and decode the image for it.

        A download happens before the work slot is taken, so requests for models in memory never wait behind it;
        at most ``settings.concurrency`` requests hold decoded pixels at once. An upload that is not a usable image
        is refused before anything is downloaded.
        """
        if entry.source not in self.registry.loaded_sources():
            self.decode(image, input_size)  # fail fast on a bad upload; these pixels are dropped at once
        with self.borrow(entry, progress) as (loaded, origin), self.work_slots:
            yield loaded, origin, self.decode(image, input_size)


_CATALOG_KEYS = frozenset(entry.key for entry in CATALOG)


def face_entry(entry: CatalogEntry) -> CatalogEntry:
    """``entry`` when it classifies faces.

    Raises:
        InvalidRequestError: it does not; the sentence names the models that do.
    """
    if not entry.classifies_faces:
        face_keys = ", ".join(candidate.key for candidate in CATALOG if candidate.classifies_faces)
        raise InvalidRequestError(f"{entry.title} does not classify faces: pick one of {face_keys}.")
    return entry
