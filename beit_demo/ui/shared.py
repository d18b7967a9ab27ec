"""What every tab shares: the model picker, the one place errors become `gr.Error`, progress, and saved outputs.

A tab is a class with a `title`, its handlers as methods (bound to the one `DemoService`) and a `build(page)` that
lays out its components and wires each event right after them, with an explicit API name. `Page` is what a tab
may reach beyond its own components: the Blocks, the settings, and the other tabs once all are built.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from beit_demo.catalog import CATALOG, CatalogEntry
from beit_demo.config import Settings
from beit_demo.errors import DemoError
from beit_demo.hub import ProgressCallback
from beit_demo.hub_ids import catalog_entry_for, parse_hub_id
from beit_demo.inference.heatmaps import heatmap_image, overlay_image
from beit_demo.service import MAX_TOP_K, DemoService, Explanation
from beit_demo.ui import texts
from beit_demo.ui.components import OpenDropdown
from beit_demo.ui.sharing import Sharing, link_number

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
_MODEL_CHOICES = [(entry.title, entry.key) for entry in CATALOG]


@dataclass
class Page:
    """The page a tab is built into."""

    blocks: gr.Blocks
    settings: Settings
    sharing: Sharing
    tabs: dict[str, gr.Tab] = field(default_factory=dict)  # title -> its gr.Tab, filled as the tabs are built


class Tab:
    """One tab of the page: its handlers (methods) and its layout (`build`)."""

    title: str

    def __init__(self, service: DemoService, sharing: Sharing | None = None):
        self.service = service
        self.sharing = sharing  # None when the tab is used without a page (tests): nothing is remembered

    @property
    def key(self) -> str:
        """The tab's name in links (``?tab=compare``) and its id in the page."""
        return self.title.lower()

    def remember(self, request: gr.Request | None, part: str, value: dict, *, new: bool = False) -> None:
        """Keep a result this visitor was shown, for the share button (`Sharing.remember`)."""
        if self.sharing is not None:
            self.sharing.remember(request, self.key, part, value, new=new)

    def build(self, page: Page) -> None:
        """Lay out the tab's components and wire their events (called inside its `gr.Tab`)."""
        raise NotImplementedError

    def finish(self, page: Page) -> None:
        """Wire what needs the whole page (every tab built): page loads, other tabs' selection. Nothing by default."""


def task_limits(settings: Settings) -> dict:
    """Gradio's limits for every event that runs a model: one group, as many at once as the queue admits.

    Each admitted request waits inside the service, for its model (downloads run apart, `BEIT_DEMO_DOWNLOADS` at a
    time) or for a work slot (`BEIT_DEMO_CONCURRENCY`): a request for a model in memory never queues behind one
    that waits on the Hub.
    """
    return {"concurrency_limit": settings.queue_size, "concurrency_id": "classify"}


def model_picker(settings: Settings, **options) -> gr.Dropdown:
    """A dropdown of the catalog that also takes a typed Hub id, when the demo accepts them."""
    typed = settings.hub_models
    info = "Pick one, or type a Hub id (owner/name or owner/name@revision) and press Enter." if typed else None
    return OpenDropdown(choices=_MODEL_CHOICES, allow_custom_value=typed, info=info, **options)


def catalog_entry(model: str | None) -> CatalogEntry | None:
    """The catalog entry of a key (or of a catalog repo typed as a Hub id), else None: never asks the Hub."""
    entry = next((entry for entry in CATALOG if entry.key == model), None)
    if entry is None and isinstance(model, str) and "/" in model:
        with contextlib.suppress(DemoError):
            entry = catalog_entry_for(parse_hub_id(model))
    return entry


def model_from_link(model: object, settings: Settings) -> str | None:
    """A link's model: a catalog key, or the syntax of a Hub id when the demo takes them, else None.

    Only the syntax of a Hub id is checked here; choosing it then resolves it like a typed one.
    """
    if catalog_entry(model) is not None:
        return str(model)
    try:
        return str(parse_hub_id(model)) if settings.hub_models and isinstance(model, str) and model else None
    except DemoError:
        return None


def models_from_link(value: object, settings: Settings) -> list[str]:
    """A link's models (one, or a list), each checked by `model_from_link`; those that fail are left out."""
    chosen = (model_from_link(model, settings) for model in (value if isinstance(value, list) else [value]))
    return [model for model in chosen if model]


def models_and_k(
    settings: dict, models: gr.Dropdown, top_k: gr.Slider, demo: Settings, most: int | None = None
) -> dict:
    """What a link's ``models`` and ``top_k`` set on a tab's model picker and k slider (what fails is left out)."""
    chosen = models_from_link(settings.get("models"), demo)[:most]
    updates: dict = {models: chosen} if chosen else {}
    if (k := link_number(settings.get("top_k"), 1, MAX_TOP_K, whole=True)) is not None:
        updates[top_k] = k
    return updates


def example_samples(entry: CatalogEntry) -> list[list[str]]:
    """The example images that suit ``entry``, as `gr.Dataset` samples."""
    return [[str(EXAMPLES_DIR / name)] for name in entry.examples if (EXAMPLES_DIR / name).is_file()]


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


def quiet_progress(*_args, **_kwargs) -> None:
    """For a handler called by another: its own progress bar is shown already."""


def progress_reporter(progress: gr.Progress) -> ProgressCallback:
    return lambda fraction, text: progress(fraction, desc=text)


def save_image(image: Image.Image, folder: str, suffix: str, **options) -> str:
    """Save an output image under a name of its own in Gradio's cache, and return the path."""
    # Given the image itself, Gradio names the file after its content and rewrites it in place, so two requests with
    # the same output would rewrite the file one of their clients is downloading.
    directory = Path(get_upload_folder()) / folder
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}{suffix}"
    image.save(path, **options)
    return str(path)


def saved_explanation(result: Explanation) -> tuple[str, str, str, str]:
    """The photo, the overlay and the greyscale heatmap saved for the page, and the text saying what was explained."""
    save = functools.partial(save_image, folder="explanations")
    return (
        save(result.photo, suffix=".jpg", format="JPEG", quality=90),
        save(overlay_image(result.photo, result.relevance), suffix=".jpg", format="JPEG", quality=90),
        save(heatmap_image(result.relevance), suffix=".png", format="PNG"),
        texts.explained_text(result),
    )
