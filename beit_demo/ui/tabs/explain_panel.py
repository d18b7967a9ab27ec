"""The Classify tab's explanation: where the model looked for a class, as an overlay, and `/explain` for clients."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from beit_demo.inference.heatmaps import DEFAULT_METHOD, METHODS
from beit_demo.service import DemoService, ImageInput
from beit_demo.ui.components import OpenDropdown
from beit_demo.ui.shared import Page, progress_reporter, saved_explanation, shows_errors, task_limits


class ExplainPanel:
    """An accordion under the predictions: a class (the top-1 by default), a method, the overlay."""

    def __init__(self, service: DemoService, remember: Callable[..., None]):
        self.service = service
        self.remember = remember  # the tab's: keeps what the visitor was shown, for its share button

    def build(self, image: gr.Image, model: gr.Dropdown, predictions: gr.Label) -> None:
        self.predictions = predictions
        with gr.Accordion("Explain: where did the model look?", open=False) as self.accordion:
            with gr.Row():
                self.label = OpenDropdown(
                    choices=[], value=None, allow_custom_value=True, label="Class (empty: the top-1)"
                )
                # A dropdown, not a radio: the API takes "" for the default, and an unknown name gets our sentence
                # rather than Gradio's.
                self.method = OpenDropdown(
                    list(METHODS), value=DEFAULT_METHOD, allow_custom_value=True, label="Method"
                )
            self.button = gr.Button("Explain")
            self.slider = gr.ImageSlider(label="Photo | where the model looked", type="filepath")
            self.explained = gr.Textbox(label="Class explained", interactive=False)
            with gr.Accordion("Relevance map (greyscale)", open=False):
                self.heatmap = gr.Image(label="Brighter: more relevant", interactive=False)
            # /explain for API clients: the overlay alone rather than the slider's pair.
            self.overlay = gr.Image(visible=False)
            self.api_button = gr.Button(visible=False)
        self.inputs = [image, model, self.label, self.method]

    def wire(self, page: Page) -> None:
        limits = task_limits(page.settings)
        outputs = [self.slider, self.heatmap, self.explained]
        self.button.click(self.explain_view, inputs=self.inputs, outputs=outputs, api_name=False, **limits)
        api_outputs = [self.overlay, self.heatmap, self.explained]
        self.api_button.click(self.explain, inputs=self.inputs, outputs=api_outputs, api_name="explain", **limits)
        self.predictions.change(
            self.class_choices, inputs=self.predictions, outputs=self.label, api_name=False, queue=False
        )

    @shows_errors
    def explain(self, image: ImageInput, model_key: str, label: str, method: str, progress=gr.Progress()):  # noqa: B008
        """Explain a prediction: which parts of the photo made the model give a class.

        Args:
            image: the photo.
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            label: the class to explain; empty for the model's top-1.
            method: empty for the default, "integrated gradients"; or "gradient-weighted rollout", "gradient x
                activation", "attention rollout".

        Returns:
            The relevance drawn over the photo, the relevance alone as a greyscale heatmap (brighter is more
            relevant; the photo's aspect, at most 1024 px a side), and the class explained.
        """
        photo, overlay, heatmap, explained = self._explanation(image, model_key, label, method, progress)
        return overlay, heatmap, explained

    @shows_errors
    def explain_view(
        self,
        image: ImageInput,
        model_key: str,
        label: str,
        method: str,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """As `explain`, with the photo and the overlay side by side for the page's slider."""
        photo, overlay, heatmap, explained = self._explanation(image, model_key, label, method, progress)
        shown = {"mode": "classify", "photo": image, "model": model_key, "pair": (photo, overlay), "text": explained}
        self.remember(request, "explanation", {**shown, "heatmap": heatmap})
        return (photo, overlay), heatmap, explained

    def _explanation(self, image: ImageInput, model_key: str, label: str, method: str, progress) -> tuple:
        progress(0.0, desc="Explaining ...")
        return saved_explanation(
            self.service.explain(image, model_key, label or "", method or "", progress_reporter(progress))
        )

    @staticmethod
    def class_choices(prediction: dict | None) -> gr.Dropdown:
        """The Explain dropdown after a classification: empty (the top-1), then the classes shown, best first."""
        labels = [row["label"] for row in (prediction or {}).get("confidences", [])]
        return gr.Dropdown(choices=["", *labels], value="")
