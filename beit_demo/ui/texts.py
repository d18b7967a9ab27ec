"""The texts the page shows, built from the service's plain results: pure functions, no Gradio.

Kept apart from the layout and the handlers so each can be read, and tested, on its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from beit_demo.catalog import CatalogEntry
from beit_demo.config import Settings
from beit_demo.inference.adapters import ADAPTER_TITLES
from beit_demo.inference.faces import MIN_FACE_SIDE, JudgedFace, wears_mask
from beit_demo.models.registry import ModelState
from beit_demo.service import (
    CatalogStatus,
    Classification,
    CompareOutcome,
    Comparison,
    Explanation,
    FaceReport,
    FileResult,
    WeightsOrigin,
)

MODEL_TABLE_HEADERS = ["model", "key", "state", "on disk", "requests using it"]
_COMPARE_HEADER = ["| model | top-1 | probability | time | weights |", "|---|---|---|---|---|"]


def model_card(entry: CatalogEntry) -> str:
    """Markdown describing one model: what it recognises, what input it expects, what its card reports."""
    if entry.hub is not None:
        return hub_model_card(entry)
    metrics = "; ".join(f"{m.name} **{m.value:.4g}** ({m.source})" for m in entry.metrics) or "none reported"
    return (
        f"### {entry.title}\n"
        f"**Recognises:** {entry.recognises}  \n"
        f"**Works best on:** {entry.expected_input}  \n"
        f"**Reported accuracy:** {metrics}  \n"
        f"**Architecture:** {entry.architecture} · **License:** {entry.license} · "
        f"[`{entry.repo_id}`]({entry.source.hub_url}) on the Hub"
    )


_MARKDOWN_SPECIALS = str.maketrans({char: f"\\{char}" for char in "\\`*_[]()<>#|!~"})


def _plain(text: str) -> str:
    """Text from a repo (a license, class names) shown as it is, never as Markdown or HTML."""
    return text.translate(_MARKDOWN_SPECIALS)


def hub_model_card(entry: CatalogEntry) -> str:
    """The card of a model typed by a visitor: what its own files say, where exactly it came from, and that nobody
    here vouches for it."""
    hub = entry.hub
    preview = ", ".join(_plain(label) for label in hub.labels_preview)
    more = ", ..." if entry.num_labels > len(hub.labels_preview) else ""
    preprocessing = (
        "from its preprocessor_config.json"
        if hub.has_preprocessor
        else f"the {hub.model_type} family's default (the repo has no preprocessor_config.json)"
    )
    license_ = f"{_plain(hub.license)} (from its model card)" if hub.license else "not stated in its model card"
    asked = f"`{hub.requested_revision}`" if hub.requested_revision else "its default branch"
    tree = f"{entry.source.hub_url}/tree/{hub.commit}"
    return (
        f"### {entry.repo_id}\n"
        "**Not from our catalog:** typed by you; what follows is what its own files say, unchecked by us.  \n"
        f"**Classes:** {entry.num_labels:,} ({preview}{more})  \n"
        f"**Input:** {entry.input_size} x {entry.input_size} px, preprocessing {preprocessing}  \n"
        f"**Architecture:** {entry.architecture} · **License:** {license_} · "
        f"**Weights:** {hub.weights_file}, {hub.download_bytes / 1e6:.1f} MB  \n"
        f"[`{entry.repo_id}`]({tree}) on the Hub at commit `{hub.commit[:12]}` ({asked} when first asked, "
        "used from then on)"
    )


def weights_source(origin: WeightsOrigin) -> str:
    """Where the weights came from: memory, a download, or the local cache."""
    if origin.in_memory:
        return "model already in memory"
    if origin.downloaded:
        return f"downloaded from the Hub and loaded in {origin.load_seconds:.1f} s"
    return f"loaded from the local cache in {origin.load_seconds:.1f} s"


def status_line(result: Classification) -> str:
    """One line saying which model answered, on what, how fast, where the weights came from, and any adapter."""
    adapted = f" · photo adapted to {ADAPTER_TITLES[result.adapter]}" if result.adapter else ""
    return (
        f"**{result.entry.title}** · {result.device} · {result.precision} · {result.seconds * 1000:.0f} ms · "
        f"{weights_source(result.origin)}{adapted}"
    )


def ready_line(entry: CatalogEntry, origin: WeightsOrigin) -> str:
    """What the Models tab says once a model is loaded ahead of use."""
    return f"{entry.title} is ready ({weights_source(origin)})."


def compare_caption(entry: CatalogEntry, finished: bool) -> str:
    """The caption of a model's panel in the comparison."""
    return entry.title if finished else f"{entry.title} (working...)"


def compare_summary(comparison: Comparison) -> str:
    """A Markdown table of each model's top-1, time and weights, then whether models of one label space agree."""
    lines = [*_COMPARE_HEADER]
    for entry in comparison.entries:
        outcome = comparison.outcomes.get(entry.key)
        lines.append(f"| {entry.title} | {_compare_cells(outcome) if outcome else 'working... | | |'} |")
    return "\n".join(lines + _agreement_lines(comparison) + _face_by_face_lines(comparison))


def _compare_cells(outcome: CompareOutcome) -> str:
    if outcome.faces is not None:
        report = outcome.faces
        timing = f"{report.seconds * 1000:.0f} ms | {weights_source(report.origin)}"
        if report.faces:
            return f"{count_faces(report.faces)} | — | {timing}"
        label, probability = next(iter(report.whole_photo.items()))
        return f"no face found; whole photo: {label} | {probability:.1%} | {timing}"
    result = outcome.classification
    if result is None:
        return f"— | — | — | {outcome.error}"
    top_label, top_score = next(iter(result.scores.items()))
    return f"{top_label} | {top_score:.1%} | {result.seconds * 1000:.0f} ms | {weights_source(result.origin)}"


def _agreement_lines(comparison: Comparison) -> list[str]:
    """For each label space with two or more finished models: do their top-1 labels agree?"""
    lines = []
    for space in dict.fromkeys(entry.label_space for entry in comparison.entries if entry.label_space):
        tops = {
            outcome.entry.title: next(iter(scores))
            for outcome in comparison.outcomes.values()
            if outcome.entry.label_space == space and (scores := _whole_photo_scores(outcome))
        }
        if len(tops) >= 2:
            agree = len({label.casefold() for label in tops.values()}) == 1
            verdict = f"agree on **{next(iter(tops.values()))}**" if agree else "disagree"
            lines.append(f"\n**{space}** models ({', '.join(tops)}) {verdict} on the top-1 label.")
    return lines


def _whole_photo_scores(outcome: CompareOutcome) -> dict[str, float] | None:
    """A model's answer for the whole photo: a plain classification, or a face model's when it found no face."""
    if outcome.classification is not None:
        return outcome.classification.scores
    return outcome.faces.whole_photo if outcome.faces is not None else None


def _face_by_face_lines(comparison: Comparison) -> list[str]:
    """With two or more face models finished: what each says of every face, and whether they agree."""
    reports = [outcome.faces for outcome in comparison.outcomes.values() if outcome.faces and outcome.faces.faces]
    if len(reports) < 2:
        return []
    titles = " | ".join(report.entry.title for report in reports)
    lines = ["", "**Face by face** (every face model judged the same faces):", "", f"| face | {titles} | agree |"]
    lines.append("|---|" + "---|" * len(reports) + "---|")
    agreed = 0
    for number, faces in enumerate(zip(*(report.faces for report in reports), strict=True), start=1):
        verdicts = {_verdict(face.label) for face in faces}
        agreed += len(verdicts) == 1
        cells = " | ".join(f"{face.label} {face.probability:.0%}" for face in faces)
        lines.append(f"| {number} | {cells} | {'yes' if len(verdicts) == 1 else '**no**'} |")
    lines.append(f"\nThe face models agree on {agreed} of {_plural(len(reports[0].faces), 'face')}.")
    return lines


def _verdict(label: str) -> bool | str:
    """What two face models must share to agree on a face: mask or not, or the label itself when it says neither."""
    masked = wears_mask(label)
    return label if masked is None else masked


def model_table(statuses: Sequence[CatalogStatus]) -> list[list]:
    """One row per catalog model: where it is (disk, memory, downloading) and how big it is on disk."""
    rows = []
    for item in statuses:
        status = item.status
        state = str(status.state)
        if status.state is ModelState.LOADING and status.progress is not None:
            state = f"{state} {status.progress:.0%}"
        size = f"{status.disk_bytes / 1e6:.1f} MB" if status.disk_bytes else "—"
        rows.append([item.entry.title, item.entry.key, state, size, status.users])
    return rows


def memory_note(settings: Settings) -> str:
    """The Models tab's first line: how many models stay in memory, at what precision, and whether the Hub is off."""
    note = (
        f"Up to **{settings.max_models}** models stay in memory (`BEIT_DEMO_MAX_MODELS`); the least recently used "
        f"idle one is freed first. Precision: **{settings.precision}**."
    )
    if settings.hub_offline:
        note += " The Hub is off (`HF_HUB_OFFLINE=1`): only models on disk can load."
    return note


# -- faces ---------------------------------------------------------------------------------------------------------


def faces_json(report: FaceReport) -> dict:
    """The faces as the API returns them: boxes in the upload's pixels after EXIF orientation."""
    return {
        "faces": [
            {
                "box": list(face.box),
                "label": face.label,
                "probability": face.probability,
                "face_score": face.face_score,
            }
            for face in report.faces
        ]
    }


def face_rows(faces: dict) -> list[list]:
    """One table row per face of a `faces_json` answer."""
    return [
        [number, face["label"], f"{face['probability']:.1%}", f"{face['face_score']:.2f}", str(face["box"])]
        for number, face in enumerate(faces.get("faces", []), start=1)
    ]


FACE_TABLE_HEADERS = ["face", "label", "probability", "face score", "box (x0, y0, x1, y1)"]


def count_faces(faces: Sequence[JudgedFace]) -> str:
    """ "3 faces: 2 with a mask, 1 without", or the count per label when the labels do not say "mask"."""
    return f"{_plural(len(faces), 'face')}: {_verdicts(faces)}"


def _verdicts(faces: Sequence[JudgedFace]) -> str:
    """ "2 with a mask, 1 without", or the count per label when the labels do not say "mask"."""
    verdicts = [wears_mask(face.label) for face in faces]
    if None in verdicts:
        counts = Counter(face.label for face in faces).most_common()
        parts = [f"{count} {label}" for label, count in counts]
    else:
        masked = sum(verdicts)
        parts = [f"{masked} with a mask"] * bool(masked) + [f"{len(faces) - masked} without"] * (masked < len(faces))
    return ", ".join(parts)


def face_summary(report: FaceReport) -> str:
    """One line: how many faces, how many wear a mask, and what was left out; or that none was found."""
    found = report.found
    if not report.faces:
        label, probability = next(iter(report.whole_photo.items()))
        small = f" ({found.too_small} under {MIN_FACE_SIDE} px skipped)" if found.too_small else ""
        return (
            f"No face found at a face score of {report.min_face_score:.2f} or more{small}. For the whole photo the "
            f"model says **{label}** ({probability:.0%}), but it was trained on face crops, not scenes."
        )
    notes = []
    if found.capped:
        notes.append(f"the {len(report.faces)} most face-like of {len(report.faces) + found.capped} are shown")
    if found.too_small:
        notes.append(f"{found.too_small} under {MIN_FACE_SIDE} px skipped")
    return count_faces(report.faces) + (f" ({'; '.join(notes)})" if notes else "") + "."


def explained_text(result: Explanation) -> str:
    """What an explanation explains: the class, or for faces each face's own label ("3 faces, each for its own
    label: 1 with a mask, 2 without")."""
    if not result.faces:
        return result.label
    return f"{_plural(len(result.faces), 'face')}, each for its own label: {_verdicts(result.faces)}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def face_shares(report: FaceReport) -> dict[str, float]:
    """A compare panel for a face model: the share of the faces given each label (or the whole-photo answer)."""
    if not report.faces:
        return dict(report.whole_photo)
    counts = Counter(face.label for face in report.faces)
    shares = {label: counts[label] / len(report.faces) for label in report.faces[0].scores}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


# -- batches -------------------------------------------------------------------------------------------------------

BATCH_TABLE_HEADERS = ["file", "top-1", "probability", "top-k", "error"]


def batch_row(result: FileResult) -> list:
    """One table row per file of a batch: its top-1, the top-k in one cell, or its error sentence."""
    top_k = " · ".join(f"{label} {probability:.1%}" for label, probability in result.scores.items())
    probability = f"{result.probability:.1%}" if result.probability is not None else ""
    return [result.name, result.label, probability, top_k, result.error]


def batch_summary(done: int, total: int, failed: int, seconds: float) -> str:
    """ "12 of 40 images classified (1 failed) in 3.2 s", while the batch runs and when it is done."""
    failures = f" ({failed} failed)" if failed else ""
    return f"{done} of {_plural(total, 'image')} done{failures} in {seconds:.1f} s."
