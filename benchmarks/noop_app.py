"""A do-nothing Gradio app with the inputs and queue settings of ours: Gradio's own floor, for the benchmark.

Run as ``python -m benchmarks.noop_app`` (reads PORT like app.py).
"""

from __future__ import annotations

import sys

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY

NOOP_COMMAND = (sys.executable, "-m", "benchmarks.noop_app")


def serve_noop_app() -> None:
    """Serve a Gradio app whose /classify takes the inputs of ours and does nothing, with the same queue settings."""
    import gradio as gr

    from beit_demo.config import Settings

    settings = Settings.from_env()
    with gr.Blocks() as demo:
        image_input = gr.Image(type="filepath")  # an RGB JPEG passes through unopened, as with our UploadedImage
        model_dropdown = gr.Dropdown(choices=[spec.key for spec in CATALOG], value=DEFAULT_MODEL_KEY)
        top_k_slider = gr.Slider(1, 20, value=5, step=1)
        result_textbox = gr.Textbox()
        classify_button = gr.Button()
        classify_button.click(
            lambda image, model_key, top_k: "",
            inputs=[image_input, model_dropdown, top_k_slider],
            outputs=result_textbox,
            api_name="classify",
            concurrency_limit=settings.concurrency,
        )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.launch(server_name=settings.server_name, server_port=settings.server_port, enable_monitoring=False)


if __name__ == "__main__":
    serve_noop_app()
