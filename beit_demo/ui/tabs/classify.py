"""The Classify tab: one model on one photo, its top-k, what it saw; for a face-mask model, face by face.

Its results are two panels of their own: the faces view (`faces_panel`) and the explanation (`explain_panel`).
"""

from __future__ import annotations

from enum import StrEnum

import gradio as gr

from beit_demo.catalog import DEFAULT_MODEL_KEY, get_entry
from beit_demo.errors import DemoError, InvalidRequestError
from beit_demo.images import load_image
from beit_demo.service import DEFAULT_FACE_SCORE, MAX_TOP_K, DemoService, ImageInput
from beit_demo.share_store import StoredShare
from beit_demo.ui import texts
from beit_demo.ui.components import UploadedImage
from beit_demo.ui.shared import (
    Page,
    Tab,
    catalog_entry,
    example_samples,
    model_from_link,
    model_picker,
    progress_reporter,
    save_image,
    shows_errors,
    task_limits,
)
from beit_demo.ui.sharing import Restorer, Sharing, Snapshot, link_flag, link_number, restored_file
from beit_demo.ui.tabs.explain_panel import ExplainPanel
from beit_demo.ui.tabs.faces_panel import FacesPanel, annotated_photo


class ClassifyMode(StrEnum):
    """What the Classify tab's button runs (each mode has its own button, so /classify keeps its three inputs)."""

    PLAIN = "classify"  # the model on the photo, through its input adapter if it has one
    AS_IS = "as is"  # a model with an input adapter, on the photo as it is ("Adapt ..." unticked)
    FACES = "faces"  # a face model, face by face ("Find faces first" ticked)


def classify_mode(model_key: str, find_faces: bool, adapt: bool) -> ClassifyMode:
    """The mode the Classify tab is in for this model and these two ticks."""
    entry = catalog_entry(model_key)
    if entry is not None and entry.classifies_faces and find_faces:
        return ClassifyMode.FACES
    if entry is not None and entry.input_adapter and not adapt:
        return ClassifyMode.AS_IS
    return ClassifyMode.PLAIN


class ClassifyTab(Tab):
    title = "Classify"

    def __init__(self, service: DemoService, sharing: Sharing | None = None):
        super().__init__(service, sharing)
        self.faces = FacesPanel(service, self.remember)
        self.explanation = ExplainPanel(service, self.remember)

    def build(self, page: Page) -> None:
        default = get_entry(DEFAULT_MODEL_KEY)
        mode = classify_mode(default.key, True, True)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                self.model = model_picker(page.settings, value=default.key, label="Model")
                self.card = card = gr.Markdown(texts.model_card(default))
                self.image = image = UploadedImage(
                    type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=320
                )
                self.top_k = top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Top-k predictions")
                with gr.Row(visible=default.classifies_faces) as face_options:
                    self.find_faces = find_faces = gr.Checkbox(value=True, label="Find faces first", min_width=140)
                    self.min_face_score = min_face_score = gr.Slider(
                        0, 1, value=DEFAULT_FACE_SCORE, step=0.05, label="Minimum face score", min_width=160
                    )
                self.adapt = adapt = gr.Checkbox(
                    value=True,
                    label="Adapt the photo to the model's training style",
                    visible=bool(default.input_adapter),
                )
                # One button per mode, so that /classify keeps its three inputs whatever the ticks say.
                classify_button = gr.Button("Classify", variant="primary", visible=mode is ClassifyMode.PLAIN)
                as_is_button = gr.Button("Classify", variant="primary", visible=mode is ClassifyMode.AS_IS)
                faces_button = gr.Button(
                    "Find faces and classify", variant="primary", visible=mode is ClassifyMode.FACES
                )
                self.examples = examples = gr.Dataset(
                    components=[gr.Image(type="filepath", visible=False)],
                    samples=example_samples(default),
                    label="Examples (click one)",
                    layout="gallery",
                )
            with gr.Column(scale=1, min_width=300):
                self.faces.build(image, self.model, min_face_score, visible=default.classifies_faces)
                with gr.Group(visible=not default.classifies_faces) as predictions_group:
                    self.predictions = predictions = gr.Label(label="Predictions")
                    self.status = status = gr.Markdown("")
                    with gr.Accordion("What the model sees", open=False):
                        self.model_input = model_input = gr.Image(
                            label="The exact input after resizing and cropping", interactive=False
                        )
                    self.explanation.build(image, self.model, predictions)
                page.sharing.button(self.key)

        limits = task_limits(page.settings)
        classify_outputs = [predictions, status, model_input]
        classify_event = dict(fn=self.classify, inputs=[image, self.model, top_k], outputs=classify_outputs, **limits)
        classify_button.click(**classify_event, api_name="classify")
        as_is_button.click(**{**classify_event, "fn": self.classify_as_is}, api_name=False)
        faces_button.click(
            self.faces.detect_faces,
            inputs=[image, self.model, min_face_score],
            outputs=self.faces.outputs,
            api_name="detect_faces",
            **limits,
        )
        self.faces.wire(page)
        self.explanation.wire(page)
        examples.click(lambda sample: sample[0], inputs=examples, outputs=image, api_name=False).then(
            self.classify_example,
            inputs=[image, self.model, top_k, find_faces, adapt, min_face_score],
            outputs=[*classify_outputs, *self.faces.outputs],
            api_name=False,
            **limits,
        )
        # On a visitor's choice only: a shared link sets the model with its results, which this would clear.
        self.model.input(
            self.select_model,
            inputs=self.model,
            outputs=[card, examples, *classify_outputs],
            api_name="select_model",
            api_visibility="undocumented",  # the page's own: not an MCP tool, not in the API docs
        )
        gr.on(
            [self.model.change, find_faces.change, adapt.change],
            _mode_updates,
            inputs=[self.model, find_faces, adapt],
            outputs=[
                face_options,
                adapt,
                classify_button,
                as_is_button,
                faces_button,
                self.faces.group,
                predictions_group,
            ],
            api_name=False,
            queue=False,
        )

    def finish(self, page: Page) -> None:
        explanation, faces = self.explanation, self.faces
        outputs = [
            *(self.model, self.card, self.examples, self.image, self.top_k, self.find_faces, self.min_face_score),
            *(self.adapt, self.predictions, self.status, self.model_input),
            *(explanation.accordion, explanation.slider, explanation.heatmap, explanation.explained),
            *(faces.annotated, faces.faces, faces.summary, faces.accordion, faces.explained_slider, faces.explained),
        ]
        page.sharing.restorers[self.key] = Restorer(self.key, self.snapshot, self.restore, outputs)

    @shows_errors
    def classify(
        self,
        image: ImageInput,
        model_key: str,
        top_k: float,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """Classify one image with one model: its most likely classes, with their probabilities.

        Args:
            image: the photo (JPEG, PNG, WebP, GIF or BMP).
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            top_k: how many classes to return, 1 to 20.

        Returns:
            The top-k classes (label and confidences), a status line (model, device, time, where the weights came
            from), and the exact input the model saw after resizing and cropping.
        """
        return self._classify(image, model_key, top_k, progress, request, adapt=True)

    @shows_errors
    def classify_as_is(
        self,
        image: ImageInput,
        model_key: str,
        top_k: float,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """As `classify`, without the model's input adapter."""
        return self._classify(image, model_key, top_k, progress, request, adapt=False)

    def _classify(self, image, model_key: str, top_k: float, progress: gr.Progress, request, adapt: bool):
        result = self.service.classify(image, model_key, top_k, progress_reporter(progress), adapt=adapt)
        # Lossless keeps the exact pixels; method 0 encodes in ~2 ms instead of ~50 ms for a slightly larger file.
        view = save_image(result.model_input, "model-views", ".webp", format="WEBP", lossless=True, method=0)
        status = texts.status_line(result)
        mode = ClassifyMode.PLAIN if adapt else ClassifyMode.AS_IS
        shown = {"mode": mode.value, "photo": image, "model": model_key, "top_k": int(top_k), "view": view}
        self.remember(request, "result", {**shown, "scores": result.scores, "status": status}, new=True)
        return result.scores, status, view

    def classify_example(
        self,
        image: str,
        model_key: str,
        top_k: float,
        find_faces: bool,
        adapt: bool,
        min_face_score: float,
        request: gr.Request = None,
    ):
        """An example was clicked: run what the button in view runs (faces first for a face model)."""
        mode = classify_mode(model_key, find_faces, adapt)
        if mode is ClassifyMode.FACES:
            found = self.faces.detect_faces(image, model_key, min_face_score, request=request)
            return gr.skip(), gr.skip(), gr.skip(), *found
        run = self.classify if mode is ClassifyMode.PLAIN else self.classify_as_is
        return *run(image, model_key, top_k, request=request), gr.skip(), gr.skip(), gr.skip()

    @shows_errors
    def select_model(self, model_key: str):
        """The card and examples that follow a change of model (a typed Hub id is checked and resolved here); old
        predictions are cleared."""
        card, examples = self._card_and_examples(model_key)
        return card, examples, None, "", None

    def _card_and_examples(self, model_key: str) -> tuple[str, gr.Dataset]:
        entry = self.service.entry(model_key)
        examples = example_samples(entry) if entry.from_catalog else example_samples(get_entry(DEFAULT_MODEL_KEY))
        return texts.model_card(entry), gr.Dataset(samples=examples)

    # -- sharing ------------------------------------------------------------------------------------------------

    def snapshot(self, parts: dict) -> Snapshot:
        """The latest result (the predictions or the faces), with its explanation when it is of the same photo."""
        result = parts.get("result")
        if result is None:
            raise InvalidRequestError("Run the model first: there is no result to share yet.")
        faces = result["mode"] == ClassifyMode.FACES
        pictures = {"photo.jpg": result["photo"]}
        if faces:
            settings = {"model": result["model"], "faces": True, "score": result["min_face_score"]}
            results = {key: result[key] for key in ("mode", "faces", "summary", "width")}
        else:
            adapt = result["mode"] == ClassifyMode.PLAIN
            settings = {"model": result["model"], "top_k": result["top_k"], "faces": False, "adapt": adapt}
            results = {"mode": result["mode"], "scores": result["scores"], "status": result["status"]}
            pictures["view.png"] = result["view"]
        explanation = parts.get("explanation", {})
        same = (explanation.get("photo"), explanation.get("model")) == (result["photo"], result["model"])
        if same and (explanation["mode"] == ClassifyMode.FACES) == faces:
            results["explanation"] = explanation["text"]
            pictures["explained-photo.jpg"], pictures["explained-overlay.jpg"] = explanation["pair"]
            if explanation.get("heatmap"):
                pictures["heatmap.png"] = explanation["heatmap"]
        return Snapshot(settings, results, pictures)

    def restore(self, settings: dict, stored: StoredShare | None) -> dict:
        """The tab as a link left it: its settings (from the share, or the link alone), then its results."""
        model = model_from_link(settings.get("model"), self.service.settings)
        if model is None:
            return {}
        try:
            card, examples = self._card_and_examples(model)
            updates = {self.model: model, self.card: card, self.examples: examples}
        except DemoError as err:  # a typed Hub id that does not resolve: the sentence in place of the card
            updates = {self.model: model, self.card: f"**{err}**"}
        for component, value in (
            (self.top_k, link_number(settings.get("top_k"), 1, MAX_TOP_K, whole=True)),
            (self.min_face_score, link_number(settings.get("score"), 0, 1)),
            (self.find_faces, link_flag(settings.get("faces"))),
            (self.adapt, link_flag(settings.get("adapt"))),
        ):
            if value is not None:
                updates[component] = value
        if stored is not None:
            updates.update(self._restored_results(stored))
        return updates

    def _restored_results(self, stored: StoredShare) -> dict:
        results = stored.record["results"]
        photo = restored_file(stored, "photo.jpg")
        updates: dict = {self.image: photo}
        explained = results.get("explanation")
        if explained:
            pair = (restored_file(stored, "explained-photo.jpg"), restored_file(stored, "explained-overlay.jpg"))
        if results["mode"] == ClassifyMode.FACES:
            picture = load_image(photo, max_pixels=self.service.settings.max_pixels)
            updates |= {
                self.faces.annotated: annotated_photo(picture, results["faces"], results["width"]),
                self.faces.faces: results["faces"],
                self.faces.summary: results["summary"],
            }
            if explained:
                updates |= {self.faces.accordion: gr.Accordion(open=True), self.faces.explained: explained}
                updates[self.faces.explained_slider] = pair
            return updates
        updates |= {
            self.predictions: results["scores"],
            self.status: results["status"],
            self.model_input: restored_file(stored, "view.png"),
        }
        if explained:
            panel = self.explanation
            updates |= {panel.accordion: gr.Accordion(open=True), panel.slider: pair, panel.explained: explained}
            if "heatmap.png" in stored.files:
                updates[panel.heatmap] = restored_file(stored, "heatmap.png")
        return updates


def _mode_updates(model_key: str, find_faces: bool, adapt: bool) -> list:
    """Show the controls the model has (face search, adapter), the button of the mode, and its results."""
    entry = catalog_entry(model_key)  # None for a typed Hub id: no face search, no adapter
    mode = classify_mode(model_key, find_faces, adapt)
    faces = mode is ClassifyMode.FACES
    return [
        gr.Row(visible=bool(entry and entry.classifies_faces)),
        gr.Checkbox(visible=bool(entry and entry.input_adapter)),
        gr.Button(visible=mode is ClassifyMode.PLAIN),
        gr.Button(visible=mode is ClassifyMode.AS_IS),
        gr.Button(visible=faces),
        gr.Group(visible=faces),
        gr.Group(visible=not faces),
    ]
