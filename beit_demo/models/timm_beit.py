"""Serve timm's BEiT checkpoint through transformers, without the timm package.

timm publishes ``beit_base_patch16_224`` as a ``config.json`` in timm's own layout (``architecture``, ``num_classes``,
``pretrained_cfg``, optionally ``model_args`` and ``label_names``) and a ``model.safetensors`` with timm's tensor
names. The conversion reads both: `timm_config` builds the equal :class:`~transformers.BeitConfig`, this module
renames (and splits) the tensors for :class:`~transformers.BeitForImageClassification` and loads the model, and
`timm_processor` reproduces timm's evaluation preprocessing.

timm itself is not a dependency: its PyPI build needs a torchvision that does not import beside our torch. The
conversion is checked against timm in ``tools/timm_parity.py``, run in a separate virtualenv (see
``docs/timm-conversion.md``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import safetensors
import safetensors.torch
import torch
from transformers import BeitConfig, BeitForImageClassification
from transformers.models.beit.modeling_beit import BeitRelativePositionBias

from beit_demo.models.timm_config import (
    SUPPORTED_ARCHITECTURES,
    TimmConversionError,
    beit_config_from_timm,
    read_timm_config,
)
from beit_demo.models.timm_processor import TimmImageProcessor

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
