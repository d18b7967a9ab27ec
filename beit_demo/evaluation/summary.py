"""The report in words: the figures table and the sentence per pair of models, for the command line and the page."""

from __future__ import annotations

MCNEMAR_LEVEL = 0.05  # below this, the pair sentence names a winner


def pair_sentence(pair: dict) -> str:
    """One sentence on two models: where only one was right, the exact McNemar p-value, and what it means."""
    a, b, a_only, b_only, p = pair["a"], pair["b"], pair["a_only_right"], pair["b_only_right"], pair["mcnemar_p"]
    if a_only + b_only == 0:
        return f"{a} and {b} were right and wrong on the same images: no difference on these images."
    if p < MCNEMAR_LEVEL:
        better = a if a_only > b_only else b
        verdict = f"{better} is right more often on images like these"
    else:
        verdict = "no clear winner on these images"
    return (
        f"{a} was right on {a_only} image{'s' * (a_only != 1)} where {b} was wrong, and the reverse on {b_only}; "
        f"p = {p:.2g}: {verdict}."
    )


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


FIGURE_HEADERS = ("model", "images", "accuracy", "95% interval", "top-k", "macro-F1", "ECE", "images/s")


def figure_rows(report: dict) -> list[list[str]]:
    """One row per model: the figures of FIGURE_HEADERS, as text."""
    rows = []
    for key, figures in report["models"].items():
        interval = figures["accuracy_ci95"]
        rate = figures["images_per_s"]
        rows.append(
            [
                key,
                str(figures["evaluated"]),
                _share(figures["accuracy"]),
                "-" if interval is None else f"{interval[0]:.3f}-{interval[1]:.3f}",
                _share(figures["top_k_accuracy"]),
                _share(figures["macro_f1"]),
                _share(figures["ece"]),
                "-" if rate is None else f"{rate:.1f}",
            ]
        )
    return rows


def text_table(headers: tuple[str, ...] | list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, for a terminal."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def coverage_lines(report: dict) -> list[str]:
    """A line per model that cannot name some of the folders (their images do not count in its figures)."""
    return [
        f"{key} has no label for {', '.join(figures['uncovered'])}: those images do not count in its figures."
        for key, figures in report["models"].items()
        if figures["uncovered"]
    ]
