"""The Evaluate tab: models on the visitor's own labelled images (a zip of class folders), with honest statistics.

The zip is read in memory under caps, never extracted (`beit_demo.evaluation.labelled`). The folder -> labels table
is editable; "labels containing this word" helps fill it. `/evaluate(archive, models)` is the API: its last output is
the report as a .json file.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from beit_demo.errors import InvalidRequestError
from beit_demo.evaluation.labelled import LabelledSet, read_zip, zip_folders
from beit_demo.evaluation.mapping import parse_map_options, suggest
from beit_demo.evaluation.summary import FIGURE_HEADERS, coverage_lines, figure_rows, pair_sentence
from beit_demo.images import load_image
from beit_demo.service import MAX_TOP_K, EvaluationReport
from beit_demo.service.evaluate import MAX_EVALUATED_MODELS
from beit_demo.share_store import StoredShare
from beit_demo.ui.shared import (
    EXAMPLES_DIR,
    Page,
    Tab,
    model_picker,
    models_and_k,
    progress_reporter,
    shows_errors,
)
from beit_demo.ui.sharing import Restorer, Snapshot, restored_file

EVALUATE_DEFAULT = ("facemask-beit", "facemask-deit")
# An evaluation holds its archive's images in memory (up to 300 MB): one at a time, apart from the other tabs' queue.
# Its forward passes still share the work slots and the batcher with every request.
EVALUATE_LIMITS = {"concurrency_limit": 1, "concurrency_id": "evaluate"}
MAPPING_HEADERS = ["folder", "labels (| between; empty: the labels named like the folder)"]
MAX_GALLERY = 24  # mistakes and suspects shown (the report lists them all)
THUMBNAIL = 256


class EvaluateTab(Tab):
    title = "Evaluate"

    def build(self, page: Page) -> None:
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                archive = gr.File(
                    file_types=[".zip"], type="filepath", label="A .zip of class folders (one per class)"
                )
                self.models = models = model_picker(
                    page.settings,
                    value=list(EVALUATE_DEFAULT),
                    multiselect=True,
                    max_choices=MAX_EVALUATED_MODELS,
                    label=f"Models (1 to {MAX_EVALUATED_MODELS})",
                )
                self.top_k = top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="k, for the top-k accuracy")
                self.mapping = mapping = gr.Dataframe(
                    headers=MAPPING_HEADERS, column_count=(2, "fixed"), interactive=True, label="Folder -> labels"
                )
                with gr.Row():
                    word = gr.Textbox(label="Labels containing this word", scale=2)
                    suggest_button = gr.Button("Suggest", scale=1)
                suggestions = gr.Markdown("")
                button = gr.Button("Evaluate", variant="primary")
                gr.Examples(
                    examples=[[str(EXAMPLES_DIR / "fashion-mnist-sample.zip"), ["fashion-mnist"]]],
                    inputs=[archive, models],
                    label="Example: 60 Fashion-MNIST tiles in 10 class folders",
                )
            with gr.Column(scale=2, min_width=300):
                summary = gr.Markdown("")
                figures = gr.Dataframe(headers=list(FIGURE_HEADERS), interactive=False, label="Each model")
                sentences = gr.Markdown("")
                confusions = gr.Gallery(label="Confusion matrices", columns=2, height="auto", object_fit="contain")
                calibration = gr.Image(label="Reliability diagram", interactive=False)
                mistakes = gr.Gallery(label="Mistakes: folder, then each model's answer", columns=4, height="auto")
                suspects = gr.Gallery(label="Likely filed in the wrong folder", columns=4, height="auto")
                downloads = gr.File(label="The report (JSON) and the rows (CSV)", file_count="multiple")
                report_file = gr.File(visible=False)
                page.sharing.button(self.key)
        archive.change(self.folders_of, inputs=archive, outputs=mapping, api_name=False)
        suggest_button.click(self.suggest_labels, inputs=[word, models], outputs=suggestions, api_name=False)
        word.submit(self.suggest_labels, inputs=[word, models], outputs=suggestions, api_name=False)
        limits = EVALUATE_LIMITS
        inputs = [archive, models, top_k, mapping]
        self.outputs = [summary, figures, sentences, confusions, calibration, mistakes, suspects, downloads, mapping]
        restored = [models, top_k, *self.outputs]
        page.sharing.restorers[self.key] = Restorer(self.key, self.snapshot, self.restore, restored)
        button.click(
            self.evaluate_view,
            inputs=inputs,
            outputs=self.outputs,
            api_name=False,
            show_progress_on=[summary],
            **limits,
        )
        api_button = gr.Button(visible=False)
        api_button.click(
            self.evaluate, inputs=inputs, outputs=[figures, summary, report_file], api_name="evaluate", **limits
        )

    @shows_errors
    def evaluate(
        self,
        archive: str | None,
        models: list[str],
        top_k: float = 5,
        mapping: object = None,
        progress=gr.Progress(),  # noqa: B008
    ):
        """Evaluate 1-4 models on your own labelled images: accuracy with its 95% interval, top-k, macro-F1,
        calibration (ECE), per-class precision and recall, confusion matrices, McNemar's test per pair of models.

        Args:
            archive: a .zip holding one folder of images per class (at most 2,000 files, 300 MB unpacked).
            models: catalog keys (facemask-beit, facemask-deit, beit-in22k, ...) or Hub ids owner/name[@rev].
            top_k: k for the top-k accuracy, 1 to 20.
            mapping: rows of [folder, "LABEL|LABEL"]; a folder left out matches the labels named like it.

        Returns:
            A table of each model's figures, a summary, and the whole report (figures, pairs, suspect labels, rows)
            as a .json file.
        """
        report, labelled = self._run(archive, models, top_k, mapping, progress)
        return figure_rows(report.data), _summary(report.data, labelled), _save_report(report.data)[0]

    @shows_errors
    def evaluate_view(self, archive, models, top_k, mapping, progress=gr.Progress(), request: gr.Request = None):  # noqa: B008
        """As `evaluate`, with the page's pictures, galleries and downloads; the mapping used fills the table."""
        report, labelled = self._run(archive, models, top_k, mapping, progress)
        data = report.data
        from beit_demo.evaluation.pictures import confusion_figure, reliability_figure, save_png

        folder = _output_folder()
        confusions = [
            (save_png(confusion_figure(key, figures["confusion"]), str(folder / f"confusion-{number}.png")), key)
            for number, (key, figures) in enumerate(data["models"].items())
            if figures["confusion"]["matrix"]
        ]
        calibration = save_png(reliability_figure(report.judged), str(folder / "reliability.png"))
        images = {image.path: image.image for image in labelled.images}
        rows_by_path = {row["path"]: row for row in data["rows"]}
        wrong = [row for row in data["rows"] if any(p["correct"] is False for p in row["predictions"].values())]
        pixels = self.service.settings.max_pixels
        mistakes = [_thumbnail(images[row["path"]], row, folder, pixels) for row in wrong[:MAX_GALLERY]]
        suspected = [rows_by_path[path] for path in data["suspect_labels"][:MAX_GALLERY]]
        suspects = [_thumbnail(images[row["path"]], row, folder, pixels) for row in suspected]
        used = [[name, "|".join(labels)] for name, labels in next(iter(data["mapping"].values())).items()]
        shown = {
            "models": list(models),
            "top_k": int(top_k),
            "summary": _summary(data, labelled),
            "figures": figure_rows(data),
            "sentences": _sentences(data),
            "confusions": confusions,
            "calibration": calibration,
            "mistakes": mistakes,
            "suspects": suspects,
            "downloads": list(_save_report(data, folder)),
            "mapping": None if len(data["mapping"]) > 1 else used,
        }
        self.remember(request, "result", shown, new=True)
        return (*(shown[name] for name in _SHOWN[:-1]), gr.skip() if shown["mapping"] is None else used)

    # -- sharing ------------------------------------------------------------------------------------------------

    def snapshot(self, parts: dict) -> Snapshot:
        """The latest evaluation as shown: the tables, the pictures, the galleries, the report and the rows."""
        result = parts.get("result")
        if result is None:
            raise InvalidRequestError("Evaluate first: there is no result to share yet.")
        pictures = {"calibration.png": result["calibration"]}
        results = {name: result[name] for name in ("summary", "figures", "sentences", "mapping")}
        for gallery, suffix in (("confusions", "png"), ("mistakes", "jpg"), ("suspects", "jpg")):
            results[gallery] = [caption for _, caption in result[gallery]]
            pictures |= {f"{gallery}-{n}.{suffix}": path for n, (path, _) in enumerate(result[gallery])}
        texts = dict(zip(("report.json", "rows.csv"), result["downloads"], strict=True))
        return Snapshot({"models": result["models"], "top_k": result["top_k"]}, results, pictures, texts)

    def restore(self, settings: dict, stored: StoredShare | None) -> dict:
        """The tab as a link left it: the models and k, then every table, picture and download (not the zip)."""
        updates = models_and_k(settings, self.models, self.top_k, self.service.settings, MAX_EVALUATED_MODELS)
        if stored is None:
            return updates
        results = stored.record["results"]
        shown = {name: results[name] for name in ("summary", "figures", "sentences")}
        shown["calibration"] = restored_file(stored, "calibration.png")
        for gallery, suffix in (("confusions", "png"), ("mistakes", "jpg"), ("suspects", "jpg")):
            captions = enumerate(results[gallery])
            shown[gallery] = [(restored_file(stored, f"{gallery}-{n}.{suffix}"), caption) for n, caption in captions]
        shown["downloads"] = [restored_file(stored, name) for name in ("report.json", "rows.csv")]
        updates |= {output: shown[name] for output, name in zip(self.outputs[:-1], _SHOWN[:-1], strict=True)}
        if results["mapping"] is not None:
            updates[self.mapping] = results["mapping"]
        return updates

    def _run(self, archive, models, top_k, mapping, progress) -> tuple[EvaluationReport, LabelledSet]:
        if not archive:
            raise InvalidRequestError("Upload a .zip of class folders first.")
        progress(0.0, desc="Reading the archive ...")
        labelled = read_zip(archive)
        by_hand = parse_map_options(_map_options(mapping))
        evaluation = self.service.evaluate(labelled, models or [], by_hand, top_k, progress_reporter(progress))
        total = len(labelled.images)
        for number, _ in enumerate(evaluation.rows(), start=1):
            progress(number / total, desc=f"{number} of {total} images")
        return evaluation.report(), labelled

    @shows_errors
    def folders_of(self, archive: str | None) -> list[list[str]]:
        """The table's rows after an upload: one per class folder, labels left to the automatic match."""
        if not archive:
            return []
        return [[folder, ""] for folder in zip_folders(archive)]

    @shows_errors
    def suggest_labels(self, word: str, models: list[str]) -> str:
        """The chosen models' labels that contain ``word``, ready to paste into the table."""
        labels: dict[str, None] = {}
        for key in models or []:
            with self.service.borrow(self.service.entry(key), None) as (loaded, _):
                labels.update(dict.fromkeys(loaded.labels))
        found = suggest(word or "", labels)
        if not found:
            return f"No label of the chosen models contains {word!r}." if word else ""
        return f"{len(found)} labels (paste them into the table):\n\n`{'|'.join(found)}`"


_SHOWN = (  # the page's outputs of an evaluation, in the order of `EvaluateTab.outputs`
    "summary",
    "figures",
    "sentences",
    "confusions",
    "calibration",
    "mistakes",
    "suspects",
    "downloads",
    "mapping",
)


def _map_options(mapping: object) -> list[str]:
    """The table's rows as FOLDER=LABEL|LABEL options (rows without labels are left to the automatic match)."""
    if mapping is None:
        return []
    rows = mapping.values.tolist() if hasattr(mapping, "values") else list(mapping)
    return [f"{str(row[0]).strip()}={str(row[1]).strip()}" for row in rows if len(row) >= 2 and str(row[1]).strip()]


def _summary(data: dict, labelled: LabelledSet) -> str:
    failed = sum(bool(row["error"]) for row in data["rows"])
    skipped = labelled.skipped_top_level + labelled.skipped_not_images
    parts = [f"**{data['images']} images** in {len(data['classes'])} folders ({', '.join(data['classes'])})."]
    if failed:
        parts.append(f"{failed} could not be read (see the rows).")
    if skipped:
        parts.append(f"{skipped} files were skipped (outside the class folders, or not images).")
    return " ".join(parts)


def _sentences(data: dict) -> str:
    lines = [pair_sentence(pair) for pair in data["pairs"]] + coverage_lines(data)
    return "\n\n".join(lines)


def _output_folder() -> Path:
    folder = Path(get_upload_folder()) / "evaluations" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return folder


def _save_report(data: dict, folder: Path | None = None) -> tuple[str, str]:
    """The report as JSON and the rows as CSV, in a folder of their own in Gradio's cache."""
    folder = folder or _output_folder()
    report_path, rows_path = folder / "report.json", folder / "rows.csv"
    report_path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    rows_path.write_text(_rows_csv(data), encoding="utf-8")
    return str(report_path), str(rows_path)


def _rows_csv(data: dict) -> str:
    models = list(data["models"])
    stream = io.StringIO()
    writer = csv.writer(stream)
    answer_columns = [f"{model} {field}" for model in models for field in ("label", "probability", "correct")]
    writer.writerow(["path", "truth", *answer_columns, "error"])
    for row in data["rows"]:
        cells = []
        for model in models:
            answer = row["predictions"].get(model, {})
            cells += [answer.get("label", ""), answer.get("probability", ""), answer.get("correct", "")]
        writer.writerow([row["path"], row["truth"], *cells, row["error"]])
    return stream.getvalue()


def _thumbnail(image: bytes | str, row: dict, folder: Path, max_pixels: int) -> tuple[str, str]:
    """A small copy of an image, captioned with its folder and each model's answer."""
    picture = load_image(image, max_pixels=max_pixels, min_size=THUMBNAIL)
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    path = folder / f"{uuid.uuid4().hex}.jpg"
    picture.convert("RGB").save(path, format="JPEG", quality=85)
    answers = "; ".join(
        f"{model}: {answer['label']} ({answer['probability']:.0%}){'' if answer['correct'] else ' ✗'}"
        for model, answer in row["predictions"].items()
    )
    return str(path), f"{row['truth']} · {answers}"
