"""Tiny ViT-family models trained here on a task whose evidence is known: a saturated square on a busy background.

Each case is one independently trained model: its own seed, square size, background, upload size, task and
processor (BEiT mean-pooled with a legacy no-crop processor or a cropping one; DeiT reading its CLS token after a
crop, as the catalog's face-mask models do). An explanation is right when its peak falls on the square. One trained
model is one sample, so an explanation method is judged on every case, never on their average.

Training the cases takes about a minute on 2 cores; the weights are kept in pytest's cache (`cached_model`), keyed
by the case and by this file's training recipe, so later runs only load them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    BeitImageProcessorPil,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTImageProcessorPil,
)

from beit_demo.catalog import ModelSource
from beit_demo.inference.explain import model_input, patch_relevance
from beit_demo.inference.heatmaps import onto_image
from beit_demo.models.loaded import LoadedModel

SIDE, PATCH = 64, 8  # the model sees 64 x 64 pixels: an 8 x 8 grid of patches
SIZES = {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 3, "intermediate_size": 96}
COLOURS = ((220, 40, 40), (40, 200, 40), (50, 70, 230))
# Each task has a class for "no square", which is never explained: a model may learn such a class as what is left
# when no evidence is seen (one DeiT did so with "red" when every upload had a square), and then the right map for
# it is not known. Every other class has the square as its positive evidence.
TASK_LABELS = {"colour": ("none", "red", "green", "blue"), "mask": ("No Mask", "Mask")}
RECIPE = "v3: 1200 scenes, 500 steps of 48, AdamW 2e-3"  # part of the cache key: change it with the training


@dataclass(frozen=True)
class Case:
    """One independently trained model and the uploads it is explained on."""

    name: str
    family: Literal["beit", "deit"]
    seed: int
    square: float  # the square's side as a fraction of the upload's shorter side
    background: Literal["noise", "clutter", "stripes"]
    upload: tuple[int, int]  # width, height of every upload (training and held out)
    crop: bool  # the processor resizes larger and crops the centre (else it squashes the upload to 64 x 64)
    task: Literal["colour", "mask"]  # the square's colour, or whether a saturated square is there at all ("Mask")

    @property
    def labels(self) -> tuple[str, ...]:
        return TASK_LABELS[self.task]


CASES = (
    Case("beit-a", "beit", 0, 0.25, "noise", (64, 64), False, "colour"),
    Case("beit-b", "beit", 1, 0.20, "clutter", (120, 90), False, "mask"),
    Case("beit-c", "beit", 2, 0.30, "stripes", (80, 100), True, "colour"),
    Case("beit-d", "beit", 3, 0.22, "clutter", (96, 96), True, "mask"),
    Case("beit-e", "beit", 4, 0.18, "clutter", (128, 80), False, "colour"),
    Case("beit-f", "beit", 5, 0.20, "clutter", (100, 75), True, "colour"),
    Case("deit-a", "deit", 0, 0.25, "noise", (64, 64), True, "colour"),
    Case("deit-b", "deit", 1, 0.20, "clutter", (120, 90), True, "mask"),
    Case("deit-c", "deit", 2, 0.30, "stripes", (80, 100), True, "colour"),
    Case("deit-d", "deit", 3, 0.22, "clutter", (96, 96), True, "mask"),
    Case("deit-e", "deit", 4, 0.20, "clutter", (128, 96), True, "colour"),
    Case("deit-f", "deit", 5, 0.25, "clutter", (72, 96), True, "mask"),
)


def scene(case: Case, rng: np.random.Generator, present: bool | None = None) -> tuple[Image.Image, int, tuple]:
    """An upload of ``case``: (picture, class index, the square's box in the upload's pixels, or None)."""
    width, height = case.upload
    pixels = _background(case.background, rng, width, height)
    side = max(4, round(case.square * min(width, height)))
    if case.task == "colour":  # "none" a quarter of the time, else the square's colour
        label = int(rng.integers(4)) if present is None else int(rng.integers(1, 4)) * present
        colour = COLOURS[label - 1] if label else None
    else:
        present = bool(rng.integers(2)) if present is None else present
        channels = rng.permutation([230, 40, int(rng.integers(40, 230))])  # one high, one low: saturated
        label, colour = int(present), tuple(int(value) for value in channels)
    if colour is None or not label:
        return Image.fromarray(pixels), label, None
    # Keep the square inside what a cropping processor keeps (the centre 64/72 of the shorter side).
    margin_x, margin_y = _kept_margins(case)
    x = int(rng.integers(margin_x, width - margin_x - side + 1))
    y = int(rng.integers(margin_y, height - margin_y - side + 1))
    pixels[y : y + side, x : x + side] = colour
    return Image.fromarray(pixels), label, (x, y, x + side, y + side)


def held_out(case: Case, count: int = 24) -> list[tuple[Image.Image, int, tuple]]:
    """Uploads never trained on, each with its square (the uploads without one have no evidence to find)."""
    rng = np.random.default_rng(10_000 + case.seed)
    return [scene(case, rng, present=True) for _ in range(count)]


def processor(case: Case):
    normalise = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    if case.family == "beit" and not case.crop:  # the legacy BeitFeatureExtractor: squash, no crop
        return BeitImageProcessorPil(size={"height": SIDE, "width": SIDE}, do_center_crop=False, **normalise)
    if case.family == "beit":  # a cropping processor: shorter side to 72, centre 64
        return BeitImageProcessorPil(
            size={"shortest_edge": 72}, do_center_crop=True, crop_size={"height": SIDE, "width": SIDE}, **normalise
        )
    # DeiT's: squash to 73 x 73 (256 for 224), centre 64
    return DeiTImageProcessorPil(
        size={"height": 73, "width": 73}, do_center_crop=True, crop_size={"height": SIDE, "width": SIDE}, **normalise
    )


def untrained(case: Case, seed: int | None = None) -> LoadedModel:
    """The case's architecture and processor with freshly drawn weights."""
    torch.manual_seed(case.seed if seed is None else seed)
    common = {**SIZES, "image_size": SIDE, "patch_size": PATCH, "num_labels": len(case.labels)}
    if case.family == "beit":
        config = BeitConfig(
            **common, use_mean_pooling=True, use_relative_position_bias=True, layer_scale_init_value=0.1
        )
        model = BeitForImageClassification(config)
    else:
        model = DeiTForImageClassification(DeiTConfig(**common))
    model.config.id2label = dict(enumerate(case.labels))
    return LoadedModel(
        ModelSource(f"tests/{case.name}"), model.eval(), processor(case), case.labels, SIDE, "fp32", "cpu", False, 0, 0
    )


def train(case: Case) -> LoadedModel:
    """The case's model, trained on 1200 of its scenes."""
    loaded = untrained(case)
    rng = np.random.default_rng(case.seed)
    data = [scene(case, rng) for _ in range(1200)]
    pixels = loaded.processor(images=[image for image, _, _ in data], return_tensors="pt")["pixel_values"]
    targets = torch.tensor([label for _, label, _ in data])
    model = loaded.model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(case.seed)
    for _ in range(500):
        batch = torch.randint(len(data), (48,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(pixel_values=pixels[batch]).logits, targets[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return loaded


def cached_model(case: Case, folder: Path) -> LoadedModel:
    """The case's trained model, from ``folder`` when an earlier run trained it with the same recipe."""
    key = hashlib.sha256(repr((asdict(case), RECIPE, torch.__version__)).encode()).hexdigest()[:16]
    path = folder / f"{case.name}-{key}.pt"
    if path.is_file():
        loaded = untrained(case)
        loaded.model.load_state_dict(torch.load(path, weights_only=True))
        return loaded
    loaded = train(case)
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(loaded.model.state_dict(), buffer)
    partial = path.with_suffix(".partial")
    partial.write_bytes(buffer.getvalue())
    partial.replace(path)  # a run stopped mid-write leaves no half file under the real name
    return loaded


def peak_on_square(heat: np.ndarray, box: tuple[int, int, int, int], case: Case) -> bool:
    """Whether the peak of ``heat`` (over the upload) is on the square, give or take half a patch of the upload."""
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    slack = 0.5 * PATCH * min(case.upload) / SIDE
    return box[0] - slack <= x <= box[2] + slack and box[1] - slack <= y <= box[3] + slack


def _background(kind: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    if kind == "noise":
        grey = rng.normal(128, 12, (height, width, 1)).clip(0, 255).repeat(3, axis=2)
        return grey.astype(np.uint8)
    if kind == "stripes":
        phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(6, 14)
        across = np.arange(width if rng.integers(2) else height)
        band = 128 + 50 * np.sin(2 * np.pi * across / period + phase)
        grey = np.broadcast_to(band[None, :] if len(across) == width else band[:, None], (height, width))
        noisy = grey[..., None] + rng.normal(0, 8, (height, width, 1))
        return noisy.clip(0, 255).repeat(3, axis=2).astype(np.uint8)
    # clutter: dull rectangles of every brightness, each a little tinted, over noise
    pixels = rng.normal(120, 25, (height, width, 1)).repeat(3, axis=2)
    for _ in range(int(rng.integers(6, 14))):
        x0, x1 = sorted(int(value) for value in rng.integers(0, width, 2))
        y0, y1 = sorted(int(value) for value in rng.integers(0, height, 2))
        grey = rng.uniform(30, 220)
        pixels[y0 : y1 + 1, x0 : x1 + 1] = grey + rng.uniform(-25, 25, 3)
    return pixels.clip(0, 255).astype(np.uint8)


def _kept_margins(case: Case) -> tuple[int, int]:
    """Pixels on each side of the upload that a cropping processor cuts away (a little more, to be safe)."""
    width, height = case.upload
    if not case.crop:
        return 0, 0
    if case.family == "deit":  # squash to 73, keep the centre 64
        return int(np.ceil(width * 4.5 / 73)) + 1, int(np.ceil(height * 4.5 / 73)) + 1
    short = min(width, height)  # shorter side to 72, keep the centre 64 of each side
    resized = (width * 72 / short, height * 72 / short)
    return tuple(int(np.ceil((side - SIDE) / 2 * short / 72)) + 1 for side in resized)


def pointing(loaded: LoadedModel, case: Case, explain_one: Callable, uploads: list) -> int:
    """On how many of ``uploads`` the peak of an explanation, laid back onto the upload, falls on the square.

    Args:
        explain_one: (model, upload) -> `PatchRelevance`, e.g. `beit_demo.inference.explain.explain_patches`.
    """
    hits = 0
    for image, _, box in uploads:
        relevance = explain_one(loaded, image)
        hits += peak_on_square(onto_image(relevance.grid, loaded.processor, image.size), box, case)
    return hits


def by_relevance(method: Callable) -> Callable:
    """An ``explain_one`` for `pointing` from a relevance function of `beit_demo.inference.explain` (or a variant
    of one): (model, pixel values, label, patches) -> (relevance per patch, class index)."""

    def explain_one(loaded: LoadedModel, image: Image.Image):
        pixel_values = model_input(loaded, image)
        patches = (pixel_values.shape[-2] // PATCH) * (pixel_values.shape[-1] // PATCH)
        return patch_relevance(loaded, pixel_values, method(loaded, pixel_values, "", patches), "")

    return explain_one
