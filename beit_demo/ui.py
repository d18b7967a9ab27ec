"""The Gradio Blocks app: pick a model, give it a photo, see what it thinks; compare models side by side.

Only this module speaks Gradio. It turns the package's typed errors into `gr.Error` sentences, so a
visitor never sees a traceback, and nothing a visitor sends can stop the server. torch is imported on
the first request, not here, so the page is served as soon as Gradio is up.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder
from PIL import Image

from beit_demo import catalog
from beit_demo.batching import BatchingClassifier
from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, ModelSpec, UnknownModelError
from beit_demo.components import UploadedImage
from beit_demo.config import Settings
from beit_demo.hub import ModelUnavailableError
from beit_demo.images import ImageLoadError, load_image
from beit_demo.registry import LoadedModel, ModelLoadError, ModelRegistry, ModelState

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
MAX_TOP_K = 20  # more rows than this are unreadable in a gr.Label
UPLOAD_LIFETIME_S = 3600  # uploads and results are deleted this long after they arrive (checked every 10 min)
COMPARE_DEFAULT = ("facemask-beit", "facemask-deit")
_USER_ERRORS = (UnknownModelError, ModelUnavailableError, ModelLoadError, ImageLoadError)
_MODEL_CHOICES = [(spec.title, spec.key) for spec in CATALOG]


def _spec(model_key: str) -> ModelSpec:
    try:
        return catalog.get_spec(model_key)
    except UnknownModelError as err:
        raise gr.Error(str(err)) from None


def _top_k(value: float | None) -> int:
    try:
        return max(1, min(int(value), MAX_TOP_K))
    except (TypeError, ValueError):
        raise gr.Error(f"Top-k must be a whole number from 1 to {MAX_TOP_K}.") from None


def model_card(spec: ModelSpec) -> str:
    """Markdown describing one model: what it recognises, what input it expects, what its card reports."""
    metrics = "; ".join(f"{m.name} **{m.value:.4g}** ({m.source})" for m in spec.metrics) or "none reported"
    return (
        f"### {spec.title}\n"
        f"**Recognises:** {spec.recognises}  \n"
        f"**Works best on:** {spec.expected_input}  \n"
        f"**Reported accuracy:** {metrics}  \n"
        f"**Architecture:** {spec.architecture} · **License:** {spec.license} · "
        f"[`{spec.repo_id}`]({spec.hub_url}) on the Hub"
    )


def _example_samples(spec: ModelSpec) -> list[list[str]]:
    return [[str(EXAMPLES_DIR / name)] for name in spec.examples if (EXAMPLES_DIR / name).is_file()]


def _weights_source(loaded: LoadedModel, was_in_memory: bool) -> str:
    if was_in_memory:
        return "model already in memory"
    if loaded.downloaded:
        return f"downloaded from the Hub and loaded in {loaded.load_seconds:.1f} s"
    return f"loaded from the local cache in {loaded.load_seconds:.1f} s"


def _save_view(view: Image.Image) -> str:
    """Save the model's view under a name of its own in Gradio's cache, and return the path."""
    # Given the image itself, Gradio names the file after its content and rewrites it in place, so two requests with
    # the same view would rewrite the file one of their clients is downloading.
    directory = Path(get_upload_folder()) / "model-views"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.webp"
    # Lossless keeps the exact pixels; method 0 encodes in ~2 ms instead of ~50 ms for a slightly larger file.
    view.save(path, "WEBP", lossless=True, method=0)
    return str(path)


def status_line(loaded: LoadedModel, seconds: float, source: str) -> str:
    """One line saying which model answered, on what, how fast, and where the weights came from."""
    return f"**{loaded.spec.title}** · {loaded.device} · {loaded.precision} · {seconds * 1000:.0f} ms · {source}"


@dataclass(frozen=True)
class _CompareResult:
    scores: dict[str, float] | None
    summary: str  # one table row's cells after the model name


class DemoApp:
    """The handlers behind the UI, bound to one registry and one set of settings."""

    def __init__(self, settings: Settings, registry: ModelRegistry):
        self.settings = settings
        self.registry = registry
        self.batcher = BatchingClassifier(settings.max_batch)

    def decode(self, image: str | bytes | None, input_size: int) -> Image.Image:
        """Decode an upload for a model of ``input_size``, or raise a `gr.Error` saying what is wrong with it."""
        if image is None:
            raise gr.Error("Upload, paste or snap a photo first.")
        try:
            return load_image(image, max_pixels=self.settings.max_pixels, min_size=2 * input_size)
        except ImageLoadError as err:
            raise gr.Error(str(err)) from None
        except FileNotFoundError:  # uploads are deleted after UPLOAD_LIFETIME_S
            raise gr.Error("The uploaded image has expired: upload it again.") from None

    @contextmanager
    def _borrow(self, spec: ModelSpec, progress: gr.Progress) -> Iterator[tuple[LoadedModel, str]]:
        """Borrow ``spec`` from the registry, showing download progress; yields it and where it came from."""
        was_in_memory = spec.key in self.registry.loaded_keys()
        with self.registry.use(spec.key, progress=lambda fraction, text: progress(fraction, desc=text)) as loaded:
            yield loaded, _weights_source(loaded, was_in_memory)

    def _predict(self, spec: ModelSpec, picture: Image.Image, top_k: int, progress: gr.Progress):
        """(scores, status line, what the model sees) for one model; typed errors become `gr.Error`."""
        from beit_demo.classifier import model_view

        started = time.perf_counter()
        try:
            with self._borrow(spec, progress) as (loaded, source):
                prediction = self.batcher.classify(loaded, picture, top_k)
                seconds = time.perf_counter() - started
                view = _save_view(model_view(loaded, prediction.pixel_values))
        except _USER_ERRORS as err:
            raise gr.Error(str(err)) from None
        return prediction.scores, status_line(loaded, seconds, source), view

    def classify(self, image: str | bytes | None, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Top-k predictions of one model for one image, a status line, and the model's view of the image."""
        spec = _spec(model_key)
        return self._predict(spec, self.decode(image, spec.input_size), _top_k(top_k), progress)

    def select_model(self, model_key: str):
        """The card and examples that follow a change of model; old predictions are cleared."""
        spec = _spec(model_key)
        return model_card(spec), gr.Dataset(samples=_example_samples(spec)), None, "", None

    def model_from_url(self, request: gr.Request) -> str:
        """The model named by ``?model=KEY`` in a shared link, else the default."""
        key = request.query_params.get("model", "") if request else ""
        return key if key in {spec.key for spec in CATALOG} else DEFAULT_MODEL_KEY

    def compare(self, image: str | bytes | None, model_keys: list[str], top_k: float, progress=gr.Progress()):  # noqa: B008
        """Run several models on one image; yields as each finishes, so fast ones show while others download."""
        specs = [_spec(key) for key in model_keys or []]
        if not specs:
            raise gr.Error("Tick at least one model to compare.")
        picture = self.decode(image, max(spec.input_size for spec in specs))
        k = _top_k(top_k)
        in_memory = set(self.registry.loaded_keys())
        results: dict[str, _CompareResult] = {}
        yield self._compare_outputs(specs, results)
        for spec in sorted(specs, key=lambda spec: spec.key not in in_memory):  # ready ones first
            results[spec.key] = self._compare_one(spec, picture, k, progress)
            yield self._compare_outputs(specs, results)

    def _compare_one(self, spec: ModelSpec, picture: Image.Image, top_k: int, progress: gr.Progress):
        started = time.perf_counter()
        try:
            with self._borrow(spec, progress) as (loaded, source):
                scores = self.batcher.classify(loaded, picture, top_k).scores
        except _USER_ERRORS as err:  # one model failing must not hide the others' results
            return _CompareResult(None, f"— | — | — | {err}")
        top_label, top_score = next(iter(scores.items()))
        milliseconds = (time.perf_counter() - started) * 1000
        return _CompareResult(scores, f"{top_label} | {top_score:.1%} | {milliseconds:.0f} ms | {source}")

    @staticmethod
    def _compare_outputs(specs: list[ModelSpec], results: dict[str, _CompareResult]) -> list:
        chosen = {spec.key for spec in specs}
        panels = []
        for spec in CATALOG:
            result = results.get(spec.key)
            caption = spec.title if result is not None or spec.key not in chosen else f"{spec.title} (working...)"
            scores = result.scores if result is not None else None
            panels.append(gr.Label(value=scores, label=caption, visible=spec.key in chosen))
        return [*panels, _compare_summary(specs, results)]

    def model_table(self) -> list[list]:
        """One row per catalog model: where it is (disk, memory, downloading) and how big it is on disk."""
        rows = []
        for status in self.registry.status():
            state = str(status.state)
            if status.state is ModelState.LOADING and status.progress is not None:
                state = f"{state} {status.progress:.0%}"
            size = f"{status.disk_bytes / 1e6:.1f} MB" if status.disk_bytes else "—"
            rows.append([status.spec.title, status.spec.key, state, size, status.users])
        return rows

    def prepare(self, model_key: str, progress=gr.Progress()):  # noqa: B008
        """Download and load a model ahead of use."""
        spec = _spec(model_key)
        try:
            with self._borrow(spec, progress) as (_, source):
                message = f"{spec.title} is ready ({source})."
        except _USER_ERRORS as err:
            raise gr.Error(str(err)) from None
        return message, self.model_table()


def _compare_summary(specs: list[ModelSpec], results: dict[str, _CompareResult]) -> str:
    lines = ["| model | top-1 | probability | time | weights |", "|---|---|---|---|---|"]
    for spec in specs:
        result = results.get(spec.key)
        lines.append(f"| {spec.title} | {result.summary if result else 'working... | | |'} |")
    return "\n".join(lines + _agreement_lines(specs, results))


def _agreement_lines(specs: list[ModelSpec], results: dict[str, _CompareResult]) -> list[str]:
    """For each label space with two or more finished models: do their top-1 labels agree?"""
    lines = []
    for space in dict.fromkeys(spec.label_space for spec in specs):
        tops = {
            spec.title: next(iter(results[spec.key].scores))
            for spec in specs
            if spec.label_space == space and spec.key in results and results[spec.key].scores
        }
        if len(tops) >= 2:
            agree = len({label.casefold() for label in tops.values()}) == 1
            verdict = f"agree on **{next(iter(tops.values()))}**" if agree else "disagree"
            lines.append(f"\n**{space}** models ({', '.join(tops)}) {verdict} on the top-1 label.")
    return lines


def _classify_tab(app: DemoApp) -> gr.Dropdown:
    default = catalog.get_spec(DEFAULT_MODEL_KEY)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            model_dropdown = gr.Dropdown(choices=_MODEL_CHOICES, value=default.key, label="Model")
            model_card_markdown = gr.Markdown(model_card(default))
            image_input = UploadedImage(
                type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=320
            )
            top_k_slider = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top-k predictions")
            classify_button = gr.Button("Classify", variant="primary")
            examples_dataset = gr.Dataset(
                components=[gr.Image(type="filepath", visible=False)],
                samples=_example_samples(default),
                label="Examples (click one)",
                layout="gallery",
            )
        with gr.Column(scale=1, min_width=300):
            predictions_label = gr.Label(label="Predictions")
            status_markdown = gr.Markdown("")
            with gr.Accordion("What the model sees", open=False):
                model_input_image = gr.Image(label="The exact input after resizing and cropping", interactive=False)

    classify_event = dict(
        fn=app.classify,
        inputs=[image_input, model_dropdown, top_k_slider],
        outputs=[predictions_label, status_markdown, model_input_image],
        concurrency_limit=app.settings.concurrency,
        concurrency_id="classify",
    )
    classify_button.click(**classify_event, api_name="classify")
    examples_dataset.click(
        lambda sample: sample[0], inputs=examples_dataset, outputs=image_input, api_name=False
    ).then(**classify_event, api_name=False)
    model_dropdown.change(
        app.select_model,
        inputs=model_dropdown,
        outputs=[model_card_markdown, examples_dataset, predictions_label, status_markdown, model_input_image],
        api_name="select_model",
    )
    return model_dropdown


def _compare_tab(app: DemoApp) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            compare_image_input = UploadedImage(
                type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=280
            )
            compare_models_checkboxes = gr.CheckboxGroup(
                choices=_MODEL_CHOICES, value=list(COMPARE_DEFAULT), label="Models to compare"
            )
            compare_top_k_slider = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Top-k predictions")
            compare_button = gr.Button("Compare", variant="primary")
            gr.Examples(
                examples=[
                    [str(EXAMPLES_DIR / name)]
                    for name in ("astronaut_face_mask.jpg", "astronaut_face.jpg", "chelsea.jpg")
                ],
                inputs=[compare_image_input],
                label="Examples",
            )
        with gr.Column(scale=2, min_width=300):
            compare_summary_markdown = gr.Markdown("")
            with gr.Row():
                compare_labels = [
                    gr.Label(label=spec.title, visible=spec.key in COMPARE_DEFAULT, min_width=220) for spec in CATALOG
                ]
    compare_button.click(
        app.compare,
        inputs=[compare_image_input, compare_models_checkboxes, compare_top_k_slider],
        outputs=[*compare_labels, compare_summary_markdown],
        api_name="compare",
        show_progress_on=[compare_summary_markdown],  # finished panels stay readable while others download
        concurrency_limit=app.settings.concurrency,
        concurrency_id="classify",
    )


def _models_tab(app: DemoApp) -> gr.Timer:
    """The status panel; returns its refresh timer, which runs only while the tab is shown."""
    settings = app.settings
    gr.Markdown(
        f"Up to **{settings.max_models}** models stay in memory (`BEIT_DEMO_MAX_MODELS`); the least recently used "
        f"idle one is freed first. Precision: **{settings.precision}**."
        + (" The Hub is off (`HF_HUB_OFFLINE=1`): only models on disk can load." if settings.hub_offline else "")
    )
    models_dataframe = gr.Dataframe(
        headers=["model", "key", "state", "on disk", "requests using it"],
        value=app.model_table,
        interactive=False,
    )
    models_timer = gr.Timer(2.0, active=False)
    # Outside the queue: a status refresh must never wait behind, or crowd out, classification requests.
    models_timer.tick(app.model_table, outputs=models_dataframe, api_name="model_status", queue=False)
    with gr.Row():
        prepare_dropdown = gr.Dropdown(choices=_MODEL_CHOICES, value=DEFAULT_MODEL_KEY, label="Model", scale=2)
        prepare_button = gr.Button("Download and load now", scale=1)
    prepare_markdown = gr.Markdown("")
    prepare_button.click(
        app.prepare, inputs=prepare_dropdown, outputs=[prepare_markdown, models_dataframe], api_name="load_model"
    )
    return models_timer


def _timer_switch(active: bool):
    return lambda: gr.Timer(active=active)


def build_demo(settings: Settings | None = None, registry: ModelRegistry | None = None) -> gr.Blocks:
    """Build the Blocks app. Nothing is downloaded or loaded until a visitor (or a preload) asks."""
    settings = settings or Settings.from_env()
    app = DemoApp(settings, registry or ModelRegistry(settings.max_models, settings.precision))

    with gr.Blocks(title="BEiT image classification demo", delete_cache=(600, UPLOAD_LIFETIME_S)) as demo:
        gr.Markdown(
            "# Image classification with BEiT and DeiT\n"
            "Pick a model, upload, paste or snap a photo, and see what the model thinks it shows. "
            "Share a link to a model with `?model=KEY`."
        )
        with gr.Tabs():
            with gr.Tab("Classify") as classify_tab:
                model_dropdown = _classify_tab(app)
            with gr.Tab("Compare models") as compare_tab:
                _compare_tab(app)
            with gr.Tab("Models") as models_tab:
                models_timer = _models_tab(app)
        for tab in (classify_tab, compare_tab, models_tab):
            tab.select(_timer_switch(tab is models_tab), outputs=models_timer, api_name=False)
        demo.load(app.model_from_url, inputs=None, outputs=model_dropdown, api_name=False)
    return demo
