"""timm's evaluation preprocessing for a checkpoint, from its ``pretrained_cfg`` (part of the conversion
`beit_demo.models.timm_beit` describes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers import BeitImageProcessorPil

from beit_demo.models.timm_config import TimmConversionError

# timm's resolve_data_config() defaults, for fields a pretrained_cfg leaves out.
_DEFAULT_INTERPOLATION = "bicubic"
_DEFAULT_CROP_PCT = 0.875
_DEFAULT_CROP_MODE = "center"
_DEFAULT_MEAN = (0.485, 0.456, 0.406)
_DEFAULT_STD = (0.229, 0.224, 0.225)

_RESAMPLING = {
    "nearest": PIL.Image.Resampling.NEAREST,
    "bilinear": PIL.Image.Resampling.BILINEAR,
    "bicubic": PIL.Image.Resampling.BICUBIC,
    "box": PIL.Image.Resampling.BOX,
    "hamming": PIL.Image.Resampling.HAMMING,
    "lanczos": PIL.Image.Resampling.LANCZOS,
}


class TimmImageProcessor:
    """timm's evaluation transform for a checkpoint, as its ``pretrained_cfg`` describes it.

    Resize the shorter side to ``floor(crop_size / crop_pct)`` (aspect kept), take the centre ``crop_size`` square,
    scale to [0, 1] and normalise: the same tensor as timm's ``transforms_imagenet_eval`` with ``crop_mode="center"``.
    """

    def __init__(
        self,
        *,
        crop_size: int,
        crop_pct: float,
        interpolation: str,
        image_mean: Sequence[float],
        image_std: Sequence[float],
    ) -> None:
        if interpolation not in _RESAMPLING:
            raise TimmConversionError(
                f"Unsupported interpolation {interpolation!r}; expected one of {', '.join(_RESAMPLING)}."
            )
        if not isinstance(crop_pct, (int, float)) or not 0 < crop_pct <= 1:
            raise TimmConversionError(f"crop_pct must be in (0, 1], got {crop_pct!r}.")
        if len(image_mean) != 3 or len(image_std) != 3:
            raise TimmConversionError("mean and std must have one value per RGB channel.")
        self.crop_size = crop_size
        self.crop_pct = crop_pct
        self.interpolation = interpolation
        self.image_mean = (float(image_mean[0]), float(image_mean[1]), float(image_mean[2]))
        self.image_std = (float(image_std[0]), float(image_std[1]), float(image_std[2]))
        self.resize_size = math.floor(crop_size / crop_pct)  # timm: scale_size = floor(img_size / crop_pct)
        self._mean_std = (list(self.image_mean), list(self.image_std))
        # transformers' PIL backend resizes exactly as torchvision does for timm: the same shorter-side rule
        # (longer side int(size * long / short)) and the same PIL resize call. Its rescale and normalise give
        # bit-identical float32 too; only its crop differs (see _centre_crop), so that step is ours.
        self._processor = BeitImageProcessorPil(
            do_resize=True,
            size={"shortest_edge": self.resize_size},
            resample=_RESAMPLING[interpolation],
            do_center_crop=False,
            do_rescale=False,  # after the crop, on 224 x 224 rather than the whole resized image
            do_normalize=False,
        )

    @classmethod
    def from_pretrained_cfg(
        cls, pretrained_cfg: Mapping[str, Any], *, crop_size: int | None = None
    ) -> TimmImageProcessor:
        """Build the processor from timm's ``pretrained_cfg``, with timm's defaults for the fields it leaves out.

        Args:
            pretrained_cfg: the ``pretrained_cfg`` of timm's ``config.json``.
            crop_size: the model's input size, which ``input_size`` must agree with (BEiT's size is fixed).

        Raises:
            TimmConversionError: a non-square or mismatched ``input_size``, or a crop mode other than ``center``.
        """
        input_size = pretrained_cfg.get("input_size", [3, 224, 224])
        if not isinstance(input_size, (list, tuple)) or len(input_size) != 3 or input_size[0] != 3:
            raise TimmConversionError(f"input_size must be [3, size, size], got {input_size!r}.")
        if input_size[1] != input_size[2]:
            raise TimmConversionError(f"input_size must be [3, size, size], got {input_size!r}.")
        if crop_size is not None and input_size[1] != crop_size:
            raise TimmConversionError(f"input_size {input_size!r} does not match the model's image size {crop_size}.")
        crop_mode = pretrained_cfg.get("crop_mode") or _DEFAULT_CROP_MODE
        if crop_mode != "center":
            raise TimmConversionError(f"crop_mode {crop_mode!r} is not supported (only 'center').")
        return cls(
            crop_size=int(input_size[1]),
            crop_pct=pretrained_cfg.get("crop_pct") or _DEFAULT_CROP_PCT,
            interpolation=pretrained_cfg.get("interpolation") or _DEFAULT_INTERPOLATION,
            image_mean=pretrained_cfg.get("mean") or _DEFAULT_MEAN,
            image_std=pretrained_cfg.get("std") or _DEFAULT_STD,
        )

    def __call__(
        self, images: PIL.Image.Image | Sequence[PIL.Image.Image], return_tensors: str = "pt"
    ) -> dict[str, torch.Tensor]:
        """Preprocess PIL images.

        Returns:
            ``{"pixel_values": float32 tensor of shape (N, 3, crop_size, crop_size)}``.
        """
        if return_tensors != "pt":
            raise ValueError(f"Only return_tensors='pt' is supported, got {return_tensors!r}.")
        if isinstance(images, PIL.Image.Image):
            images = [images]
        if not images:
            raise ValueError("No images to preprocess.")
        # timm's datasets and examples open images with .convert("RGB"), which drops alpha; transformers' own
        # conversion would composite it onto white instead, a different tensor.
        rgb_images = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        resized = self._processor(rgb_images, return_tensors=None)["pixel_values"]  # uint8, (3, H, W) each
        normalised = [
            self._processor.normalize(self._processor.rescale(self._centre_crop(pixels), 1 / 255), *self._mean_std)
            for pixels in resized
        ]
        # normalize() hands back transposed views; the model's convolution wants a C-contiguous batch
        return {"pixel_values": torch.from_numpy(np.ascontiguousarray(np.stack(normalised)))}

    def _centre_crop(self, pixels: np.ndarray) -> np.ndarray:
        # timm uses torchvision's CenterCrop, whose offsets are int(round(excess / 2)) with round-half-to-even;
        # transformers' center_crop floors (excess // 2). The two differ by one pixel when the excess is 3 mod 4,
        # e.g. a 640 x 427 photo resized to 371 x 248.
        height, width = pixels.shape[-2:]
        top = int(round((height - self.crop_size) / 2.0))
        left = int(round((width - self.crop_size) / 2.0))
        return pixels[:, top : top + self.crop_size, left : left + self.crop_size]

    def __repr__(self) -> str:
        return (
            f"TimmImageProcessor(crop_size={self.crop_size}, crop_pct={self.crop_pct}, "
            f"interpolation={self.interpolation!r}, resize_size={self.resize_size}, "
            f"image_mean={self.image_mean}, image_std={self.image_std})"
        )
