"""Why a model said what it said: relevance over the image patches, mapped back onto the uploaded photo.

Two methods, for every ViT-family model the registry serves (BEiT with its mean-pooled head, the timm-converted BEiT,
DeiT with its CLS and distillation tokens):

- ``gradient x activation`` (the default, class-discriminative): the gradient of the chosen class's logit with
  respect to the patch tokens entering the last block, times those tokens, summed over channels; its magnitude is the
  relevance. The gradient goes through each architecture's own pooling, whatever it is (BEiT averages the patch
  tokens; DeiT's head reads the CLS token), so no special case is needed. The sign is left out because it says which
  way a token's features point, not whether they matter: on the tiny BEiT of the tests the object's tokens were all
  strongly negative, and keeping the positive part only put the peak on the object in 6 of 40 images (40 of 40 with
  the magnitude).
- ``attention rollout`` (Abnar and Zuidema 2020, class-agnostic): each block's attention averaged over heads, with
  the residual connection added as identity and rows renormalised, multiplied through the blocks; then the row of
  what the head reads (the CLS token for DeiT, the mean of the patch tokens for mean-pooling BEiT), over the patches.

captum's LayerGradientXActivation and grad-cam would each compute one of these in a few lines, but neither knows
token layouts or processors' crops, which are most of the work here, and each would add a dependency for a sum
over channels, so neither is used. Never imports gradio.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from beit_demo.errors import InvalidRequestError
from beit_demo.inference.classify import input_dtype, preprocess
from beit_demo.inference.heatmaps import ATTENTION_ROLLOUT, GRADIENT_X_ACTIVATION, METHODS
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.optimize import encoder_blocks


@dataclass(frozen=True)
class PatchRelevance:
    """Relevance over the model's patch grid for one class, in [0, 1] (the most relevant patch is 1)."""

    grid: np.ndarray  # (rows, columns) of patches, float32
    label: str  # the class explained
    method: str


# Families whose blocks read a sequence of patch tokens, as the two methods assume (BEiT, DeiT and ViT).
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
        return GRADIENT_X_ACTIVATION
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


def explain_patches(loaded: LoadedModel, image: Image.Image, label: str = "", method: str = "") -> PatchRelevance:
    """Relevance of each patch of ``image`` (as the model's processor prepares it) for ``label`` (default: the top-1).

    Runs one forward pass with gradients (or with attention weights, for rollout): the caller makes sure no other
    forward pass uses the model at the same time (`BatchingClassifier.exclusive`).

    Raises:
        InvalidRequestError: an unknown method or label.
    """
    method = pick_method(method)
    pixel_values = preprocess(loaded, [image]).to(loaded.device, input_dtype(loaded))
    rows, columns = _grid(loaded, pixel_values)
    if method == ATTENTION_ROLLOUT:
        with torch.inference_mode(), _eager_attention(loaded.model):
            output = loaded.model(pixel_values=pixel_values, output_attentions=True)
        index = pick_class(loaded, label, output.logits[0].float())
        attentions = [attention[0].float() for attention in output.attentions]
        prefix = attentions[0].shape[-1] - rows * columns  # CLS, and DeiT's distillation token
        relevance = rollout(attentions, prefix, _reads_cls(loaded))
    else:
        relevance, index = _gradient_x_activation(loaded, pixel_values, label, rows * columns)
    grid = relevance.reshape(rows, columns).clamp(min=0).cpu().numpy().astype(np.float32)
    peak = float(grid.max())
    return PatchRelevance(grid / peak if peak > 0 else grid, loaded.labels[index], method)


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
    read = joint[0] if reads_cls else joint[prefix:].mean(dim=0)
    return read[prefix:]


def _gradient_x_activation(
    loaded: LoadedModel, pixel_values: torch.Tensor, label: str, patches: int
) -> tuple[torch.Tensor, int]:
    blocks = encoder_blocks(loaded.model)
    if blocks is None:
        raise InvalidRequestError("This model has no transformer blocks to explain.")
    captured: list[torch.Tensor] = []

    def take_input(module: torch.nn.Module, args: tuple, kwargs: dict):
        hidden = args[0].detach().requires_grad_(True)  # the graph starts here: only the last block and the head
        captured.append(hidden)
        return (hidden, *args[1:]), kwargs

    hook = blocks[1][-1].register_forward_pre_hook(take_input, with_kwargs=True)
    try:
        with torch.enable_grad():
            logits = loaded.model(pixel_values=pixel_values).logits[0].float()
            index = pick_class(loaded, label, logits.detach())
            (gradient,) = torch.autograd.grad(logits[index], captured[0])
    finally:
        hook.remove()
    hidden = captured[0][0].detach().float()
    relevance = (gradient[0].float() * hidden).sum(dim=-1).abs()
    return relevance[relevance.shape[0] - patches :], index


@contextmanager
def _eager_attention(model: torch.nn.Module):
    """transformers returns attention weights only from its eager attention: switch to it for one pass."""
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _grid(loaded: LoadedModel, pixel_values: torch.Tensor) -> tuple[int, int]:
    patch = int(getattr(loaded.model.config, "patch_size", 16))
    return pixel_values.shape[-2] // patch, pixel_values.shape[-1] // patch


def _reads_cls(loaded: LoadedModel) -> bool:
    """Whether the head reads the CLS token (DeiT, ViT) rather than the mean of the patch tokens (BEiT)."""
    return not getattr(loaded.model.config, "use_mean_pooling", False)
