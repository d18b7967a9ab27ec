"""A model ready for inference: the one value every layer above the registry hands around."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from beit_demo.catalog import ModelSource


@dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to use it."""

    source: ModelSource
    model: Any  # a transformers *ForImageClassification in eval mode
    processor: Any  # callable(images=[PIL...], return_tensors="pt") -> {"pixel_values": tensor}
    labels: tuple[str, ...]  # index -> label, from the checkpoint's config.id2label
    input_size: int  # side of the square the model sees
    precision: str
    device: str
    downloaded: bool  # True when this load had to download files
    load_seconds: float
    parameter_bytes: int  # the weights at their loaded precision (int8 weights count one byte each)


def unique_labels(id2label: dict[int, str], num_labels: int) -> tuple[str, ...]:
    """Index -> label, with repeated names told apart by their class index.

    Predictions are keyed by label, so two classes with one name (ImageNet-1k has a "crane" bird and a
    "crane" machine) would otherwise hide each other.
    """
    names = [id2label.get(index, f"LABEL_{index}") for index in range(num_labels)]
    counts = Counter(names)
    return tuple(name if counts[name] == 1 else f"{name} (class {index})" for index, name in enumerate(names))
