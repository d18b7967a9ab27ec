"""Inference-only changes to a loaded model that keep its answers and make it faster on the CPU.

BENCHMARKS.md says what each one saves. They are applied once, at load time (`speed_up`).
"""

from __future__ import annotations

import functools
import itertools
import threading
from contextlib import contextmanager

import torch


def speed_up(model: torch.nn.Module, precision: str, device: str) -> None:
    """Apply every speed-up that fits ``precision`` on ``device``, in place; explanations still back-propagate."""
    freeze_relative_position_biases(model)
    if precision == "fp32" and device == "cpu":
        prepack_linear_layers(model)
    if precision == "int8":
        make_quantized_linears_differentiable(model)


def encoder_blocks(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList] | None:
    """The model's transformer blocks (its longest `nn.ModuleList`) and their name, or None when it has none."""
    lists = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.ModuleList)]
    return max(lists, key=lambda item: len(item[1])) if lists else None


# Rows a prepacked weight's layout is chosen for: BEiT/DeiT-base at 224 px see 196 patches and a class token.
_PREPACK_ROWS = 197


class PrepackedLinear(torch.nn.Module):
    """`torch.nn.Linear` with its weight reordered once into oneDNN's blocked layout; for inference only.

    `nn.Linear` on the CPU calls MKL's sgemm, which repacks the weight on every call; on the 2-core AMD EPYC (AVX2)
    measured here it reaches about 100 GFLOP/s on BEiT's shapes, and oneDNN with a prepacked weight about 150, near
    the cores' peak. That takes the fp32 BEiT-base forward pass from about 0.37 s to 0.28 s, with the same results
    to 1e-5. torch.compile's freezing does the same reorder, after a compile of 40 s per model.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.packed_weight = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), _PREPACK_ROWS)
        bias = linear.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(), requires_grad=False)
        self.keepers = 0  # explanations inside `backward_weights_kept` now
        self.kept_weight: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.requires_grad and torch.is_grad_enabled():  # an explanation's pass
            return _BackwardByWeight.apply(hidden_states, self)
        return self.fast_forward(hidden_states)

    def fast_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(hidden_states, self.packed_weight, self.bias, "none", [], "")

    def weight_for_backward(self) -> torch.Tensor:
        """The (out, in) weight, read back from the packed one: the packed product of the identity is its transpose.

        Costs one product of in x in x out (BEiT-base's head: 13 GMAC), only in an explanation's backward pass; the
        weight is kept only while `backward_weights_kept` says so, since keeping it would double the model's memory.
        """
        kept = self.kept_weight
        if kept is not None:
            return kept
        identity = torch.eye(self.in_features, dtype=self.packed_weight.dtype, device=self.packed_weight.device)
        weight = torch.ops.mkldnn._linear_pointwise(identity, self.packed_weight, None, "none", [], "").t()
        if self.keepers:
            self.kept_weight = weight
        return weight


class DifferentiableDynamicLinear(torch.nn.Module):
    """A dynamically quantized (int8) `Linear` that an explanation's backward pass can go through.

    torch's quantized modules have no backward; this one back-propagates with the dequantized weight.
    """

    def __init__(self, quantized: torch.nn.Module):
        super().__init__()
        self.quantized = quantized

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.requires_grad and torch.is_grad_enabled():
            return _BackwardByWeight.apply(hidden_states, self)
        return self.quantized(hidden_states)

    def fast_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.quantized(hidden_states)

    def weight_for_backward(self) -> torch.Tensor:
        return self.quantized.weight().dequantize()


class _BackwardByWeight(torch.autograd.Function):
    """A linear layer's product, with the gradient of its input from the weight the layer hands over on demand."""

    @staticmethod
    def forward(ctx, hidden_states: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
        ctx.layer = layer
        return layer.fast_forward(hidden_states)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        weight = ctx.layer.weight_for_backward().to(grad_output.dtype)
        return grad_output @ weight, None


@contextmanager
def backward_weights_kept(model: torch.nn.Module):
    """Within this block, each prepacked layer reads its weight back once, however many backward passes run.

    For an explanation that runs several backward passes (integrated gradients): the weights then take the model's
    memory a second time, until the block ends.
    """
    layers = [module for module in model.modules() if isinstance(module, PrepackedLinear)]
    with _keepers_lock:
        for layer in layers:
            layer.keepers += 1
    try:
        yield
    finally:
        with _keepers_lock:
            for layer in layers:
                layer.keepers -= 1
                if not layer.keepers:
                    layer.kept_weight = None


_keepers_lock = threading.Lock()


def make_quantized_linears_differentiable(model: torch.nn.Module) -> int:
    """Wrap every dynamically quantized `Linear` of ``model`` in `DifferentiableDynamicLinear`, in place."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return _replace_modules(model, DynamicLinear, DifferentiableDynamicLinear)


@functools.cache
def _prepacked_linear_works() -> bool:
    """Whether this torch build has oneDNN's prepacked linear and it agrees with `nn.Linear`."""
    if not torch.backends.mkldnn.is_available():
        return False
    linear = torch.nn.Linear(16, 8).eval()
    inputs = torch.randn(2, 3, 16)
    try:
        with torch.inference_mode():
            return torch.allclose(PrepackedLinear(linear)(inputs), linear(inputs), atol=1e-5)
    except (RuntimeError, AttributeError):  # the private ops moved or refused this build
        return False


def prepack_linear_layers(model: torch.nn.Module) -> bool:
    """Swap every `nn.Linear` of an fp32 CPU model for a `PrepackedLinear`, in place.

    The other weights are copied out of the checkpoint's memory map too: the map stays mapped while any tensor
    points into it, and with the packed copies beside it the file's pages would double the resident memory.

    Returns:
        False, changing nothing, where this torch build lacks a working oneDNN prepacked linear.
    """
    if not _prepacked_linear_works():
        return False
    _replace_modules(model, torch.nn.Linear, PrepackedLinear)
    with torch.no_grad():
        for tensor in itertools.chain(model.parameters(), model.buffers()):
            tensor.data = tensor.data.clone()
    return True


class FrozenRelativePositionBias(torch.nn.Module):
    """BEiT's relative position bias, computed once per input size instead of in every layer of every pass.

    transformers rebuilds it from its table in each layer of each pass (an interpolation to the same size, a gather,
    a copy): about 20 ms of a 280 ms forward pass on 2 cores. With the weights frozen for inference it never changes;
    kept, it takes 1.9 MB per layer (22 MB for BEiT-base).
    """

    def __init__(self, bias: torch.nn.Module):
        super().__init__()
        self.bias = bias
        self._computed: dict[tuple, torch.Tensor] = {}

    def forward(
        self, window_size: tuple[int, int], interpolate_pos_encoding: bool = False, dim_size: int | None = None
    ) -> torch.Tensor:
        key = (tuple(window_size), bool(interpolate_pos_encoding), dim_size)
        if key not in self._computed:
            # An ordinary tensor even when first asked for under inference_mode: the explain pass, which records
            # gradients, reuses it.
            with torch.inference_mode(False), torch.no_grad():
                self._computed[key] = self.bias(window_size, interpolate_pos_encoding, dim_size=dim_size)
        return self._computed[key]


def freeze_relative_position_biases(model: torch.nn.Module) -> int:
    """Wrap every BEiT relative position bias of an inference model in `FrozenRelativePositionBias`, in place.

    Returns:
        How many were wrapped (0 for models without one, like DeiT).
    """
    from transformers.models.beit.modeling_beit import BeitRelativePositionBias

    return _replace_modules(model, BeitRelativePositionBias, FrozenRelativePositionBias)


def _replace_modules(model: torch.nn.Module, kind: type, replacement: type) -> int:
    """Put ``replacement(child)`` in the place of every submodule whose type is exactly ``kind``; returns how many."""
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is kind:
                setattr(module, name, replacement(child))
                replaced += 1
    return replaced
