"""Relevance maps as pictures, and laid back over the photo through a processor's resize and crop.

NumPy and Pillow only (no torch), so the page can draw overlays without importing the models' libraries.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# The explanation methods `beit_demo.inference.explain` offers, the default first; named here, without torch,
# so that the page can list them before any model is loaded.
INTEGRATED_GRADIENTS = "integrated gradients"
GRADIENT_ROLLOUT = "gradient-weighted rollout"
GRADIENT_X_ACTIVATION = "gradient x activation"
ATTENTION_ROLLOUT = "attention rollout"
METHODS = (INTEGRATED_GRADIENTS, GRADIENT_ROLLOUT, GRADIENT_X_ACTIVATION, ATTENTION_ROLLOUT)
DEFAULT_METHOD = METHODS[0]


def onto_image(relevance: np.ndarray, processor: object, image_size: tuple[int, int]) -> np.ndarray:
    """The patch relevance laid over the photo as the processor saw it: (height, width) of ``image_size``.

    The grid is stretched over the model's input, put back where the processor's centre crop took that input from
    in its resized image (what was cropped away gets 0), and that resized image stretched back to the photo.
    """
    width, height = image_size
    resized_width, resized_height, (left, top, crop_width, crop_height) = _processor_geometry(processor, image_size)
    grid = Image.fromarray(relevance.astype(np.float32), mode="F")
    inside = np.asarray(grid.resize((crop_width, crop_height), Image.Resampling.BILINEAR), dtype=np.float32)
    canvas = np.zeros((resized_height, resized_width), dtype=np.float32)
    canvas[top : top + crop_height, left : left + crop_width] = inside[: resized_height - top, : resized_width - left]
    back = Image.fromarray(canvas, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(back, dtype=np.float32), 0.0, 1.0)


def _processor_geometry(processor: object, image_size: tuple[int, int]):
    """(resized width, resized height, (crop left, top, width, height)) for an image of ``image_size``."""
    width, height = image_size
    shortest = getattr(processor, "resize_size", None)  # the timm-checkpoint processor
    if shortest is not None:
        resized = _shortest_edge(width, height, shortest)
        crop = int(processor.crop_size)
        # timm crops as torchvision does: offsets rounded half to even.
        left, top = int(round((resized[0] - crop) / 2.0)), int(round((resized[1] - crop) / 2.0))
        return (*resized, (left, top, crop, crop))
    size = dict(getattr(processor, "size", None) or {})
    if "shortest_edge" in size:
        resized = _shortest_edge(width, height, int(size["shortest_edge"]))
    elif "height" in size and "width" in size:
        resized = (int(size["width"]), int(size["height"]))
    else:
        resized = (width, height)
    if getattr(processor, "do_center_crop", False):
        crop = dict(processor.crop_size)
        crop_width, crop_height = int(crop["width"]), int(crop["height"])
        left, top = (resized[0] - crop_width) // 2, (resized[1] - crop_height) // 2  # transformers floors
        return (*resized, (left, top, crop_width, crop_height))
    return (*resized, (0, 0, *resized))


def _shortest_edge(width: int, height: int, shortest: int) -> tuple[int, int]:
    """transformers' (and torchvision's) shorter-side resize: the longer side is int(shortest * long / short)."""
    if width <= height:
        return shortest, int(shortest * height / width)
    return int(shortest * width / height), shortest


# A perceptually ordered colour scale (dark blue -> red -> yellow), interpolated between these stops.
_STOPS = np.array([[0, 0, 64], [80, 18, 123], [182, 54, 121], [251, 136, 97], [252, 253, 191]], dtype=np.float32)
MAX_SIDE = 1024  # the overlay and the heatmap are at most this large


def display_size(image_size: tuple[int, int]) -> tuple[int, int]:
    """The photo's size, shrunk (aspect kept) so that its longer side is at most MAX_SIDE."""
    width, height = image_size
    scale = min(1.0, MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def heatmap_image(relevance: np.ndarray) -> Image.Image:
    """Relevance in [0, 1] as a greyscale picture: brighter is more relevant."""
    return Image.fromarray(np.round(np.clip(relevance, 0, 1) * 255).astype(np.uint8), mode="L")


def overlay_image(photo: Image.Image, relevance: np.ndarray, opacity: float = 0.6) -> Image.Image:
    """The photo with the relevance drawn over it in colour; where relevance is 0 the photo shows through."""
    positions = np.clip(relevance, 0, 1) * (len(_STOPS) - 1)
    lower = np.floor(positions).astype(int).clip(0, len(_STOPS) - 2)
    weight = (positions - lower)[..., None]
    colours = _STOPS[lower] * (1 - weight) + _STOPS[lower + 1] * weight
    alpha = (opacity * np.sqrt(np.clip(relevance, 0, 1)))[..., None]
    mixed = np.asarray(photo.convert("RGB"), dtype=np.float32) * (1 - alpha) + colours * alpha
    return Image.fromarray(np.round(mixed).astype(np.uint8), mode="RGB")
