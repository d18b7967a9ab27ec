"""The report's statistics, computed by scikit-learn and scipy from the judged rows.

scikit-learn: accuracy, per-class precision, recall and F1, macro-F1, the confusion matrix, the reliability curve
(the mean accuracy and confidence per bin). scipy: the bootstrap interval of the accuracy and McNemar's exact test
(a binomial test on the images where exactly one of two models was right). Imported on first use: the page does not
pay for them at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OTHER = "other"  # the confusion column of a top-1 that stands for no folder
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # the interval is the same for the same rows, run after run
CALIBRATION_BINS = 15  # equal-width bins of the top-1 probability
MAX_SUSPECTS = 50
# An image is suspect when the models' mean probability of another folder is at least this, and above that of its own.
SUSPECT_AGREEMENT = 0.5


@dataclass(frozen=True)
class Judged:
    """One image as one model answered it, in the folders' terms."""

    truth: str  # its folder
    predicted: str  # the folder its top-1 stands for, or OTHER
    probability: float  # of the top-1
    top_k_correct: bool  # one of the truth's labels is among the model's top-k

    @property
    def correct(self) -> bool:
        return self.predicted == self.truth


def model_figures(judged: Sequence[Judged], folders: Sequence[str], seconds: float) -> dict:
    """The report's figures for one model, over the images whose folder it can name (``folders``)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    truth = [each.truth for each in judged]
    predicted = [each.predicted for each in judged]
    columns = [*folders, OTHER]
    if not judged:
        return {"accuracy": None, "accuracy_ci95": None, "top_k_accuracy": None, "macro_f1": None, "ece": None,
                "per_class": {}, "confusion": {"rows": list(folders), "columns": columns, "matrix": []},
                "images_per_s": None}  # fmt: skip
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=list(folders), zero_division=0
    )
    matrix = confusion_matrix(truth, predicted, labels=columns)[: len(folders)]
    return {
        "accuracy": float(accuracy_score(truth, predicted)),
        "accuracy_ci95": accuracy_interval([each.correct for each in judged]),
        "top_k_accuracy": float(np.mean([each.top_k_correct for each in judged])),
        "macro_f1": float(f1_score(truth, predicted, labels=list(folders), average="macro", zero_division=0)),
        "ece": expected_calibration_error(judged),
        "per_class": {
            folder: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for folder, p, r, f, s in zip(folders, precision, recall, f1, support, strict=True)
        },
        "confusion": {"rows": list(folders), "columns": columns, "matrix": matrix.tolist()},
        "images_per_s": len(judged) / seconds if seconds > 0 else None,
    }


def accuracy_interval(correct: Sequence[bool]) -> list[float]:
    """The 95% percentile bootstrap interval of the accuracy: BOOTSTRAP_RESAMPLES resamples, a fixed seed."""
    from scipy.stats import bootstrap

    values = np.asarray(correct, dtype=float)
    if len(values) < 2 or values.min() == values.max():  # nothing to resample: every resample gives the same
        return [float(values.mean()), float(values.mean())]
    result = bootstrap(
        (values,),
        np.mean,
        n_resamples=BOOTSTRAP_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def reliability(judged: Sequence[Judged]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of the top-1 probability: its accuracy, its mean confidence and its number of images."""
    from sklearn.calibration import calibration_curve

    correct = np.asarray([each.correct for each in judged], dtype=int)
    confidence = np.asarray([each.probability for each in judged], dtype=float)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    if correct.min() == correct.max():  # calibration_curve needs both outcomes; the bins' means are plain then
        bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="right"), 0, CALIBRATION_BINS - 1)
        kept = np.unique(bins)
        accuracy = np.full(len(kept), float(correct[0]))
        mean_confidence = np.asarray([confidence[bins == index].mean() for index in kept])
    else:
        accuracy, mean_confidence = calibration_curve(correct, confidence, n_bins=CALIBRATION_BINS, strategy="uniform")
    counts = np.histogram(confidence, bins=edges)[0]
    return accuracy, mean_confidence, counts[counts > 0]


def expected_calibration_error(judged: Sequence[Judged]) -> float:
    """ECE: the gap between accuracy and confidence in each bin, weighted by the bin's share of the images."""
    accuracy, confidence, counts = reliability(judged)
    return float(np.sum(counts / counts.sum() * np.abs(accuracy - confidence)))


def pair_figures(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Two models on the same images: where only one was right, and McNemar's exact two-sided p-value."""
    from scipy.stats import binomtest

    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only_right": a_only, "b_only_right": b_only, "mcnemar_p": float(p)}


def suspect_order(candidates: Sequence[tuple[str, float]]) -> list[str]:
    """The suspects' paths, most suspect first (lowest mean probability of their own folder), at most MAX_SUSPECTS."""
    ranked = sorted(candidates, key=lambda candidate: (candidate[1], candidate[0]))
    return [path for path, _ in ranked][:MAX_SUSPECTS]
