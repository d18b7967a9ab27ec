"""Serve timm's BEiT checkpoint through transformers, without the timm package.

timm publishes ``beit_base_patch16_224`` as a ``config.json`` in timm's own layout (``architecture``, ``num_classes``,
``pretrained_cfg``, optionally ``model_args`` and ``label_names``) and a ``model.safetensors`` with timm's tensor
names. This module reads both, builds the equal :class:`~transformers.BeitConfig`, renames (and splits) the tensors
for :class:`~transformers.BeitForImageClassification`, and reproduces timm's evaluation preprocessing.

timm itself is not a dependency: its PyPI build needs a torchvision that does not import beside our torch. The
conversion is checked against timm in ``tools/timm_parity.py``, run in a separate virtualenv (see
``docs/timm-conversion.md``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import safetensors
import safetensors.torch
import torch
from transformers import BeitConfig, BeitForImageClassification, BeitImageProcessorPil
from transformers.models.beit.modeling_beit import BeitRelativePositionBias

SUPPORTED_ARCHITECTURES = ("beit_base_patch16_224",)

IMAGENET1K_LABELS_PATH = Path(__file__).parent / "data" / "imagenet1k_labels.txt"

# timm's beit_base_patch16_224(): the sizes a config's model_args may override (how the tests build a tiny one).
_BASE_SIZES: dict[str, Any] = {
    "img_size": 224,
    "patch_size": 16,
    "embed_dim": 768,
    "depth": 12,
    "num_heads": 12,
    "mlp_ratio": 4.0,
}
# model_args keys recent timm exports record although they only restate beit_base_patch16_224; any other value
# would change the architecture, so it is refused rather than silently ignored.
_FIXED_MODEL_ARGS: dict[str, Any] = {"in_chans": 3, "global_pool": "avg"}
# timm's init_values: the checkpoint's gamma tensors replace the value, but > 0 means "has layer scale".
_LAYER_SCALE_INIT = 0.1
_LAYER_NORM_EPS = 1e-6  # timm's LayerNorm default; BeitConfig's own default (1e-12) would shift every activation

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

# timm name -> transformers name, for tensors that move over unchanged.
_TOP_LEVEL_RENAMES = {
    "cls_token": "beit.embeddings.cls_token",
    "patch_embed.proj.weight": "beit.embeddings.patch_embeddings.projection.weight",
    "patch_embed.proj.bias": "beit.embeddings.patch_embeddings.projection.bias",
    "fc_norm.weight": "beit.pooler.layernorm.weight",
    "fc_norm.bias": "beit.pooler.layernorm.bias",
    "head.weight": "classifier.weight",
    "head.bias": "classifier.bias",
}
# The same within each block: "blocks.{i}." + key -> "beit.layers.{i}." + value.
_LAYER_RENAMES = {
    "norm1.weight": "layernorm_before.weight",
    "norm1.bias": "layernorm_before.bias",
    "attn.q_bias": "attention.q_proj.bias",
    "attn.v_bias": "attention.v_proj.bias",
    "attn.relative_position_bias_table": "relative_position_bias.relative_position_bias_table",
    "attn.proj.weight": "attention.o_proj.weight",
    "attn.proj.bias": "attention.o_proj.bias",
    "norm2.weight": "layernorm_after.weight",
    "norm2.bias": "layernorm_after.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "gamma_1": "lambda_1",
    "gamma_2": "lambda_2",
}
# Split in three: timm keeps one fused (3 * hidden, hidden) projection, transformers q_proj / k_proj / v_proj.
_QKV_WEIGHT = "attn.qkv.weight"
# Stored by older timm exports (and Microsoft's originals), recomputed by timm and transformers on load: verified, not
# loaded, because the converted model derives it from the grid size alone.
_RELATIVE_POSITION_INDEX = "attn.relative_position_index"

_MAX_NAMES_SHOWN = 8


class TimmConversionError(ValueError):
    """A timm checkpoint that this module cannot turn into an equal transformers model; the message says what."""


def read_timm_config(config_path: str | Path) -> dict[str, Any]:
    """Read timm's ``config.json`` and check that its architecture can be converted.

    Older timm exports keep everything in one flat dict; like timm's own loader, this returns timm's current layout:
    ``architecture``, ``num_classes``, ``pretrained_cfg``, ``model_args`` (``{}`` when absent) and, when the file
    has them, ``num_features``, ``global_pool``, ``label_names``, ``label_descriptions``.

    Raises:
        TimmConversionError: the file is not JSON, names an unsupported architecture or has no usable
            ``num_classes``.
        OSError: the file cannot be read.
    """
    path = Path(config_path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise TimmConversionError(f"{path} is not a timm config.json (not valid JSON: {error}).") from error
    if not isinstance(raw, dict):
        raise TimmConversionError(f"{path} is not a timm config.json (expected a JSON object).")
    config = _current_layout(raw)

    architecture = config.get("architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise TimmConversionError(
            f"Unsupported timm architecture {architecture!r} in {path}: only "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} can be converted to transformers' BEiT."
        )
    num_classes = config.get("num_classes", config["pretrained_cfg"].get("num_classes"))
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise TimmConversionError(f"{path}: num_classes must be a positive integer, got {num_classes!r}.")
    config["num_classes"] = num_classes
    if not isinstance(config.setdefault("model_args", {}), dict):
        raise TimmConversionError(f"{path}: model_args must be a JSON object.")
    return config


def _current_layout(raw: dict[str, Any]) -> dict[str, Any]:
    """Split a legacy flat timm config into timm's current layout, as timm's ``_parse_model_cfg`` does."""
    if "pretrained_cfg" in raw:
        if not isinstance(raw["pretrained_cfg"], dict):
            raise TimmConversionError("pretrained_cfg in a timm config.json must be a JSON object.")
        return dict(raw)
    pretrained_cfg = {key: value for key, value in raw.items() if key not in ("architecture", "num_features")}
    config = {key: raw[key] for key in ("architecture", "num_features") if key in raw}
    if "labels" in pretrained_cfg:  # timm renames the old field on load too
        config["label_names"] = pretrained_cfg.pop("labels")
    for key in ("num_classes", "label_names", "label_descriptions"):
        if key in pretrained_cfg:
            config[key] = pretrained_cfg[key]
    config["pretrained_cfg"] = pretrained_cfg
    return config


def beit_config_from_timm(timm_config: Mapping[str, Any]) -> BeitConfig:
    """Build the :class:`~transformers.BeitConfig` equal to timm's ``beit_base_patch16_224``.

    Sizes come from timm's definition, overridden by the config's ``model_args``; labels from ``label_names`` (shown
    through ``label_descriptions`` when given: timm's names for ImageNet are WordNet ids), else the ImageNet-1k names
    when there are 1,000 classes, else ``LABEL_i``.

    Args:
        timm_config: what :func:`read_timm_config` returns.

    Raises:
        TimmConversionError: a ``model_args`` entry this conversion does not reproduce, or inconsistent sizes.
    """
    sizes = _model_sizes(timm_config)
    image_size = _square(sizes["img_size"], "img_size")
    patch_size = _square(sizes["patch_size"], "patch_size")
    hidden_size, num_heads = sizes["embed_dim"], sizes["num_heads"]
    if image_size % patch_size:
        raise TimmConversionError(f"img_size {image_size} is not a multiple of patch_size {patch_size}.")
    if hidden_size % num_heads:
        raise TimmConversionError(f"embed_dim {hidden_size} is not divisible by num_heads {num_heads}.")
    num_features = timm_config.get("num_features")
    if num_features is not None and num_features != hidden_size:
        raise TimmConversionError(f"num_features {num_features} differs from embed_dim {hidden_size}.")
    if timm_config.get("global_pool", "avg") != "avg":
        raise TimmConversionError(f"global_pool {timm_config['global_pool']!r} is not supported (only 'avg').")

    labels = _label_names(timm_config)
    return BeitConfig(
        architectures=["BeitForImageClassification"],
        hidden_size=hidden_size,
        num_hidden_layers=sizes["depth"],
        num_attention_heads=num_heads,
        intermediate_size=int(hidden_size * sizes["mlp_ratio"]),  # timm's Mlp truncates the same way
        hidden_act="gelu",  # exact erf GELU, as timm's nn.GELU
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0,
        layer_norm_eps=_LAYER_NORM_EPS,
        image_size=image_size,
        patch_size=patch_size,
        num_channels=3,
        use_absolute_position_embeddings=False,
        use_relative_position_bias=True,  # one table per layer, as timm's use_rel_pos_bias
        use_shared_relative_position_bias=False,
        layer_scale_init_value=_LAYER_SCALE_INIT,
        use_mean_pooling=True,  # timm's global_pool="avg": mean of the patch tokens, then fc_norm
        id2label=dict(enumerate(labels)),
        label2id={name: index for index, name in enumerate(labels)},
    )


def _model_sizes(timm_config: Mapping[str, Any]) -> dict[str, Any]:
    sizes = dict(_BASE_SIZES)
    for key, value in timm_config.get("model_args", {}).items():
        if key in _BASE_SIZES:
            sizes[key] = value
        elif key == "num_classes":
            if value != timm_config["num_classes"]:
                raise TimmConversionError(
                    f"model_args num_classes {value!r} differs from num_classes {timm_config['num_classes']}."
                )
        elif key in _FIXED_MODEL_ARGS:
            if value != _FIXED_MODEL_ARGS[key]:
                raise TimmConversionError(
                    f"model_args {key}={value!r} is not supported (only {_FIXED_MODEL_ARGS[key]!r})."
                )
        else:
            raise TimmConversionError(
                f"model_args {key!r} is not supported: the conversion reproduces {SUPPORTED_ARCHITECTURES[0]} with "
                f"only {', '.join(_BASE_SIZES)} changed."
            )
    for key in ("depth", "embed_dim", "num_heads"):
        if not isinstance(sizes[key], int) or isinstance(sizes[key], bool) or sizes[key] < 1:
            raise TimmConversionError(f"model_args {key} must be a positive integer, got {sizes[key]!r}.")
    if not isinstance(sizes["mlp_ratio"], (int, float)) or sizes["mlp_ratio"] <= 0:
        raise TimmConversionError(f"model_args mlp_ratio must be a positive number, got {sizes['mlp_ratio']!r}.")
    return sizes


def _square(value: Any, name: str) -> int:
    """timm accepts an int or an (H, W) pair; BEiT's relative position tables here assume a square grid."""
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TimmConversionError(f"{name} must be a positive integer or a square [size, size] pair, got {value!r}.")
    return value


def _label_names(timm_config: Mapping[str, Any]) -> list[str]:
    num_classes = timm_config["num_classes"]
    names = timm_config.get("label_names")
    if names is None:
        if num_classes == 1000:
            return imagenet1k_labels()
        return [f"LABEL_{index}" for index in range(num_classes)]
    if isinstance(names, dict):  # timm writes {index: name} when a head's classes leave gaps
        try:
            by_index = {int(index): str(name) for index, name in names.items()}
        except ValueError as error:
            raise TimmConversionError(f"label_names keys must be class indices: {error}") from error
        if any(not 0 <= index < num_classes for index in by_index):
            raise TimmConversionError(f"label_names has indices outside 0..{num_classes - 1}.")
        names = [by_index.get(index, f"LABEL_{index}") for index in range(num_classes)]
    elif not isinstance(names, list) or len(names) != num_classes:
        count = len(names) if isinstance(names, list) else type(names).__name__
        raise TimmConversionError(f"label_names must list {num_classes} names, one per class; got {count}.")
    descriptions = timm_config.get("label_descriptions") or {}
    if not isinstance(descriptions, dict):
        raise TimmConversionError("label_descriptions must map label names to descriptions.")
    return [str(descriptions.get(str(name), name)) for name in names]


def imagenet1k_labels() -> list[str]:
    """The 1,000 ImageNet-1k class names in class-index order (timm's WordNet lemmas, see docs/timm-conversion.md)."""
    return IMAGENET1K_LABELS_PATH.read_text(encoding="utf-8").splitlines()


def convert_state_dict(timm_state: Mapping[str, torch.Tensor], config: BeitConfig) -> dict[str, torch.Tensor]:
    """Rename timm's BEiT tensors to :class:`~transformers.BeitForImageClassification`'s, using each exactly once.

    A stored ``relative_position_index`` is compared with a recomputation and then dropped: the transformers model
    derives it from the grid size.

    Raises:
        TimmConversionError: a tensor is missing, unexpected (e.g. renamed), has the wrong shape, or a stored
            ``relative_position_index`` disagrees with the recomputed one.
    """
    num_layers = config.num_hidden_layers
    _check_tensor_names(timm_state, num_layers)
    source = _TensorSource(timm_state)
    converted: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}  # transformers name -> timm name, for error messages
    for timm_name, hf_name in _renames(num_layers):
        converted[hf_name] = source.take(timm_name)
        origin[hf_name] = timm_name

    window = _window_size(config)
    expected_index = BeitRelativePositionBias.generate_relative_position_index(window)
    for layer in range(num_layers):
        qkv_name = f"blocks.{layer}.{_QKV_WEIGHT}"
        qkv = source.take(qkv_name)
        if qkv.ndim != 2 or qkv.shape[0] % 3:
            raise TimmConversionError(f"{qkv_name} has shape {tuple(qkv.shape)}; expected (3 * hidden, hidden).")
        # Views, not copies (copying 85 MB would be most of the conversion's cost): the three parameters share
        # qkv's storage, which inference and save_pretrained both handle.
        for projection, weight in zip(("q_proj", "k_proj", "v_proj"), qkv.chunk(3), strict=True):
            hf_name = f"beit.layers.{layer}.attention.{projection}.weight"
            converted[hf_name] = weight
            origin[hf_name] = qkv_name
        index_name = f"blocks.{layer}.{_RELATIVE_POSITION_INDEX}"
        if index_name in timm_state:
            _verify_relative_position_index(index_name, source.take(index_name), expected_index, window)
    source.check_all_taken()
    _check_shapes(converted, origin, config)
    return {name: tensor.to(torch.float32) for name, tensor in converted.items()}


def _renames(num_layers: int) -> Iterator[tuple[str, str]]:
    yield from _TOP_LEVEL_RENAMES.items()
    for layer in range(num_layers):
        for timm_key, hf_key in _LAYER_RENAMES.items():
            yield f"blocks.{layer}.{timm_key}", f"beit.layers.{layer}.{hf_key}"


def _check_tensor_names(timm_state: Mapping[str, torch.Tensor], num_layers: int) -> None:
    required = [timm_name for timm_name, _ in _renames(num_layers)]
    required += [f"blocks.{layer}.{_QKV_WEIGHT}" for layer in range(num_layers)]
    optional = {f"blocks.{layer}.{_RELATIVE_POSITION_INDEX}" for layer in range(num_layers)}
    missing = [name for name in required if name not in timm_state]
    known = set(required) | optional
    unexpected = sorted(name for name in timm_state if name not in known)
    if missing or unexpected:
        problems = []
        if missing:
            problems.append(f"missing tensor(s) {_some(missing)}")
        if unexpected:
            problems.append(f"unexpected tensor(s) {_some(unexpected)}")
        raise TimmConversionError(
            f"The checkpoint is not timm's {SUPPORTED_ARCHITECTURES[0]} with {num_layers} blocks: "
            + "; ".join(problems)
            + "."
        )


def _some(names: Sequence[str]) -> str:
    shown = ", ".join(repr(name) for name in names[:_MAX_NAMES_SHOWN])
    hidden = len(names) - _MAX_NAMES_SHOWN
    return shown + (f" and {hidden} more" if hidden > 0 else "")


class _TensorSource:
    """timm's tensors, each handed out once, so that a forgotten or doubly used tensor is a loud bug."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self._state = state
        self._untaken = set(state)

    def take(self, name: str) -> torch.Tensor:
        if name not in self._untaken:
            raise RuntimeError(f"Bug in the timm conversion: {name!r} is used twice.")
        self._untaken.remove(name)
        return self._state[name]

    def check_all_taken(self) -> None:
        if self._untaken:
            raise RuntimeError(f"Bug in the timm conversion: {_some(sorted(self._untaken))} never used.")


def _window_size(config: BeitConfig) -> tuple[int, int]:
    grid = config.image_size // config.patch_size
    return grid, grid


def _verify_relative_position_index(
    name: str, stored: torch.Tensor, expected: torch.Tensor, window: tuple[int, int]
) -> None:
    if stored.shape != expected.shape or stored.is_floating_point() or not torch.equal(stored.long(), expected):
        raise TimmConversionError(
            f"{name} does not match the relative position index recomputed for a {window[0]}x{window[1]} patch grid: "
            "the checkpoint is corrupt or was made for another image or patch size."
        )


def _check_shapes(converted: Mapping[str, torch.Tensor], origin: Mapping[str, str], config: BeitConfig) -> None:
    expected = {name: tensor.shape for name, tensor in _empty_model(config).state_dict().items()}
    for hf_name, tensor in converted.items():
        if tensor.shape != expected[hf_name]:
            raise TimmConversionError(
                f"{origin[hf_name]} has shape {tuple(tensor.shape)}, but the config's sizes need "
                f"{tuple(expected[hf_name])} for {hf_name}."
            )


def _empty_model(config: BeitConfig) -> BeitForImageClassification:
    # Parameters on the meta device cost nothing to create; filling 86 M random numbers first (about 0.9 s on the
    # 2-core machine) would only be thrown away when the checkpoint's tensors are assigned.
    with torch.device("meta"):
        return BeitForImageClassification(config)


def load_timm_beit(
    config_path: str | Path, weights_path: str | Path
) -> tuple[BeitForImageClassification, TimmImageProcessor]:
    """Load timm's BEiT ``config.json`` + ``model.safetensors`` as a transformers model and its preprocessing.

    Returns:
        The model, in ``eval()`` with transformers' default attention (SDPA for BEiT, eager where SDPA cannot run),
        and a :class:`TimmImageProcessor` following the checkpoint's ``pretrained_cfg``.

    Raises:
        TimmConversionError: the files are not a checkpoint this module can convert; the message says why.
    """
    timm_config = read_timm_config(config_path)
    config = beit_config_from_timm(timm_config)
    processor = TimmImageProcessor.from_pretrained_cfg(timm_config["pretrained_cfg"], crop_size=config.image_size)
    try:
        timm_state = safetensors.torch.load_file(str(weights_path))
    except safetensors.SafetensorError as error:
        raise TimmConversionError(f"{weights_path} is not a readable safetensors file: {error}") from error
    model = _empty_model(config)
    # strict: every parameter must come from the checkpoint, and nothing may be left over.
    model.load_state_dict(convert_state_dict(timm_state, config), strict=True, assign=True)
    return model.eval(), processor


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
