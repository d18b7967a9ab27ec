"""Batch results as rows: one format for the CSV and JSONL files of the command line and the batch tab's download."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import IO

from beit_demo.service import FileResult

# The CSV header: path, the top-1 and its probability, then the whole top-k as JSON, then the error sentence.
COLUMNS = ("path", "label", "probability", "top_k", "error")


def top_k_list(result: FileResult) -> list[dict[str, object]]:
    """The top-k, most likely first, as JSON-ready objects."""
    return [{"label": label, "probability": probability} for label, probability in result.scores.items()]


def row(result: FileResult) -> dict[str, object]:
    """One result as a JSON-ready row (``probability`` is None and ``top_k`` empty for a file that failed)."""
    return {
        "path": result.name,
        "label": result.label,
        "probability": result.probability,
        "top_k": top_k_list(result),
        "error": result.error,
    }


def write_csv(results: Iterable[FileResult], stream: IO[str]) -> None:
    """Write a header and one line per result, flushed as each arrives."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    for result in results:
        values = row(result)
        probability = "" if values["probability"] is None else f"{values['probability']:.8g}"
        top_k = json.dumps(values["top_k"], ensure_ascii=False)
        writer.writerow([values["path"], values["label"], probability, top_k, values["error"]])
        stream.flush()


def write_jsonl(results: Iterable[FileResult], stream: IO[str]) -> None:
    """Write one JSON object per line, flushed as each arrives."""
    for result in results:
        stream.write(json.dumps(row(result), ensure_ascii=False) + "\n")
        stream.flush()
