"""Evaluate: several models on the visitor's labelled images (one folder per class), then the report's figures.

Each image is decoded once and given to every chosen model through the batched path (`BatchingClassifier`), a chunk
of ``settings.max_batch`` images at a time; the rows stream out as each chunk is done, then `build_report` computes
the figures (`beit_demo.evaluation.figures`). A model reads an image as a `Reading`: its top-1, its top-k and how
much probability it gives each folder's labels; the same reading comes from the local engine and from Ray's workers.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from PIL import Image

from beit_demo.catalog import CatalogEntry
from beit_demo.errors import DemoError, InvalidRequestError
from beit_demo.evaluation.figures import (
    OTHER,
    SUSPECT_AGREEMENT,
    Judged,
    model_figures,
    pair_figures,
    suspect_order,
)
from beit_demo.evaluation.labelled import LabelledSet
from beit_demo.evaluation.mapping import FolderLabels, check_by_hand, map_folders
from beit_demo.hub import ProgressCallback
from beit_demo.models.loaded import LoadedModel
from beit_demo.service.classify import adapted
from beit_demo.service.core import ImageInput, ServiceCore, parse_top_k

MAX_EVALUATED_MODELS = 4


@dataclass(frozen=True)
class Reading:
    """What one model said about one image, in the terms the figures need; or why it could not."""

    label: str = ""  # its top-1
    probability: float = 0.0  # of the top-1
    top_labels: tuple[str, ...] = ()  # its top-k, most likely first
    folder_probability: dict[str, float] = field(default_factory=dict)  # folder -> probability of its labels
    error: str = ""


@dataclass(frozen=True)
class EvaluatedImage:
    """One row of the report: an image, its folder, and each model's reading (none when it could not be decoded)."""

    path: str
    truth: str
    readings: dict[str, Reading]  # model key -> reading
    error: str = ""


@dataclass(frozen=True)
class EvaluationPlan:
    """What will be evaluated: the models, each one's folder -> labels mapping, the folders, the top-k."""

    entries: tuple[CatalogEntry, ...]
    mapping: dict[str, FolderLabels]  # model key -> folder -> labels
    folders: tuple[str, ...]
    top_k: int

    def covered(self, key: str) -> tuple[str, ...]:
        """The folders the model can name (mapped to at least one of its labels)."""
        return tuple(folder for folder in self.folders if self.mapping[key][folder])


@dataclass(frozen=True)
class EvaluationReport:
    """The report as JSON (the public contract, see `report_json`), and each model's judged images for pictures."""

    data: dict
    judged: dict[str, list[Judged]]


@dataclass
class Evaluation:
    """One evaluation: iterate `rows()` (they stream as chunks finish), then ask for the `report()`."""

    core: ServiceCore
    labelled: LabelledSet
    plan: EvaluationPlan
    seconds: dict[str, float] = field(default_factory=dict)  # model key -> time in its forward passes
    done: list[EvaluatedImage] = field(default_factory=list)

    def rows(self) -> Iterator[EvaluatedImage]:
        for row in evaluate_rows(self.core, self.labelled, self.plan, self.seconds):
            self.done.append(row)
            yield row

    def report(self) -> EvaluationReport:
        return build_report(self.labelled, self.plan, self.done, self.seconds)


def evaluate(
    core: ServiceCore,
    labelled: LabelledSet,
    model_keys: Sequence[str] | None,
    by_hand: FolderLabels | None = None,
    top_k: float | str | None = 5,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Evaluate models on labelled images: check the request and map each model's labels to the folders now (the
    models are loaded to read their labels); the images run as the returned evaluation's rows are read.

    Raises:
        DemoError: fewer than two class folders; no model, too many, or a bad key; a hand-made mapping naming a folder
            without images or a label no chosen model has; a model that can name none of the folders.
    """
    labelled.check_usable()
    entries = tuple(dict.fromkeys(core.entry(key) for key in model_keys or []))
    if not entries:
        raise InvalidRequestError("Pick at least one model to evaluate.")
    if len(entries) > MAX_EVALUATED_MODELS:
        raise InvalidRequestError(
            f"Evaluate at most {MAX_EVALUATED_MODELS} models at once; you picked {len(entries)}."
        )
    labels = {}
    for entry in entries:
        with core.borrow(entry, progress) as (loaded, _):
            labels[entry.key] = loaded.labels
    by_hand = by_hand or {}
    check_by_hand(by_hand, labelled.classes, itertools.chain.from_iterable(labels.values()))
    mapping = {key: map_folders(labelled.classes, model_labels, by_hand) for key, model_labels in labels.items()}
    for entry in entries:
        if not any(mapping[entry.key].values()):
            raise InvalidRequestError(
                f"{entry.title} has no label for any of the folders ({', '.join(labelled.classes)}): name the folders "
                "after its labels, or map them by hand (FOLDER=LABEL)."
            )
    return Evaluation(core, labelled, EvaluationPlan(entries, mapping, labelled.classes, parse_top_k(top_k)))


def evaluate_rows(
    core: ServiceCore, labelled: LabelledSet, plan: EvaluationPlan, seconds: dict[str, float] | None = None
) -> Iterator[EvaluatedImage]:
    """Every image through every planned model; yields the rows in order as each chunk of images is done.

    Models that fit in memory together (``settings.max_models``) share each decoded chunk; more than that run in
    groups, each decoding the images once. ``seconds`` (model key -> seconds) receives each model's time in its
    forward passes, for the images-per-second figure.
    """
    seconds = seconds if seconds is not None else {}
    together = core.settings.max_models
    groups = [plan.entries[start : start + together] for start in range(0, len(plan.entries), together)]
    readings: dict[str, list[Reading | None]] = {entry.key: [] for entry in plan.entries}
    errors: list[str] = []
    size = max(entry.input_size for entry in plan.entries)
    for number, group in enumerate(groups):
        last = number == len(groups) - 1
        for start in range(0, len(labelled.images), core.settings.max_batch):
            chunk = labelled.images[start : start + core.settings.max_batch]
            with core.work_slots:
                pictures = [_picture_or_error(core, image.image, size) for image in chunk]
                if number == 0:
                    errors.extend(picture if isinstance(picture, str) else "" for picture in pictures)
                for entry in group:
                    readings[entry.key].extend(_read(core, entry, pictures, plan, seconds))
            if last:
                for index in range(start, start + len(chunk)):
                    image = labelled.images[index]
                    by_model = {key: each[index] for key, each in readings.items() if each[index] is not None}
                    yield EvaluatedImage(image.path, image.truth, by_model, errors[index])


def read_files(
    core: ServiceCore, model_key: str, files: Sequence[ImageInput], mapping: FolderLabels, top_k: int
) -> tuple[list[Reading], float]:
    """One model's readings of image files (a file that cannot be decoded gets its sentence), and the seconds its
    forward passes took: what each of Ray's workers runs on its batch."""
    entry = core.entry(model_key)
    plan = EvaluationPlan((entry,), {entry.key: mapping}, tuple(mapping), top_k)
    seconds: dict[str, float] = {}
    with core.work_slots:
        pictures = [_picture_or_error(core, image, entry.input_size) for image in files]
        readings = _read(core, entry, pictures, plan, seconds)
    return [
        reading if reading is not None else Reading(error=picture)
        for reading, picture in zip(readings, pictures, strict=True)
    ], seconds.get(entry.key, 0.0)


def _picture_or_error(core: ServiceCore, image: ImageInput, size: int) -> Image.Image | str:
    try:
        return core.decode(image, size)
    except DemoError as err:
        return str(err)
    except OSError:
        return "The file could not be read."


def _read(
    core: ServiceCore,
    entry: CatalogEntry,
    pictures: list[Image.Image | str],
    plan: EvaluationPlan,
    seconds: dict[str, float],
) -> list[Reading | None]:
    """One model's readings of a chunk (None for a picture that could not be decoded)."""
    good = [adapted(entry.input_adapter, picture) for picture in pictures if isinstance(picture, Image.Image)]
    with core.borrow(entry, None) as (loaded, _):
        started = time.perf_counter()
        readings = iter(read_pictures(core, loaded, good, plan.mapping[entry.key], plan.top_k) if good else ())
        seconds[entry.key] = seconds.get(entry.key, 0.0) + time.perf_counter() - started
    return [next(readings) if isinstance(picture, Image.Image) else None for picture in pictures]


def read_pictures(
    core: ServiceCore, loaded: LoadedModel, pictures: list[Image.Image], mapping: FolderLabels, top_k: int
) -> list[Reading]:
    """A model's readings of decoded pictures, in one batched pass (the local engine and Ray's workers run this)."""
    import torch  # on the first evaluation, not at start-up

    index = {label: number for number, label in enumerate(loaded.labels)}
    folder_indices = {folder: torch.tensor([index[label] for label in labels]) for folder, labels in mapping.items()}
    readings = []
    for prediction in core.batcher.classify_together(loaded, pictures, top_k):
        (label, probability), *_ = prediction.scores.items()
        shares = {
            folder: float(prediction.probabilities[indices].sum()) if len(indices) else 0.0
            for folder, indices in folder_indices.items()
        }
        readings.append(Reading(label, probability, tuple(prediction.scores), shares))
    return readings


def judge(reading: Reading, truth: str, mapping: FolderLabels) -> Judged:
    """A reading in the folders' terms: the folder its top-1 stands for (or OTHER); whether top-k found the truth."""
    predicted = next((folder for folder, labels in mapping.items() if reading.label in labels), OTHER)
    top_k_correct = any(label in mapping[truth] for label in reading.top_labels)
    return Judged(truth, predicted, reading.probability, top_k_correct)


def build_report(
    labelled: LabelledSet, plan: EvaluationPlan, rows: Sequence[EvaluatedImage], seconds: dict[str, float]
) -> EvaluationReport:
    """The figures of every model and every pair of models, the suspect labels and the rows, as the report."""
    keys = [entry.key for entry in plan.entries]
    judged: dict[str, dict[int, Judged]] = {key: {} for key in keys}
    for number, row in enumerate(rows):
        for key in keys:
            reading = row.readings.get(key)
            if reading is not None and plan.mapping[key][row.truth]:  # a folder the model can name
                judged[key][number] = judge(reading, row.truth, plan.mapping[key])
    models = {}
    for key in keys:
        covered = plan.covered(key)
        figures = model_figures(list(judged[key].values()), covered, seconds.get(key, 0.0))
        uncovered = [folder for folder in plan.folders if folder not in covered]
        models[key] = {**figures, "evaluated": len(judged[key]), "uncovered": uncovered}
    pairs = []
    for a, b in itertools.combinations(keys, 2):
        both = sorted(judged[a].keys() & judged[b].keys())
        figures = pair_figures([judged[a][n].correct for n in both], [judged[b][n].correct for n in both])
        pairs.append({"a": a, "b": b, **figures, "images": len(both)})
    data = {
        "images": len(rows),
        "classes": list(plan.folders),
        "mapping": {key: {folder: list(labels) for folder, labels in plan.mapping[key].items()} for key in keys},
        "models": models,
        "pairs": pairs,
        "suspect_labels": _suspects(rows, plan, judged),
        "rows": [_row_json(row, plan) for row in rows],
        "skipped": {"top_level_files": labelled.skipped_top_level, "not_images": labelled.skipped_not_images},
    }
    return EvaluationReport(data, {key: list(judged[key].values()) for key in keys})


def _suspects(rows: Sequence[EvaluatedImage], plan: EvaluationPlan, judged: dict[str, dict[int, Judged]]) -> list[str]:
    """Images the models, together, put in another folder with at least SUSPECT_AGREEMENT of their mean probability,
    ranked by their mean probability of the image's own folder (cleanlab's self-confidence), lowest first.

    The mean is over the models that can name the image's folder, so one weak model neither makes nor vetoes a suspect.
    """
    candidates = []
    for number, row in enumerate(rows):
        keys = [key for key in judged if number in judged[key]]
        if not keys:
            continue
        mean = {
            folder: sum(row.readings[key].folder_probability.get(folder, 0.0) for key in keys) / len(keys)
            for folder in plan.folders
        }
        elsewhere = max((folder for folder in plan.folders if folder != row.truth), key=mean.__getitem__)
        if mean[elsewhere] >= SUSPECT_AGREEMENT and mean[elsewhere] > mean[row.truth]:
            candidates.append((row.path, mean[row.truth]))
    return suspect_order(candidates)


def _row_json(row: EvaluatedImage, plan: EvaluationPlan) -> dict:
    predictions = {}
    for key, reading in row.readings.items():
        names = plan.mapping[key][row.truth]
        correct = reading.label in names if names else None  # None: the model has no label for this folder
        predictions[key] = {"label": reading.label, "probability": reading.probability, "correct": correct}
    return {"path": row.path, "truth": row.truth, "predictions": predictions, "error": row.error}
