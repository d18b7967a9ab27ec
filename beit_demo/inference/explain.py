"""Why a model said what it said: relevance over the image patches, mapped back onto the uploaded photo.

Four methods, for every ViT-family model the registry serves (BEiT with its mean-pooled head, the timm-converted
BEiT, DeiT with its CLS and distillation tokens, ViT):

- ``integrated gradients`` (Sundararajan, Taly and Yan 2017; the default, class-discriminative): the gradient of
  the class's log-probability averaged along the path from a plain picture to the photo, times the photo's pixels,
  summed per patch. Of the methods tried, the only one that pointed at the evidence on nearly every upload of each
  of the twelve independently trained models of the tests (README, "Explanations"); it costs 12 forward and
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

"What the head reads" is each architecture's own pooling: the CLS token for DeiT and ViT, the mean of the patch
tokens for mean-pooling BEiT. captum and grad-cam would each compute one of these, but neither knows token layouts
or processors' crops, which are most of the work here, so neither is used. Never imports gradio.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from beit_demo.errors import InvalidRequestError
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
from beit_demo.models.optimize import backward_weights_kept, encoder_blocks

# Integrated gradients' steps along the path from the baseline to the photo (midpoints of equal parts). On the twelve
# test models, 12, 16 and 24 steps pointed alike (each model within a few uploads of 48 either way), while 8 fell
# short on one of them. Two steps share each pass, which bounds the memory the backward passes hold (about 250 MB for
# BEiT-base).
INTEGRATED_GRADIENT_STEPS = 12
_STEPS_PER_PASS = 2

# Holds the model for one forward (and backward) pass: `BatchingClassifier.exclusive`, or nothing.
Turn = Callable[[], AbstractContextManager]
# A method's raw relevance: (model, pixel values of one image, label asked for, patches, turn=...) -> (per patch,
# class index). Each method holds the model through ``turn`` as long as it must (see `explain_patches`).
Relevance = Callable[..., tuple[torch.Tensor, int]]


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


def pick_class(loaded: LoadedModel, label: str, logits: torch.Tensor) -> int:
    """The index of ``label`` among the model's classes, or of its top-1 for "".

    Raises:
        InvalidRequestError: a label the model does not have; the sentence says how to pick one.
    """
    if not label.strip():
        return int(logits.argmax())
    for index, name in enumerate(loaded.labels):
        if name == label or name.casefold() == label.strip().casefold():
            return index
    top = [loaded.labels[index] for index in logits.topk(min(5, len(loaded.labels))).indices.tolist()]
    raise InvalidRequestError(
        f"This model has no class {label!r}: leave the class empty for its top-1, or pick one of its labels, "
        f"such as {', '.join(repr(name) for name in top)}."
    )


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


def integrated_gradients(
    loaded: LoadedModel,
    pixel_values: torch.Tensor,
    label: str,
    patches: int,
    steps: int = INTEGRATED_GRADIENT_STEPS,
    turn: Turn = nullcontext,
) -> tuple[torch.Tensor, int]:
    """Sundararajan, Taly and Yan's integrated gradients, summed over each patch's pixels and channels.

    The baseline is the processor's zero: a plain picture of the colour the model was normalised around (mid grey
    for BEiT's mean 0.5, ImageNet's mean colour for DeiT). The class's log-probability is differentiated at
    ``steps`` points of the straight path from it to the photo; the mean gradient times the photo's difference from
    the baseline gives each pixel's share of the change, and the shares add up to it (the method's completeness).
    So a patch that merely carries a large gradient (a border token the attention gathers on) gets no share unless
    its pixels count. The log-probability rather than the logit: it is the class against the others, which a push
    of every logit at once (evidence for no class in particular) does not change.
    """
    with turn(), torch.no_grad():  # not inference_mode: a model may cache tensors that the gradient passes reuse
        index = pick_class(loaded, label, loaded.model(pixel_values=pixel_values).logits[0].float())
    total = torch.zeros_like(pixel_values, dtype=torch.float32)
    fractions = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    with backward_weights_kept(loaded.model):
        for chunk in fractions.split(_STEPS_PER_PASS):
            scaled = (pixel_values * chunk.view(-1, 1, 1, 1).to(pixel_values)).requires_grad_(True)
            with turn(), torch.enable_grad():
                log_probability = loaded.model(pixel_values=scaled).logits.float().log_softmax(dim=-1)[:, index]
                (gradient,) = torch.autograd.grad(log_probability.sum(), scaled)
            total += gradient.float().sum(dim=0, keepdim=True)
    attribution = (total[0] / steps * pixel_values[0].float()).sum(dim=0)  # (height, width)
    return patch_sums(attribution, _patch_size(loaded)), index


def patch_sums(values: torch.Tensor, patch: int) -> torch.Tensor:
    """A (height, width) map summed over each ``patch`` x ``patch`` square, row by row (the model's patch order)."""
    rows, columns = values.shape[0] // patch, values.shape[1] // patch
    return values[: rows * patch, : columns * patch].reshape(rows, patch, columns, patch).sum(dim=(1, 3)).reshape(-1)


def gradient_weighted_rollout(
    loaded: LoadedModel, pixel_values: torch.Tensor, label: str, patches: int, turn: Turn = nullcontext
) -> tuple[torch.Tensor, int]:
    """Chefer, Gur and Wolf's relevance: R = I, then R += mean over heads of relu(dlogit/dA * A) @ R, block by block.

    One forward pass with eager attention (the only kind that hands out its weights) and one backward pass from the
    class's logit to the attention weights; the graph starts at the first block's input, so the patch embedding is
    not differentiated.
    """
    with turn(), _gradients_from_block(loaded, 0), _eager_attention(loaded.model):
        output = loaded.model(pixel_values=pixel_values, output_attentions=True)
        logits = output.logits[0].float()
        index = pick_class(loaded, label, logits.detach())
        attentions = output.attentions
        gradients = torch.autograd.grad(logits[index], attentions)
    tokens = attentions[0].shape[-1]
    joint = torch.eye(tokens, dtype=torch.float32, device=attentions[0].device)
    for attention, gradient in zip(attentions, gradients, strict=True):
        weighted = (gradient[0].float() * attention[0].detach().float()).clamp(min=0).mean(dim=0)
        joint = joint + weighted @ joint
    # Without the identity, which gives every patch the same share under a mean-pooling head (BEiT).
    return _read(joint - torch.eye(tokens, device=joint.device), tokens - patches, _reads_cls(loaded)), index


def gradient_x_activation(
    loaded: LoadedModel,
    pixel_values: torch.Tensor,
    label: str,
    patches: int,
    block: int = -1,
    part: Literal["magnitude", "positive"] = "magnitude",
    turn: Turn = nullcontext,
) -> tuple[torch.Tensor, int]:
    """The gradient of the class's logit times the tokens entering ``block``, summed over channels, per patch.

    Args:
        block: which block's input (-1: the last); the backward pass runs through that block and those after it.
        part: "magnitude" keeps the sum's absolute value, "positive" its positive part.
    """
    with turn(), _gradients_from_block(loaded, block) as captured:
        logits = loaded.model(pixel_values=pixel_values).logits[0].float()
        index = pick_class(loaded, label, logits.detach())
        (gradient,) = torch.autograd.grad(logits[index], captured[0])
    hidden = captured[0][0].detach().float()
    summed = (gradient[0].float() * hidden).sum(dim=-1)
    relevance = summed.abs() if part == "magnitude" else summed.clamp(min=0)
    return relevance[relevance.shape[0] - patches :], index


def attention_rollout(
    loaded: LoadedModel, pixel_values: torch.Tensor, label: str, patches: int, turn: Turn = nullcontext
) -> tuple[torch.Tensor, int]:
    """Abnar and Zuidema's rollout of the attention weights (the same map for every class)."""
    with turn(), torch.inference_mode(), _eager_attention(loaded.model):
        output = loaded.model(pixel_values=pixel_values, output_attentions=True)
    index = pick_class(loaded, label, output.logits[0].float())
    attentions = [attention[0].float() for attention in output.attentions]
    return rollout(attentions, attentions[0].shape[-1] - patches, _reads_cls(loaded)), index


def rollout(attentions: Sequence[torch.Tensor], prefix: int, reads_cls: bool) -> torch.Tensor:
    """Attention rollout over the patch tokens.

    Args:
        attentions: one (heads, tokens, tokens) tensor per block, first block first.
        prefix: tokens before the patches (CLS, and DeiT's distillation token).
        reads_cls: the head reads the CLS token (DeiT); otherwise it averages the patch tokens (BEiT).

    Returns:
        One value per patch.
    """
    tokens = attentions[0].shape[-1]
    identity = torch.eye(tokens, dtype=attentions[0].dtype, device=attentions[0].device)
    joint = identity
    for attention in attentions:
        mixed = 0.5 * attention.mean(dim=0) + 0.5 * identity  # the residual path, as identity
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        joint = mixed @ joint
    return _read(joint, prefix, reads_cls)


_METHODS: dict[str, Relevance] = {
    INTEGRATED_GRADIENTS: integrated_gradients,
    GRADIENT_ROLLOUT: gradient_weighted_rollout,
    GRADIENT_X_ACTIVATION: gradient_x_activation,
    ATTENTION_ROLLOUT: attention_rollout,
}


def _read(joint: torch.Tensor, prefix: int, reads_cls: bool) -> torch.Tensor:
    """The row of a token-to-token relevance that the head reads (CLS, or the mean of the patches), over patches."""
    read = joint[0] if reads_cls else joint[prefix:].mean(dim=0)
    return read[prefix:]


@contextmanager
def _gradients_from_block(loaded: LoadedModel, block: int):
    """Record gradients from the input of block ``block`` on (the list yielded receives that input)."""
    blocks = encoder_blocks(loaded.model)
    if blocks is None:
        raise InvalidRequestError("This model has no transformer blocks to explain.")
    captured: list[torch.Tensor] = []

    def take_input(module: torch.nn.Module, args: tuple, kwargs: dict):
        hidden = args[0].detach().requires_grad_(True)  # the graph starts here
        captured.append(hidden)
        return (hidden, *args[1:]), kwargs

    hook = blocks[1][block].register_forward_pre_hook(take_input, with_kwargs=True)
    try:
        with torch.enable_grad():
            yield captured
    finally:
        hook.remove()


@contextmanager
def _eager_attention(model: torch.nn.Module):
    """transformers returns attention weights only from its eager attention: switch to it for one pass."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _patch_size(loaded: LoadedModel) -> int:
    return int(getattr(loaded.model.config, "patch_size", 16))


def _grid(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    return pixel_values.shape[-2] // _patch_size(loaded), pixel_values.shape[-1] // _patch_size(loaded)


def _reads_cls(loaded: LoadedModel) -> bool:
    """Whether the head reads the CLS token (DeiT, ViT) rather than the mean of the patch tokens (BEiT)."""
    return not getattr(loaded.model.config, "use_mean_pooling", False)
