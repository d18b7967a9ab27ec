"""timm's BEiT ``config.json`` read and checked, and the equal transformers `BeitConfig` (part of the conversion
`beit_demo.models.timm_beit` describes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from transformers import BeitConfig

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
