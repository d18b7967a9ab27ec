"""Why a model said what it said: relevance over the image patches, mapped back onto the uploaded photo.

Four methods, for every ViT-family model the registry serves (BEiT with its mean-pooled head, the timm-converted
BEiT, DeiT with its CLS and distillation tokens, ViT); their code is in `beit_demo.inference.attribution`:

- ``integrated gradients`` (Sundararajan, Taly and Yan 2017; the default, class-discriminative): the gradient of
  the class's log-probability averaged along the path from a plain picture to the photo, times the photo's pixels,
  summed per patch. Of the methods tried, the only one that pointed at the evidence on at least 90% of the uploads
  of each of the twelve independently trained models of the tests (docs/explanations.md); it costs 20 forward and
  backward passes.
- ``gradient-weighted rollout`` (Chefer, Gur and Wolf 2021, "Generic Attention-model Explainability"): each block's
  attention weighted by the gradient of the class's logit with respect to it, its positive part averaged over
  heads, accumulated through the blocks with the residual path as identity; then the row of what the head reads.
  Right on the DeiTs; on the mean-pooled BEiTs it misses evidence that flows through the residual path.
- ``gradient x activation``: the gradient of the class's logit with respect to the patch tokens entering the last
  block, times those tokens, summed over channels, and its magnitude. One block's backward pass: the cheapest
  class-aware map, but on some trained BEiTs its peak fell on the image's edges.
- ``attention rollout`` (Abnar and Zuidema 2020, class-agnostic): each block's attention averaged over heads, with
  the residual connection added as identity and rows renormalised, multiplied through the blocks.

captum and grad-cam would each compute one of these, but neither knows token layouts
or processors' crops, which are most of the work here, so neither is used. Never imports gradio.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from beit_demo.errors import InvalidRequestError
from beit_demo.inference.attribution import (
    Relevance,
    Turn,
    attention_rollout,
    gradient_weighted_rollout,
    gradient_x_activation,
    integrated_gradients,
    patch_size,
)
from beit_demo.inference.classify import input_dtype, preprocess
from beit_demo.inference.faces import JudgedFace, crop_box
from beit_demo.inference.heatmaps import (
    ATTENTION_ROLLOUT,
    DEFAULT_METHOD,
    GRADIENT_ROLLOUT,
    GRADIENT_X_ACTIVATION,
    INTEGRATED_GRADIENTS,
    METHODS,
    onto_image,
)
from beit_demo.models.loaded import LoadedModel


@dataclass(frozen=True)
class PatchRelevance:
    """Relevance over the model's patch grid for one class, in [0, 1] (the most relevant patch is 1)."""

    grid: np.ndarray  # (rows, columns) of patches, float32
    label: str  # the class explained
    method: str


# Families whose blocks read a sequence of patch tokens, as the methods assume (BEiT, DeiT and ViT).
EXPLAINABLE_FAMILIES = frozenset({"beit", "deit", "vit", "data2vec-vision"})


def check_explainable(loaded: LoadedModel) -> None:
    """Refuse, with a sentence, a model whose family the methods here do not fit (ConvNeXt, ResNet, Swin ...).

    Raises:
        InvalidRequestError: the family is not one of EXPLAINABLE_FAMILIES.
    """
    family = str(getattr(loaded.model.config, "model_type", ""))
    if family not in EXPLAINABLE_FAMILIES:
        raise InvalidRequestError(
            f"Explanations work for ViT-style models (BEiT, DeiT, ViT); this one is a {family!r:.40} model."
        )


def pick_method(method: str) -> str:
    """The method named (case and spaces forgiven), or the default for "".

    Raises:
        InvalidRequestError: an unknown method; the sentence lists the known ones.
    """
    wanted = " ".join(method.split()).casefold()
    if not wanted:
        return DEFAULT_METHOD
    if wanted in METHODS:
        return wanted
    raise InvalidRequestError(f"Unknown explanation method {method!r}: pick one of {', '.join(METHODS)}.")


def explain_patches(
    loaded: LoadedModel, image: Image.Image, label: str = "", method: str = "", turn: Turn = nullcontext
) -> PatchRelevance:
    """Relevance of each patch of ``image`` (as the model's processor prepares it) for ``label`` (default: the top-1).

    Args:
        turn: held around each pass that uses the model (`BatchingClassifier.exclusive`, so that no other pass runs
            meanwhile). The methods that hook into the model or switch its attention hold it for all their work;
            integrated gradients, which changes nothing in the model, takes it pass by pass, so that classifications
            run between its passes (each method takes it as it needs).

    Raises:
        InvalidRequestError: an unknown method or label.
    """
    method = pick_method(method)
    pixel_values = model_input(loaded, image)
    rows, columns = _grid(loaded, pixel_values)
    result = _METHODS[method](loaded, pixel_values, label, rows * columns, turn=turn)
    return patch_relevance(loaded, pixel_values, result, method)


def explain_faces(
    loaded: LoadedModel,
    photo: Image.Image,
    faces: Sequence[JudgedFace],
    size: tuple[int, int],
    method: str = "",
    turn: Turn = nullcontext,
) -> np.ndarray:
    """Each face's own label explained on that face's crop, as the model judged it, laid back onto the photo.

    Args:
        photo: the photo the faces were found in; their boxes are in its pixels.
        size: (width, height) of the relevance returned: the photo's, or a shrunk copy's of the same aspect.

    Returns:
        (height, width) relevance in [0, 1], each face's crop scaled to its own peak (every face's map is readable,
        whatever its label), 0 outside the crops.
    """
    width, height = size
    scale_x, scale_y = width / photo.width, height / photo.height
    canvas = np.zeros((height, width), dtype=np.float32)
    for face in faces:
        box = crop_box(face.box, photo.width, photo.height)
        crop = photo.crop(box)
        patches = explain_patches(loaded, crop, face.label, method, turn)
        left, top = round(box[0] * scale_x), round(box[1] * scale_y)
        right, bottom = max(left + 1, round(box[2] * scale_x)), max(top + 1, round(box[3] * scale_y))
        heat = Image.fromarray(onto_image(patches.grid, loaded.processor, crop.size), mode="F")
        shown = np.asarray(heat.resize((right - left, bottom - top), Image.Resampling.BILINEAR), dtype=np.float32)
        region = canvas[top:bottom, left:right]
        np.maximum(region, shown[: region.shape[0], : region.shape[1]], out=region)
    return canvas.clip(0.0, 1.0)


def model_input(loaded: LoadedModel, image: Image.Image) -> torch.Tensor:
    """``image`` as the model's processor prepares it: (1, 3, H, W) on the model's device, in its input dtype."""
    return preprocess(loaded, [image]).to(loaded.device, input_dtype(loaded))


def patch_relevance(
    loaded: LoadedModel, pixel_values: torch.Tensor, result: tuple[torch.Tensor, int], method: str
) -> PatchRelevance:
    """A method's raw relevance as a grid over the patches, negative parts cut, scaled so that its peak is 1."""
    relevance, index = result
    rows, columns = _grid(loaded, pixel_values)
    grid = relevance.reshape(rows, columns).clamp(min=0).cpu().numpy().astype(np.float32)
    peak = float(grid.max())
    return PatchRelevance(grid / peak if peak > 0 else grid, loaded.labels[index], method)


_METHODS: dict[str, Relevance] = {
    INTEGRATED_GRADIENTS: integrated_gradients,
    GRADIENT_ROLLOUT: gradient_weighted_rollout,
    GRADIENT_X_ACTIVATION: gradient_x_activation,
    ATTENTION_ROLLOUT: attention_rollout,
}


def _grid(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    return pixel_values.shape[-2] // patch_size(loaded), pixel_values.shape[-1] // patch_size(loaded)
