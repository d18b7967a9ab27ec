"""Tiny random-weight repos of models from outside the catalog, for the typed Hub id path (`beit_demo.hub_ids`).

Five image-classification families from transformers' own mapping (ViT, ConvNeXt, Swin, ResNet, EfficientNet), each
with labels of its own, and the repos a public demo must refuse: a text classifier, a remote-code repo, and a
``pytorch_model.bin`` whose pickle would run code when loaded unsafely.
"""

from __future__ import annotations

import io
import json
import pickle
import tempfile
from pathlib import Path
from typing import Any

FAMILIES = ("vit", "convnext", "swin", "resnet", "efficientnet")
# Each family's labels: its answers must come from these, not from any catalog model.
FAMILY_LABELS: dict[str, tuple[str, ...]] = {
    "vit": ("violin", "viola", "cello"),
    "convnext": ("oak leaf", "maple leaf", "birch leaf", "pine needle"),
    "swin": ("heron", "stork"),
    "resnet": ("teapot", "kettle", "jug", "mug", "cup"),
    "efficientnet": ("lighthouse", "windmill", "water tower"),
}
# Families saved without a preprocessor_config.json: the demo then uses the family's default (and says so).
WITHOUT_PREPROCESSOR = frozenset({"convnext"})
_SIDE = 32


def _config(family: str) -> Any:
    import transformers

    labels = FAMILY_LABELS[family]
    maps = {"id2label": dict(enumerate(labels)), "label2id": {label: index for index, label in enumerate(labels)}}
    if family == "vit":
        return transformers.ViTConfig(
            image_size=_SIDE, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, **maps,
        )  # fmt: skip
    if family == "convnext":
        return transformers.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, **maps)
    if family == "swin":
        return transformers.SwinConfig(
            image_size=_SIDE, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4, **maps
        )
    if family == "resnet":
        return transformers.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], **maps)
    if family == "efficientnet":
        return transformers.EfficientNetConfig(
            image_size=_SIDE, width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=128, **maps
        )
    raise ValueError(f"unknown family {family!r}")


def _processor(family: str) -> Any:
    import transformers

    square = {"height": _SIDE, "width": _SIDE}
    if family == "efficientnet":
        return transformers.EfficientNetImageProcessorPil(size=square)
    if family == "resnet":
        return transformers.ConvNextImageProcessorPil(size={"shortest_edge": _SIDE}, crop_pct=0.875)
    return transformers.ViTImageProcessorPil(size=square)


def family_files(family: str, seed: int = 0, *, weights: str = "safetensors") -> dict[str, bytes]:
    """A repo of ``family`` with random weights: config, weights, and a preprocessor config unless it goes without."""
    import torch
    import transformers

    torch.manual_seed(seed)
    model = transformers.AutoModelForImageClassification.from_config(_config(family)).eval()
    with tempfile.TemporaryDirectory(prefix="beit-demo-hub-model-") as folder:
        model.save_pretrained(folder)
        if family not in WITHOUT_PREPROCESSOR:
            _processor(family).save_pretrained(folder)
        files = {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}
    if weights == "bin":
        from safetensors.torch import load as load_safetensors

        buffer = io.BytesIO()
        torch.save(load_safetensors(files.pop("model.safetensors")), buffer)
        files["pytorch_model.bin"] = buffer.getvalue()
    files["README.md"] = f"---\nlicense: mit\ntags:\n- image-classification\n---\n# A tiny {family}\n".encode()
    return files


def text_classifier_files() -> dict[str, bytes]:
    """A BERT sentiment classifier: a real transformers model, but not one for images."""
    import transformers

    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
        architectures=["BertForSequenceClassification"],
    )  # fmt: skip
    model = transformers.BertForSequenceClassification(config)
    with tempfile.TemporaryDirectory(prefix="beit-demo-hub-model-") as folder:
        model.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}


def remote_code_files() -> dict[str, bytes]:
    """A repo whose model class lives in the repo's own Python file (loaded only with trust_remote_code)."""
    config = {
        "architectures": ["ViTForImageClassification"],  # claims a known class, but auto_map would run the repo's code
        "auto_map": {"AutoModelForImageClassification": "modeling_sneaky.SneakyForImageClassification"},
        "model_type": "vit",
        "id2label": {"0": "cat", "1": "dog"},
        "label2id": {"cat": 0, "dog": 1},
    }
    code = b"import os\nos.system('echo this must never run')\n"
    return {"config.json": json.dumps(config).encode(), "modeling_sneaky.py": code, "model.safetensors": b"\0" * 64}


class _RunsCode:
    """Pickled, this tells the unpickler to call ``Path.touch(marker)``: a stand-in for any code at all."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def pickle_bomb_files(marker: Path) -> dict[str, bytes]:
    """A ViT repo whose ``pytorch_model.bin`` would create ``marker`` if unpickled without ``weights_only``."""
    files = family_files("vit")
    del files["model.safetensors"]
    buffer = io.BytesIO()
    pickle.dump({"vit.embeddings.cls_token": _RunsCode(marker)}, buffer, protocol=2)
    files["pytorch_model.bin"] = buffer.getvalue()
    return files
