"""The table of explanation methods in docs/explanations.md: how often each one's peak falls on the evidence.

Trains (or loads from pytest's cache) the independently trained models of `tests/explain_cases.py` and scores every
candidate method on 48 held-out uploads each, plus two controls that no explanation should match: the photo alone
(each patch's distance from the baseline colour) and the default method on the same architecture with its weights
drawn anew. Prints a Markdown table::

    python tools/explain_pointing.py [--uploads 48]
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from beit_demo.inference import attribution  # noqa: E402
from beit_demo.models.optimize import speed_up  # noqa: E402
from tests.explain_cases import CASES, by_relevance, cached_model, held_out, pointing, untrained  # noqa: E402

CACHE = REPO_ROOT / ".pytest_cache" / "d" / "explain-models"  # where the tests keep the trained weights


def photo_alone(loaded, pixel_values, label, patches, turn=None):
    """A control: each patch's summed distance from the baseline (the processor's zero), whatever the model."""
    return attribution.patch_sums(pixel_values[0].abs().sum(dim=0), int(loaded.model.config.patch_size)), 0


METHODS = {
    "integrated gradients (default)": attribution.integrated_gradients,
    "gradient-weighted rollout": attribution.gradient_weighted_rollout,
    "gradient x activation (last block, magnitude)": attribution.gradient_x_activation,
    "gradient x activation (last block, positive part)": functools.partial(
        attribution.gradient_x_activation, part="positive"
    ),
    "gradient x activation (first block, magnitude)": functools.partial(attribution.gradient_x_activation, block=0),
    "gradient x activation (first block, positive part)": functools.partial(
        attribution.gradient_x_activation, block=0, part="positive"
    ),
    "attention rollout": attribution.attention_rollout,
    "control: the photo alone": photo_alone,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=48, help="held-out uploads per model")
    args = parser.parse_args()
    started = time.perf_counter()
    columns = [*METHODS, "control: default, weights redrawn"]
    print("| method | " + " | ".join(case.name for case in CASES) + " |")
    print("|---|" + "---|" * len(CASES))
    scores: dict[str, list[str]] = {column: [] for column in columns}
    for case in CASES:
        loaded = cached_model(case, CACHE)
        speed_up(loaded.model, "fp32", "cpu")
        uploads = held_out(case, args.uploads)
        for name, method in METHODS.items():
            scores[name].append(f"{pointing(loaded, case, by_relevance(method), uploads)}/{len(uploads)}")
        redrawn = untrained(case, seed=1000 + case.seed)
        hits = pointing(redrawn, case, by_relevance(attribution.integrated_gradients), uploads)
        scores["control: default, weights redrawn"].append(f"{hits}/{len(uploads)}")
    for column in columns:
        print(f"| {column} | " + " | ".join(scores[column]) + " |")
    print(f"\n{time.perf_counter() - started:.0f} s, torch {torch.__version__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
