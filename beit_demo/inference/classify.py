"""Pure inference: images in, top-k labels out.

preprocess -> forward -> postprocess, as in transformers' image-classification pipeline, but batched
and without the pipeline's per-call overhead. Never imports gradio.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from beit_demo.models.loaded import LoadedModel


@dataclass(frozen=True)
class Prediction:
    """The result for one image."""

    scores: dict[str, float]  # label -> probability, most likely first
    seconds: float  # wall time of preprocess + forward + postprocess for the batch this image was in
    pixel_values: torch.Tensor | None = None  # (3, H, W): the input the model got, for `model_view`
    probabilities: torch.Tensor | None = None  # (num_labels,): every class's probability (a view of the batch's)


def preprocess(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """The checkpoint's own image processor: resize, crop, normalise into a (N, 3, H, W) batch."""
    return loaded.processor(images=list(images), return_tensors="pt")["pixel_values"]


def input_dtype(loaded: LoadedModel) -> torch.dtype:
    """The dtype the model's inputs must have: its weights' (fp16 on a GPU), float32 for an int8 model."""
    parameter = next(loaded.model.parameters(), None)
    return parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32


def forward(loaded: LoadedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits (N, num_labels) as float32 on the CPU."""
    with torch.inference_mode():
        logits = loaded.model(pixel_values=pixel_values.to(loaded.device, input_dtype(loaded))).logits
    return logits.float().cpu()


def postprocess(logits: torch.Tensor, labels: Sequence[str], top_k: int) -> list[dict[str, float]]:
    """Softmax and the ``top_k`` most likely labels per row (``top_k`` capped at the number of labels)."""
    return top_labels(logits.softmax(dim=-1), labels, top_k)


def top_labels(probabilities: torch.Tensor, labels: Sequence[str], top_k: int) -> list[dict[str, float]]:
    """The ``top_k`` most likely labels of each row of probabilities (``top_k`` capped at the number of labels)."""
    k = max(1, min(int(top_k), len(labels)))
    values, indices = probabilities.topk(k, dim=-1)
    return [
        {labels[index]: float(value) for value, index in zip(row_values.tolist(), row_indices.tolist(), strict=True)}
        for row_values, row_indices in zip(values, indices, strict=True)
    ]


def classify(loaded: LoadedModel, images: Sequence[Image.Image], top_k: int | Sequence[int] = 5) -> list[Prediction]:
    """Classify a batch of RGB images with one forward pass.

    Args:
        loaded: a model from the registry.
        images: RGB PIL images (see `beit_demo.images.load_image`).
        top_k: how many labels to return, for every image or one number per image; capped at the number of labels.
    """
    top_ks = [top_k] * len(images) if isinstance(top_k, int) else list(top_k)
    started = time.perf_counter()
    pixel_values = preprocess(loaded, images)
    probabilities = forward(loaded, pixel_values).softmax(dim=-1)
    rows = top_labels(probabilities, loaded.labels, max(top_ks))
    seconds = time.perf_counter() - started
    return [
        Prediction(dict(itertools.islice(scores.items(), max(1, k))), seconds, pixels, row)
        for scores, k, pixels, row in zip(rows, top_ks, pixel_values, probabilities, strict=True)
    ]


def model_view(loaded: LoadedModel, image: Image.Image | torch.Tensor) -> Image.Image:
    """What the model sees: the preprocessed input, un-normalised back into an RGB image.

    Args:
        image: the RGB image, or the `Prediction.pixel_values` of one already classified (the processor, 7 ms on
            a 12 MP photo's decoded size, then does not run twice).
    """
    pixels = (image if isinstance(image, torch.Tensor) else preprocess(loaded, [image])[0]).float()
    mean = torch.tensor(loaded.processor.image_mean, dtype=torch.float32).view(-1, 1, 1)
    std = torch.tensor(loaded.processor.image_std, dtype=torch.float32).view(-1, 1, 1)
    restored = (pixels * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(restored.permute(1, 2, 0).numpy(), mode="RGB")
