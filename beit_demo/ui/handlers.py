"""Gradio <-> service: the functions the page's events call.

Each handler unpacks Gradio's inputs, calls `DemoService`, and packs the result into component values with the
texts of `beit_demo.ui.texts`. `shows_errors` is the one place a `DemoError` becomes the `gr.Error` a visitor reads,
so a new error needs no edit here; any other exception stays hidden behind Gradio's generic error.
"""

from __future__ import annotations

import functools
import inspect
import uuid
from collections.abc import Callable
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, CatalogEntry, get_entry
from beit_demo.errors import DemoError
from beit_demo.service import DemoService, ImageInput, Progress
from beit_demo.ui import texts

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"


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


def _progress_reporter(progress: gr.Progress) -> Progress:
    return lambda fraction, text: progress(fraction, desc=text)


def _save_model_input(view: Image.Image) -> str:
    """Save the model's view under a name of its own in Gradio's cache, and return the path."""
    # Given the image itself, Gradio names the file after its content and rewrites it in place, so two requests with
    # the same view would rewrite the file one of their clients is downloading.
    directory = Path(get_upload_folder()) / "model-views"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.webp"
    # Lossless keeps the exact pixels; method 0 encodes in ~2 ms instead of ~50 ms for a slightly larger file.
    view.save(path, "WEBP", lossless=True, method=0)
    return str(path)


class Handlers:
    """The event handlers of the page, bound to one service."""

    def __init__(self, service: DemoService):
        self.service = service

    @shows_errors
    def classify(self, image: ImageInput, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Top-k predictions of one model for one image, a status line, and the model's view of the image."""
        result = self.service.classify(image, model_key, top_k, _progress_reporter(progress))
        return result.scores, texts.status_line(result), _save_model_input(result.model_input)

    @shows_errors
    def select_model(self, model_key: str):
        """The card and examples that follow a change of model; old predictions are cleared."""
        entry = get_entry(model_key)
        return texts.model_card(entry), gr.Dataset(samples=example_samples(entry)), None, "", None

    @staticmethod
    def model_from_url(request: gr.Request) -> str:
        """The model named by ``?model=KEY`` in a shared link, else the default."""
        key = request.query_params.get("model", "") if request else ""
        return key if key in {entry.key for entry in CATALOG} else DEFAULT_MODEL_KEY

    @shows_errors
    def compare(self, image: ImageInput, model_keys: list[str], top_k: float, progress=gr.Progress()):  # noqa: B008
        """Run several models on one image; yields as each finishes, so fast ones show while others download."""
        entries = [get_entry(key) for key in model_keys or []]
        for outcomes in self.service.compare(image, model_keys, top_k, _progress_reporter(progress)):
            yield self._compare_outputs(entries, outcomes)

    @staticmethod
    def _compare_outputs(entries: list[CatalogEntry], outcomes: dict) -> list:
        """One `gr.Label` update per catalog model (shown only for those ticked), then the summary."""
        chosen = {entry.key for entry in entries}
        panels = []
        for entry in CATALOG:
            outcome = outcomes.get(entry.key)
            finished = outcome is not None or entry.key not in chosen
            scores = outcome.classification.scores if outcome and outcome.classification else None
            caption = texts.compare_caption(entry, finished)
            panels.append(gr.Label(value=scores, label=caption, visible=entry.key in chosen))
        return [*panels, texts.compare_summary(entries, outcomes)]

    def model_table(self) -> list[list]:
        """One row per catalog model: where it is and how big it is on disk."""
        return texts.model_table(self.service.model_status())

    @shows_errors
    def prepare(self, model_key: str, progress=gr.Progress()):  # noqa: B008
        """Download and load a model ahead of use."""
        origin = self.service.prepare(model_key, _progress_reporter(progress))
        return texts.ready_line(get_entry(model_key), origin), self.model_table()
