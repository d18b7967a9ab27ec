"""The Live tab: a webcam stream, faces found, tracked and judged (or the live top-k of another model).

The stream is Gradio's own (`gr.Image(streaming=True)` and `.stream`): a frame every 0.1 s at most, answered by
`DemoService.live_frame`, which always answers the newest frame and drops the ones it had no time for. Streams have
a concurrency group of their own (``BEIT_DEMO_LIVE_STREAMS`` at once, each for ``BEIT_DEMO_LIVE_SECONDS``), and their
forward passes take work slots and the shared batcher like any request, so a stream never starves Classify or
Compare. The visitor's tracks live in a `gr.State` and are forgotten when the stream stops or the camera is cleared.
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from beit_demo.service import DEFAULT_FACE_SCORE, LiveSession
from beit_demo.ui import texts
from beit_demo.ui.shared import Page, Tab, model_picker, shows_errors

LIVE_DEFAULT = "facemask-deit"
STREAM_EVERY_S = 0.1
CAMERAS = {"front": "user", "rear": "environment"}  # the choice on phones -> the browser's facingMode


def _webcam_options(camera: str) -> gr.WebcamOptions:
    facing = CAMERAS.get(camera, "user")
    video = {"width": {"ideal": 640}, "height": {"ideal": 480}, "facingMode": facing}
    return gr.WebcamOptions(mirror=facing == "user", constraints={"video": video})


class LiveTab(Tab):
    title = "Live"

    def build(self, page: Page) -> None:
        session = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                model = model_picker(page.settings, value=LIVE_DEFAULT, label="Model")
                camera = gr.Radio(list(CAMERAS), value="front", label="Camera (on a phone)")
                webcam = gr.Image(
                    sources=["webcam"],
                    streaming=True,
                    type="numpy",
                    label="Camera",
                    webcam_options=_webcam_options("front"),
                )
            with gr.Column(scale=1, min_width=300):
                answered = gr.Image(label="Live: the faces and what the model says", format="jpeg", interactive=False)
                line = gr.Markdown("")
        webcam.stream(
            self.live,
            inputs=[webcam, model, session],
            outputs=[answered, line, session],
            stream_every=STREAM_EVERY_S,
            time_limit=page.settings.live_seconds,
            concurrency_limit=page.settings.live_streams,
            concurrency_id="live",
            api_name=False,
            show_progress="hidden",
        )
        webcam.clear(lambda: (None, "", None), outputs=[answered, line, session], api_name=False, queue=False)
        model.change(lambda: None, outputs=session, api_name=False, queue=False)
        camera.change(lambda choice: gr.Image(webcam_options=_webcam_options(choice)), camera, webcam, api_name=False)

    @shows_errors
    def live(self, frame: np.ndarray | None, model_key: str, session: LiveSession | None):
        """One camera frame: the annotated frame, one line of text, and the visitor's session (its tracks)."""
        session = session or LiveSession()
        if frame is None:
            return gr.skip(), gr.skip(), session
        answer = self.service.live_frame(session, frame, model_key, DEFAULT_FACE_SCORE)
        if answer is None:  # another call of this session answers a newer frame
            return gr.skip(), gr.skip(), session
        return answer.frame, live_line(answer), session


def live_line(answer) -> str:  # a LiveAnswer
    """For a face model, the faces view's wording ("3 faces: 1 with a mask, 2 without."); else the live top-k."""
    if answer.faces is not None:
        judged = [face for face in answer.faces if face.scores]
        if not answer.faces:
            return "No face in view."
        return texts.count_faces(judged) + "." if judged else "Judging the faces ..."
    if not answer.scores:
        return "Classifying ..."
    return " · ".join(f"**{label}** {probability:.0%}" if number == 0 else f"{label} {probability:.0%}"
                      for number, (label, probability) in enumerate(answer.scores.items()))  # fmt: skip
