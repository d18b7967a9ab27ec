"""The Batch tab: up to 64 images through one model in batched passes, a row per file, and the rows as CSV."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import gradio as gr
from gradio.processing_utils import ssrf_protected_download
from gradio.utils import get_upload_folder

from beit_demo.catalog import DEFAULT_MODEL_KEY
from beit_demo.errors import InvalidRequestError
from beit_demo.service import MAX_TOP_K
from beit_demo.ui import texts
from beit_demo.ui.components import ImageFiles, ImageUrl
from beit_demo.ui.shared import Page, Tab, model_picker, progress_reporter, shows_errors, task_limits

MAX_BATCH_FILES = 64  # images in one batch from the page or the API (the command line has no cap)


class BatchTab(Tab):
    title = "Batch"

    def build(self, page: Page) -> None:
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                files = ImageFiles(
                    file_count="multiple",
                    file_types=["image"],
                    type="filepath",
                    label=f"Images (up to {MAX_BATCH_FILES})",
                    height=240,
                )
                model = model_picker(page.settings, value=DEFAULT_MODEL_KEY, label="Model")
                top_k = gr.Slider(1, MAX_TOP_K, value=3, step=1, label="Top-k predictions")
                button = gr.Button("Classify all", variant="primary")
            with gr.Column(scale=2, min_width=300):
                summary = gr.Markdown("")
                table = gr.Dataframe(headers=texts.BATCH_TABLE_HEADERS, interactive=False, wrap=True)
                csv_file = gr.File(label="Results as CSV", interactive=False)
        button.click(
            self.classify_batch,
            inputs=[files, model, top_k],
            outputs=[table, summary, csv_file],
            api_name="classify_batch",
            show_progress_on=[summary],  # the rows stay readable while the next ones arrive
            **task_limits(page.settings),
        )

    @shows_errors
    def classify_batch(self, images: list | None, model_key: str, top_k: float, progress=gr.Progress()):  # noqa: B008
        """Classify up to 64 images with one model, in batched forward passes.

        Args:
            images: the image files (JPEG, PNG, WebP, GIF or BMP), at most 64: uploads, data URLs or public URLs.
            model_key: a catalog key (beit-in22k, beit-in1k-timm, fashion-mnist, ...) or a Hub id owner/name[@rev].
            top_k: classes per image, 1 to 20.

        Returns:
            A table with one row per file (file, top-1, probability, top-k, error: a file that fails gets its sentence,
            the others go on), a summary line, and the same results as a CSV file (path, label, probability, top_k as
            JSON, error).
        """
        from beit_demo.bulk.results import write_csv

        files = [path for path in images or [] if path]
        if not files:
            raise InvalidRequestError("Upload one or more images first.")
        if len(files) > MAX_BATCH_FILES:
            raise InvalidRequestError(f"Upload at most {MAX_BATCH_FILES} images at once; you chose {len(files)}.")
        started = time.perf_counter()
        progress(0.0, desc="Loading the model ...")
        results, rows = [], []
        named = [_named_image(number, image) for number, image in enumerate(files, start=1)]
        for result in self.service.classify_files(named, model_key, top_k, progress_reporter(progress)):
            results.append(result)
            rows.append(texts.batch_row(result))
            progress(len(results) / len(files), desc=f"{len(results)} of {len(files)} images")
            failed = sum(bool(each.error) for each in results)
            summary = texts.batch_summary(len(results), len(files), failed, time.perf_counter() - started)
            if len(results) < len(files):
                yield rows, summary, None
        directory = Path(get_upload_folder()) / "batches" / uuid.uuid4().hex
        directory.mkdir(parents=True)
        csv_path = directory / "classified.csv"
        with csv_path.open("w", encoding="utf-8", newline="") as stream:
            write_csv(results, stream)
        yield rows, summary, str(csv_path)


def _named_image(number: int, image: str | bytes) -> tuple[str, str | bytes]:
    """A batch's image as (the name its row shows, a path or the bytes); an `ImageUrl` is fetched first."""
    if isinstance(image, bytes):
        return f"image {number}", image
    if isinstance(image, ImageUrl):
        try:  # Gradio's own SSRF-protected download: public hosts only, every redirect checked again
            path = ssrf_protected_download(image, str(Path(get_upload_folder()) / "fetched"))
        except Exception:  # noqa: BLE001 - Gradio raises bare Exceptions for refused hosts and failed requests
            raise InvalidRequestError(
                f"The image at {image[:80]!r} could not be fetched: use a public http(s) URL, or send the image."
            ) from None
        return Path(path).name, path
    return Path(image).name, image
