"""The report's pictures, drawn with matplotlib (headless): a confusion matrix per model, one reliability diagram."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from beit_demo.evaluation.figures import Judged, reliability


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as pyplot

    return pyplot


def confusion_figure(model: str, confusion: dict):
    """The confusion matrix of one model: folders down, the folder its top-1 stands for (or "other") across.

    Drawn here rather than with scikit-learn's display, which takes square matrices only (this one has "other").
    """
    import numpy as np

    pyplot = _pyplot()
    rows, columns, matrix = confusion["rows"], confusion["columns"], np.asarray(confusion["matrix"])
    figure, axes = pyplot.subplots(figsize=(2.2 + 0.8 * len(columns), 1.8 + 0.6 * len(rows)), dpi=100)
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    for (row, column), count in np.ndenumerate(matrix):  # dark cells get white numbers
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(columns)), labels=columns, rotation=45, ha="right")
    axes.set_yticks(range(len(rows)), labels=rows)
    axes.set_xlabel("the model's answer")
    axes.set_ylabel("folder")
    axes.set_title(model, fontsize=10)
    figure.tight_layout()
    return figure


def reliability_figure(judged: Mapping[str, Sequence[Judged]]):
    """Each model's accuracy against its confidence, bin by bin of the top-1 probability; the diagonal is perfect."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(figsize=(5, 4.2), dpi=100)
    axes.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for model, answers in judged.items():
        if answers:
            accuracy, confidence, _ = reliability(answers)
            axes.plot(confidence, accuracy, marker="o", label=model)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("confidence (top-1 probability)")
    axes.set_ylabel("accuracy")
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def save_png(figure, path: str) -> str:
    """Write ``figure`` as a PNG and free it."""
    figure.savefig(path, format="png")
    _pyplot().close(figure)
    return path
