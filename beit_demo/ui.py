"""The Gradio Blocks app: pick a model, give it a photo, see what it thinks.

Only this module speaks Gradio. It turns the package's typed errors into `gr.Error` sentences, so a
visitor never sees a traceback, and nothing a visitor sends can stop the server.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

import gradio as gr

from beit_demo import catalog
from beit_demo.batching import BatchingClassifier
from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, ModelSpec, UnknownModelError
from beit_demo.config import Settings
from beit_demo.hub import ModelUnavailableError
from beit_demo.images import ImageLoadError, load_image
from beit_demo.registry import LoadedModel, ModelLoadError, ModelRegistry

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
MAX_TOP_K = 20  # more rows than this are unreadable in a gr.Label
_USER_ERRORS = (UnknownModelError, ModelUnavailableError, ModelLoadError, ImageLoadError)


class UploadedImage(gr.Image):
    """`gr.Image` that hands over the uploaded file unopened.

    Gradio's own preprocessing opens every upload with Pillow before our code runs, so a non-image fails
    with a generic error and nothing checks the pixel count first. Our `load_image` does both, with a
    message the visitor can act on. (`is_template` keeps the frontend of `gr.Image`.)
    """

    is_template = True

    def preprocess(self, payload) -> str | bytes | None:  # noqa: ANN001 - Gradio's ImageData
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # API clients may send a data URL
            try:
                return base64.b64decode(payload.url.partition(",")[2], validate=True)
            except (binascii.Error, ValueError):
                raise gr.Error("The image data sent is not valid base64.") from None
        return payload.path


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


def status_line(loaded: LoadedModel, seconds: float) -> str:
    """One line saying which model answered, on what, how fast, and where the weights came from."""
    source = f"downloaded in {loaded.load_seconds:.1f} s" if loaded.downloaded else "from the local cache"
    return (
        f"**{loaded.spec.title}** · {loaded.device} · {loaded.precision} · {seconds * 1000:.0f} ms · weights {source}"
    )


class DemoApp:
    """The handlers behind the UI, bound to one registry and one set of settings."""

    def __init__(self, settings: Settings, registry: ModelRegistry):
        self.settings = settings
        self.registry = registry
        self.batcher = BatchingClassifier(settings.max_batch)

    def decode(self, image: str | bytes | None, spec: ModelSpec):
        """Decode an upload for ``spec``, or raise a `gr.Error` saying what is wrong with it."""
        if image is None:
            raise gr.Error("Upload, paste or snap a photo first.")
        try:
            return load_image(image, max_pixels=self.settings.max_pixels, min_size=2 * spec.input_size)
        except ImageLoadError as err:
            raise gr.Error(str(err)) from None

    def classify(self, image: str | bytes | None, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Top-k predictions of one model for one image, with a status line."""
        spec = _spec(model_key)
        picture = self.decode(image, spec)
        started = time.perf_counter()
        try:
            with self.registry.use(spec.key, progress=lambda fraction, text: progress(fraction, desc=text)) as loaded:
                prediction = self.batcher.classify(loaded, picture, _top_k(top_k))
        except _USER_ERRORS as err:
            raise gr.Error(str(err)) from None
        return prediction.scores, status_line(loaded, time.perf_counter() - started)

    def select_model(self, model_key: str):
        """The card and examples that follow a change of model; old predictions are cleared."""
        spec = _spec(model_key)
        return model_card(spec), gr.Dataset(samples=_example_samples(spec)), None, ""

    def model_from_url(self, request: gr.Request) -> str:
        """The model named by ``?model=KEY`` in a shared link, else the default."""
        key = request.query_params.get("model", "") if request else ""
        return key if key in {spec.key for spec in CATALOG} else DEFAULT_MODEL_KEY


def build_demo(settings: Settings | None = None, registry: ModelRegistry | None = None) -> gr.Blocks:
    """Build the Blocks app. Nothing is downloaded or loaded until a visitor (or a preload) asks."""
    settings = settings or Settings.from_env()
    registry = registry or ModelRegistry(settings.max_models, settings.precision)
    app = DemoApp(settings, registry)
    default = catalog.get_spec(DEFAULT_MODEL_KEY)

    with gr.Blocks(title="BEiT image classification demo") as demo:
        gr.Markdown(
            "# Image classification with BEiT and DeiT\n"
            "Pick a model, upload, paste or snap a photo, and see what the model thinks it shows."
        )
        with gr.Row():
            with gr.Column(scale=1):
                model_dropdown = gr.Dropdown(
                    choices=[(spec.title, spec.key) for spec in CATALOG], value=default.key, label="Model"
                )
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
            with gr.Column(scale=1):
                predictions_label = gr.Label(label="Predictions")
                status_markdown = gr.Markdown("")

        classify_event = dict(
            fn=app.classify,
            inputs=[image_input, model_dropdown, top_k_slider],
            outputs=[predictions_label, status_markdown],
        )
        classify_button.click(
            **classify_event, api_name="classify", concurrency_limit=settings.concurrency, concurrency_id="classify"
        )
        examples_dataset.click(
            lambda sample: sample[0], inputs=examples_dataset, outputs=image_input, api_name=False
        ).then(**classify_event, api_name=False, concurrency_limit=settings.concurrency, concurrency_id="classify")
        model_dropdown.change(
            app.select_model,
            inputs=model_dropdown,
            outputs=[model_card_markdown, examples_dataset, predictions_label, status_markdown],
            api_name="select_model",
        )
        demo.load(app.model_from_url, inputs=None, outputs=model_dropdown, api_name=False)
    return demo
