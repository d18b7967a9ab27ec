"""timm-format BEiT checkpoints with random weights, laid out like timm/beit_base_patch16_224.in22k_ft_in22k_in1k.

The tensor names and shapes are those of timm's ``beit_base_patch16_224`` (``timm.create_model(...).state_dict()``
of timm 1.0), and ``config.json`` follows timm's hub layout. Nothing here imports timm.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from safetensors.torch import save

Size = Literal["tiny", "base"]

# "tiny" runs a forward pass in milliseconds; "base" is timm's beit_base_patch16_224 (86.5 M parameters).
_MODEL_ARGS: dict[str, dict[str, int]] = {
    "tiny": {"embed_dim": 32, "depth": 2, "num_heads": 2},
    "base": {},
}
_BASE = {"img_size": 224, "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4}
# As on the real repo's page and in timm's default_cfgs for beit_base_patch16_224.in22k_ft_in22k_in1k.
_PRETRAINED_CFG: dict[str, Any] = {
    "tag": "in22k_ft_in22k_in1k",
    "custom_load": False,
    "input_size": [3, 224, 224],
    "fixed_input_size": True,
    "interpolation": "bicubic",
    "crop_pct": 0.9,
    "crop_mode": "center",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.5, 0.5, 0.5],
    "pool_size": None,
    "first_conv": "patch_embed.proj",
    "classifier": "head",
    "license": "apache-2.0",
}
_MODEL_CARD = """---
tags:
- image-classification
- timm
library_name: timm
license: apache-2.0
---
# Model card for beit_base_patch16_224.in22k_ft_in22k_in1k (test double)

Random weights in timm's layout, built by beit_demo.testing.timm_checkpoints. The app must never download this file.
"""


def timm_beit_files(
    *,
    size: Size = "tiny",
    num_classes: int = 1000,
    label_names: Sequence[str] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    rename: Mapping[str, str] | None = None,
    seed: int = 0,
) -> dict[str, bytes]:
    """Build the files of a timm BEiT repo with random weights.

    Args:
        size: "tiny" (embed 32, depth 2, heads 2, written as ``model_args``) or "base" (timm's real sizes).
        num_classes: size of the classifier head.
        label_names: written as the config's ``label_names`` (as timm's ``push_to_hf_hub`` does when given them).
        extra_tensors: added to the weights; a name that exists replaces that tensor (e.g. to corrupt one).
        rename: timm name -> new name, applied last (to simulate a checkpoint with other names).
        seed: the same arguments and seed give byte-identical files.

    Returns:
        ``{"config.json", "model.safetensors", "README.md"}`` -> contents.
    """
    config: dict[str, Any] = {
        "architecture": "beit_base_patch16_224",
        "num_classes": num_classes,
        "num_features": {**_BASE, **_MODEL_ARGS[size]}["embed_dim"],
        "global_pool": "avg",
    }
    if label_names is not None:
        config["label_names"] = list(label_names)
    if _MODEL_ARGS[size]:
        config["model_args"] = dict(_MODEL_ARGS[size])
    config["pretrained_cfg"] = {**_PRETRAINED_CFG, "num_classes": num_classes}

    tensors = _random_state(size=size, num_classes=num_classes, seed=seed)
    tensors.update({name: tensor.contiguous() for name, tensor in (extra_tensors or {}).items()})
    for old_name, new_name in (rename or {}).items():
        tensors[new_name] = tensors.pop(old_name)
    return {
        "config.json": (json.dumps(config, indent=2) + "\n").encode(),
        "model.safetensors": save(tensors),
        "README.md": _MODEL_CARD.encode(),
    }


def _random_state(*, size: Size = "tiny", num_classes: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    """timm's ``beit_base_patch16_224`` state dict (names, shapes, order) filled with seeded random values.

    Values are chosen so that no tensor is left at timm's initial zeros or ones and the logits are of order one:
    a conversion that drops, swaps or transposes a tensor changes them visibly.
    """
    sizes = {**_BASE, **_MODEL_ARGS[size]}
    dim, heads = sizes["embed_dim"], sizes["num_heads"]
    hidden = dim * sizes["mlp_ratio"]
    patch, grid = sizes["patch_size"], sizes["img_size"] // sizes["patch_size"]
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape: int, std: float, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * std + mean

    state = {
        "cls_token": normal(1, 1, dim, std=0.5),
        "patch_embed.proj.weight": normal(dim, 3, patch, patch, std=(3 * patch * patch) ** -0.5),
        "patch_embed.proj.bias": normal(dim, std=0.1),
    }
    for layer in range(sizes["depth"]):
        prefix = f"blocks.{layer}."
        state.update(
            {
                prefix + "gamma_1": normal(dim, std=0.05, mean=0.2),
                prefix + "gamma_2": normal(dim, std=0.05, mean=0.2),
                prefix + "norm1.weight": normal(dim, std=0.1, mean=1.0),
                prefix + "norm1.bias": normal(dim, std=0.1),
                prefix + "attn.q_bias": normal(dim, std=0.1),
                prefix + "attn.v_bias": normal(dim, std=0.1),
                prefix + "attn.relative_position_bias_table": normal((2 * grid - 1) ** 2 + 3, heads, std=0.5),
                prefix + "attn.qkv.weight": normal(3 * dim, dim, std=dim**-0.5),
                prefix + "attn.proj.weight": normal(dim, dim, std=dim**-0.5),
                prefix + "attn.proj.bias": normal(dim, std=0.1),
                prefix + "norm2.weight": normal(dim, std=0.1, mean=1.0),
                prefix + "norm2.bias": normal(dim, std=0.1),
                prefix + "mlp.fc1.weight": normal(hidden, dim, std=dim**-0.5),
                prefix + "mlp.fc1.bias": normal(hidden, std=0.1),
                prefix + "mlp.fc2.weight": normal(dim, hidden, std=hidden**-0.5),
                prefix + "mlp.fc2.bias": normal(dim, std=0.1),
            }
        )
    state.update(
        {
            "fc_norm.weight": normal(dim, std=0.1, mean=1.0),
            "fc_norm.bias": normal(dim, std=0.1),
            "head.weight": normal(num_classes, dim, std=dim**-0.5),
            "head.bias": normal(num_classes, std=0.1),
        }
    )
    return state
