"""Pure inference: images in, top-k labels out.

preprocess -> forward -> postprocess, as in transformers' image-classification pipeline, but batched
and without the pipeline's per-call overhead. Never imports gradio.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from beit_demo.registry import LoadedModel


@dataclass(frozen=True)
class Prediction:
    """The result for one image."""

    scores: dict[str, float]  # label -> probability, most likely first
    seconds: float  # wall time of preprocess + forward + postprocess for the batch this image was in
    pixel_values: torch.Tensor | None = None  # (3, H, W): the input the model got, for `model_view`


def preprocess(loaded: LoadedModel, images: Sequence[Image.Image]) -> torch.Tensor:
    """The checkpoint's own image processor: resize, crop, normalise into a (N, 3, H, W) batch."""
    return loaded.processor(images=list(images), return_tensors="pt")["pixel_values"]


def forward(loaded: LoadedModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits (N, num_labels) as float32 on the CPU."""
    parameter = next(loaded.model.parameters(), None)
    dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
    with torch.inference_mode():
        logits = loaded.model(pixel_values=pixel_values.to(loaded.device, dtype)).logits
    return logits.float().cpu()


def postprocess(logits: torch.Tensor, labels: Sequence[str], top_k: int) -> list[dict[str, float]]:
    """Softmax and the ``top_k`` most likely labels per row (``top_k`` capped at the number of labels)."""
    k = max(1, min(int(top_k), len(labels)))
    probabilities = logits.softmax(dim=-1)
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
    rows = postprocess(forward(loaded, pixel_values), loaded.labels, max(top_ks))
    seconds = time.perf_counter() - started
    return [
        Prediction(dict(itertools.islice(scores.items(), max(1, k))), seconds, pixels)
        for scores, k, pixels in zip(rows, top_ks, pixel_values, strict=True)
    ]


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

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(hidden_states, self.packed_weight, self.bias, "none", [], "")


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
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, PrepackedLinear(child))
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
            with torch.no_grad():
                self._computed[key] = self.bias(window_size, interpolate_pos_encoding, dim_size=dim_size)
        return self._computed[key]


def freeze_relative_position_biases(model: torch.nn.Module) -> int:
    """Wrap every BEiT relative position bias of an inference model in `FrozenRelativePositionBias`, in place.

    Returns:
        How many were wrapped (0 for models without one, like DeiT).
    """
    from transformers.models.beit.modeling_beit import BeitRelativePositionBias

    wrapped = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is BeitRelativePositionBias:
                setattr(module, name, FrozenRelativePositionBias(child))
                wrapped += 1
    return wrapped


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
