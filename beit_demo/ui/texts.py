"""The texts the page shows, built from the service's plain results: pure functions, no Gradio.

Kept apart from the layout and the handlers so each can be read, and tested, on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from beit_demo.catalog import CatalogEntry
from beit_demo.config import Settings
from beit_demo.models.registry import ModelState
from beit_demo.service import CatalogStatus, Classification, CompareOutcome, WeightsOrigin

MODEL_TABLE_HEADERS = ["model", "key", "state", "on disk", "requests using it"]
_COMPARE_HEADER = ["| model | top-1 | probability | time | weights |", "|---|---|---|---|---|"]


def model_card(entry: CatalogEntry) -> str:
    """Markdown describing one model: what it recognises, what input it expects, what its card reports."""
    metrics = "; ".join(f"{m.name} **{m.value:.4g}** ({m.source})" for m in entry.metrics) or "none reported"
    return (
        f"### {entry.title}\n"
        f"**Recognises:** {entry.recognises}  \n"
        f"**Works best on:** {entry.expected_input}  \n"
        f"**Reported accuracy:** {metrics}  \n"
        f"**Architecture:** {entry.architecture} · **License:** {entry.license} · "
        f"[`{entry.repo_id}`]({entry.source.hub_url}) on the Hub"
    )


def weights_source(origin: WeightsOrigin) -> str:
    """Where the weights came from: memory, a download, or the local cache."""
    if origin.in_memory:
        return "model already in memory"
    if origin.downloaded:
        return f"downloaded from the Hub and loaded in {origin.load_seconds:.1f} s"
    return f"loaded from the local cache in {origin.load_seconds:.1f} s"


def status_line(result: Classification) -> str:
    """One line saying which model answered, on what, how fast, and where the weights came from."""
    return (
        f"**{result.entry.title}** · {result.device} · {result.precision} · {result.seconds * 1000:.0f} ms · "
        f"{weights_source(result.origin)}"
    )


def ready_line(entry: CatalogEntry, origin: WeightsOrigin) -> str:
    """What the Models tab says once a model is loaded ahead of use."""
    return f"{entry.title} is ready ({weights_source(origin)})."


def compare_caption(entry: CatalogEntry, finished: bool) -> str:
    """The caption of a model's panel in the comparison."""
    return entry.title if finished else f"{entry.title} (working...)"


def compare_summary(entries: Sequence[CatalogEntry], outcomes: dict[str, CompareOutcome]) -> str:
    """A Markdown table of each model's top-1, time and weights, then whether models of one label space agree."""
    lines = [*_COMPARE_HEADER]
    for entry in entries:
        outcome = outcomes.get(entry.key)
        lines.append(f"| {entry.title} | {_compare_cells(outcome) if outcome else 'working... | | |'} |")
    return "\n".join(lines + _agreement_lines(entries, outcomes))


def _compare_cells(outcome: CompareOutcome) -> str:
    result = outcome.classification
    if result is None:
        return f"— | — | — | {outcome.error}"
    top_label, top_score = next(iter(result.scores.items()))
    return f"{top_label} | {top_score:.1%} | {result.seconds * 1000:.0f} ms | {weights_source(result.origin)}"


def _agreement_lines(entries: Sequence[CatalogEntry], outcomes: dict[str, CompareOutcome]) -> list[str]:
    """For each label space with two or more finished models: do their top-1 labels agree?"""
    lines = []
    for space in dict.fromkeys(entry.label_space for entry in entries):
        tops = {
            entry.title: next(iter(outcome.classification.scores))
            for entry in entries
            if entry.label_space == space
            and (outcome := outcomes.get(entry.key)) is not None
            and outcome.classification is not None
        }
        if len(tops) >= 2:
            agree = len({label.casefold() for label in tops.values()}) == 1
            verdict = f"agree on **{next(iter(tops.values()))}**" if agree else "disagree"
            lines.append(f"\n**{space}** models ({', '.join(tops)}) {verdict} on the top-1 label.")
    return lines


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
