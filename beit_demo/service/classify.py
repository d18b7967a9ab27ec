"""Classify: one model's top-k for one image, with the input the model saw."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image

from beit_demo.catalog import CatalogEntry
from beit_demo.hub import ProgressCallback
from beit_demo.inference.adapters import ADAPTERS
from beit_demo.models.loaded import LoadedModel
from beit_demo.service.core import ImageInput, ServiceCore, WeightsOrigin, parse_top_k


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


def classify(
    core: ServiceCore,
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
    entry = core.entry(model_key)
    return classify_entry(core, entry, image, parse_top_k(top_k), progress, with_input=True, adapt=adapt)


def classify_entry(
    core: ServiceCore,
    entry: CatalogEntry,
    image: ImageInput,
    top_k: int,
    progress: ProgressCallback | None,
    with_input: bool,
    adapt: bool = True,
) -> Classification:
    """``entry``'s top-k for ``image``; the model's input too when ``with_input`` (for the page's view)."""
    started = time.perf_counter()
    adapter = entry.input_adapter if adapt else ""
    with core.model_and_image(entry, image, entry.input_size, progress) as (loaded, origin, picture):
        prediction = core.batcher.classify(loaded, adapted(adapter, picture), top_k)
        seconds = time.perf_counter() - started
        model_input = _model_input(loaded, prediction.pixel_values) if with_input else None
    return Classification(
        entry, prediction.scores, seconds, loaded.device, loaded.precision, origin, model_input, adapter
    )


def adapted(adapter: str, picture: Image.Image) -> Image.Image:
    """``picture`` through the input adapter named ``adapter`` ("" for none)."""
    return ADAPTERS[adapter](picture).image if adapter else picture


def _model_input(loaded: LoadedModel, pixel_values: object) -> Image.Image:
    from beit_demo.inference.classify import model_view  # imports torch: on the first request, not at start-up

    return model_view(loaded, pixel_values)
