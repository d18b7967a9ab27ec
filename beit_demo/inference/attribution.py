"""The explanation methods: each one's raw relevance over the patch tokens of one image, for one class.

Each method is ``(loaded, pixel_values of one image, label, patches, turn=...) -> (relevance per patch, class index)``
and holds the model through ``turn`` as long as it must. `beit_demo.inference.explain` picks one, scales its result and
lays it back onto the photo. "What the head reads" is each architecture's own pooling: the CLS token for DeiT and
ViT, the mean of the patch tokens for mean-pooling BEiT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Literal

import torch

from beit_demo.errors import InvalidRequestError
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.optimize import backward_weights_kept, encoder_blocks

# Integrated gradients' steps along the path from the baseline to the photo (midpoints of equal parts). On the twelve
# test models, 20 steps point as 32 do (each model within 2 of 48 uploads of it, the least 44); with 12 or 16 steps
# the sum is coarser, and one model or another falls to 41-43. Two steps share each pass, which bounds the memory the
# backward passes hold (about 250 MB for BEiT-base); four a pass were only 7% faster.
INTEGRATED_GRADIENT_STEPS = 20
_STEPS_PER_PASS = 2

# Holds the model for one forward (and backward) pass: `BatchingClassifier.exclusive`, or nothing.
Turn = Callable[[], AbstractContextManager]
# A method's raw relevance: (model, pixel values of one image, label asked for, patches, turn=...) -> (per patch,
# class index). Each method holds the model through ``turn`` as long as it must (see `explain_patches`).
Relevance = Callable[..., tuple[torch.Tensor, int]]


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
    return patch_sums(attribution, patch_size(loaded)), index


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


def patch_size(loaded: LoadedModel) -> int:
    return int(getattr(loaded.model.config, "patch_size", 16))


def _reads_cls(loaded: LoadedModel) -> bool:
    """Whether the head reads the CLS token (DeiT, ViT) rather than the mean of the patch tokens (BEiT)."""
    return not getattr(loaded.model.config, "use_mean_pooling", False)
