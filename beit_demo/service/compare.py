"""Compare: several models on one photo, models in memory first, each face model judging the same faces."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from beit_demo.catalog import CatalogEntry
from beit_demo.errors import DemoError, InvalidRequestError
from beit_demo.hub import ProgressCallback
from beit_demo.inference.faces import FoundFaces
from beit_demo.service.classify import Classification, classify_entry
from beit_demo.service.core import ImageInput, ServiceCore, parse_top_k
from beit_demo.service.faces import DEFAULT_FACE_SCORE, FaceReport, judge

MAX_HUB_MODELS_COMPARED = 2  # typed Hub models in one comparison, beside the catalog's (the page has two panels)


@dataclass(frozen=True)
class CompareOutcome:
    """One model's part in a comparison: its answer (face by face for a face model), or why there is none."""

    entry: CatalogEntry
    classification: Classification | None
    error: str = ""
    faces: FaceReport | None = None


@dataclass(frozen=True)
class Comparison:
    """A comparison as it stands: the models asked for, and the outcomes of those finished so far."""

    entries: tuple[CatalogEntry, ...]  # in the order asked for
    outcomes: dict[str, CompareOutcome]  # catalog key -> outcome


def compare(
    core: ServiceCore,
    image: ImageInput,
    model_keys: Sequence[str] | None,
    top_k: float | str | None = 3,
    progress: ProgressCallback | None = None,
) -> Iterator[Comparison]:
    """Run several catalog models on one image, models already in memory first.

    Yields the comparison before the first model runs and after each one, so a front end can show fast
    answers while slow models download. One model failing does not stop the others: its outcome holds the
    sentence instead. The faces are found once, and every face-mask model judges those same faces.

    Raises:
        DemoError: no model ticked, a bad key, top-k or image (before any model runs).
    """
    entries = tuple(dict.fromkeys(core.entry(key) for key in model_keys or []))  # each model once, in order
    if not entries:
        raise InvalidRequestError("Tick at least one model to compare.")
    if sum(not entry.from_catalog for entry in entries) > MAX_HUB_MODELS_COMPARED:
        raise InvalidRequestError(
            f"Compare at most {MAX_HUB_MODELS_COMPARED} models from the Hub at once, beside the catalog's."
        )
    k = parse_top_k(top_k)
    core.decode(image, max(entry.input_size for entry in entries))  # a bad upload fails before any model runs
    in_memory = set(core.registry.loaded_sources())
    outcomes: dict[str, CompareOutcome] = {}
    found: FoundFaces | None = None  # the faces, found by the first face model's turn, for every other one
    yield Comparison(entries, dict(outcomes))
    for entry in sorted(entries, key=lambda entry: entry.source not in in_memory):
        try:
            if entry.classifies_faces:
                report = judge(core, entry, image, DEFAULT_FACE_SCORE, progress, found)
                found = report.found
                outcomes[entry.key] = CompareOutcome(entry, None, faces=report)
            else:
                classification = classify_entry(core, entry, image, k, progress, with_input=False)
                outcomes[entry.key] = CompareOutcome(entry, classification)
        except DemoError as err:
            outcomes[entry.key] = CompareOutcome(entry, None, str(err))
        yield Comparison(entries, dict(outcomes))
