"""The Classify tab's faces view: every face found, boxed and labelled, and each face's explanation on its crop."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import gradio as gr
import numpy as np
from PIL import Image

from beit_demo.inference.heatmaps import DEFAULT_METHOD, METHODS
from beit_demo.service import DemoService, ImageInput
from beit_demo.ui import texts
from beit_demo.ui.components import OpenDropdown
from beit_demo.ui.shared import Page, progress_reporter, save_image, saved_explanation, shows_errors, task_limits

ANNOTATED_SIDE = 1024  # the annotated photo is sent back at most this large (the faces JSON has full-size boxes)
# Boxes on the annotated photo, by label: the face-mask checkpoints' own label names.
FACE_COLOURS = {"Mask": "#2e7d32", "No Mask": "#c62828", "with_mask": "#2e7d32", "without_mask": "#c62828"}


class FacesPanel:
    """The faces view: shown in place of the predictions when a face-mask model looks for faces first."""

    def __init__(self, service: DemoService, remember: Callable[..., None]):
        self.service = service
        self.remember = remember  # the tab's: keeps what the visitor was shown, for its share button

    def build(self, image: gr.Image, model: gr.Dropdown, min_face_score: gr.Slider, visible: bool) -> None:
        """Lay out the view; `group` is its container and `outputs` what `detect_faces` fills."""
        self.inputs = [image, model, min_face_score]
        with gr.Group(visible=visible) as self.group:
            self.annotated = gr.AnnotatedImage(label="Faces", color_map=FACE_COLOURS, height=360)
            self.summary = gr.Markdown("")
            self.table = gr.Dataframe(headers=texts.FACE_TABLE_HEADERS, interactive=False, wrap=True)
            self.faces = gr.JSON(visible=False)
            with gr.Accordion("Explain: where did the model look on each face?", open=False) as self.accordion:
                self.method = OpenDropdown(
                    list(METHODS), value=DEFAULT_METHOD, allow_custom_value=True, label="Method"
                )
                self.explain_button = gr.Button("Explain each face")
                self.explained_slider = gr.ImageSlider(label="Photo | where the model looked", type="filepath")
                self.explained = gr.Textbox(label="Explained", interactive=False)
        self.outputs = [self.annotated, self.faces, self.summary]

    def wire(self, page: Page) -> None:
        """The view's events; the tab wires its /detect_faces button first, so the API lists its endpoints in order."""
        self.faces.change(texts.face_rows, inputs=self.faces, outputs=self.table, api_name=False, queue=False)
        image, model, min_face_score = self.inputs
        self.explain_button.click(
            self.explain_faces_view,
            inputs=[image, model, self.method, min_face_score],
            outputs=[self.explained_slider, self.explained],
            api_name=False,
            **task_limits(page.settings),
        )

    @shows_errors
    def detect_faces(
        self,
        image: ImageInput,
        model_key: str,
        min_face_score: float,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """Find every face in a photo and judge each with a face-mask model (mask or no mask).

        Args:
            image: the photo, with one or many people.
            model_key: a face-mask model: facemask-beit or facemask-deit.
            min_face_score: the detector's least confidence for a face, 0 to 1 (0.5 is a good default).

        Returns:
            The photo with a labelled box on each face, the faces as JSON (box in the photo's pixels, label,
            probability, face score; best face first), and a one-line summary.
        """
        report = self.service.detect_faces(image, model_key, min_face_score, progress_reporter(progress))
        faces, summary = texts.faces_json(report), texts.face_summary(report)
        shown = {"model": model_key, "min_face_score": min_face_score, "faces": faces, "summary": summary}
        shown["width"] = report.photo.width  # the boxes' pixels
        self.remember(request, "result", {"mode": "faces", "photo": image, **shown}, new=True)
        return annotated_photo(report.photo, faces), faces, summary

    @shows_errors
    def explain_faces_view(
        self,
        image: ImageInput,
        model_key: str,
        method: str,
        min_face_score: float,
        progress=gr.Progress(),  # noqa: B008
        request: gr.Request = None,
    ):
        """Each face's own label explained on its crop: the photo and the overlay side by side."""
        progress(0.0, desc="Explaining each face ...")
        result = self.service.explain_faces(
            image, model_key, method or "", min_face_score, progress_reporter(progress)
        )
        photo, overlay, _, explained = saved_explanation(result)
        shown = {"mode": "faces", "photo": image, "model": model_key, "pair": (photo, overlay), "text": explained}
        self.remember(request, "explanation", shown)
        return (photo, overlay), explained


def annotated_photo(
    photo: Image.Image, faces: dict, width: int | None = None
) -> tuple[str, list[tuple[np.ndarray, str]]]:
    """The photo, at most ANNOTATED_SIDE px a side, with a box per face of a `texts.faces_json` answer labelled with
    the model's answer; the boxes are in the pixels of the photo as found, ``width`` wide (default: ``photo``'s)."""
    shown = photo.copy()
    shown.thumbnail((ANNOTATED_SIDE, ANNOTATED_SIDE))
    scale = shown.width / (width or photo.width)
    masks = [
        (_box_mask(tuple(round(value * scale) for value in face["box"]), shown.size), face["label"])
        for face in faces["faces"]
    ]
    return save_image(shown, "faces", ".jpg", format="JPEG", quality=90), masks


def _box_mask(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """A box drawn as `gr.AnnotatedImage` draws one (a 3 px border over a half-tinted inside), with a faint dot of
    its own in a corner.

    Gradio names each mask file after its content and rewrites it in place: two visitors with a face in the same
    place would share the file, and one's download was cut while the other's answer rewrote it (seen under load).
    The dot, at most a quarter opaque at a random place of the top row, makes every mask its own file.
    """
    width, height = size
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), dtype=np.float32)
    mask[y0:y1, x0:x1] = 0.5
    for rows, columns in ((slice(y0, y1), slice(x0, x0 + 3)), (slice(y0, y1), slice(x1 - 3, x1))):
        mask[rows, columns] = 1.0
    mask[y0 : y0 + 3, x0:x1] = mask[y1 - 3 : y1, x0:x1] = 1.0
    marker = secrets.randbelow(width * 60)
    mask[0, marker % width] = max(mask[0, marker % width], (1 + marker // width) / 255)
    return mask
