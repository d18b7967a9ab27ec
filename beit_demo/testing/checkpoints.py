"""Checkpoints built from scratch with random weights, laid out like the real Hub repos of the catalog.

The real checkpoints cannot be downloaded here, so the tests and the benchmark serve these instead (see
`beit_demo.testing.hub_double`). They have the real architectures, label sets, file names and file formats;
only the weights are random (and, for "tiny", the sizes are small).

Weights are saved as transformers 4 wrote them, which is how every real repo here was written: `save_pretrained`
of transformers 5 keeps that key layout ("beit.encoder.layer.0.attention.attention.query.weight"), and
``pytorch_model.bin`` holds the same state dict, pickled with `torch.save`.
"""

from __future__ import annotations

import functools
import io
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

Size = Literal["tiny", "base"]
Weights = Literal["safetensors", "bin"]

FACE_MASK_LABELS: tuple[str, ...] = ("No Mask", "Mask")
# As thilinadj/image_classification_tdj_fashion-mnist's config.json spells them (label 0 has spaces).
FASHION_MNIST_LABELS: tuple[str, ...] = (
    "T - shirt / top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Encoder sizes: "tiny" runs a forward pass in milliseconds, "base" is the real BEiT-base / DeiT-base.
_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
}
_IMAGE = {"image_size": 224, "patch_size": 16, "num_channels": 3}
# As in microsoft/beit-base-patch16-224-pt22k-ft22k and the BEiT models fine-tuned from it.
_BEIT_OPTIONS = {
    "use_relative_position_bias": True,
    "use_shared_relative_position_bias": False,
    "use_absolute_position_embeddings": False,
    "use_mean_pooling": True,
    "layer_scale_init_value": 0.1,
}
_INITIALIZER_STD = 0.02
_HALF = [0.5, 0.5, 0.5]
_IMAGENET_MEAN = [0.485, 0.456, 0.406]
_IMAGENET_STD = [0.229, 0.224, 0.225]

_GITATTRIBUTES = b"""*.bin filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
"""


@functools.lru_cache(maxsize=4)
def imagenet22k_style_labels(n: int = 21841) -> tuple[str, ...]:
    """Return ``n`` synthetic label names ("label 0", ...): the real ImageNet-22k names are not available offline."""
    return tuple(f"label {index}" for index in range(n))


def beit_files(
    labels: Sequence[str],
    *,
    size: Size = "tiny",
    weights: Weights = "safetensors",
    legacy_preprocessor: bool = False,
    training_args: bool = False,
    seed: int = 0,
) -> dict[str, bytes]:
    """Build a ``BeitForImageClassification`` repo with random weights.

    Args:
        labels: the class names, in id order (they become ``id2label`` / ``label2id``).
        size: "tiny" (hidden 32, 2 layers, 2 heads) or "base" (the real BEiT-base sizes).
        weights: "safetensors" writes ``model.safetensors``, "bin" writes ``pytorch_model.bin``.
        legacy_preprocessor: write a ``BeitFeatureExtractor``-style ``preprocessor_config.json`` (``"size": 224``)
            instead of a ``BeitImageProcessor`` one.
        training_args: add the ``training_args.bin`` that ``Trainer`` leaves in a repo.
        seed: the same seed gives byte-identical files.

    Returns:
        File name -> contents, ready for `HubDouble.add_repo` or to write into a folder.
    """
    build = _cached_beit_files if size == "tiny" else _beit_files
    return dict(build(tuple(labels), size, weights, legacy_preprocessor, training_args, seed))


def deit_files(
    labels: Sequence[str],
    *,
    size: Size = "tiny",
    weights: Weights = "safetensors",
    legacy_preprocessor: bool = False,
    training_args: bool = False,
    seed: int = 0,
) -> dict[str, bytes]:
    """Build a ``DeiTForImageClassification`` repo with random weights; arguments as in `beit_files`.

    The legacy preprocessor is ``DeiTFeatureExtractor``-style, as in facebook/deit-base-distilled-patch16-224:
    resize to 256, centre-crop 224, ImageNet mean and std.
    """
    build = _cached_deit_files if size == "tiny" else _deit_files
    return dict(build(tuple(labels), size, weights, legacy_preprocessor, training_args, seed))


def catalog_repos(size: Size = "tiny") -> dict[str, dict[str, bytes]]:
    """Return repo id -> files for every transformers-format catalog entry, shaped like the real repo.

    Each repo also holds a README.md (which the app must never need to download) and a .gitattributes.

    Raises:
        KeyError: a transformers-format catalog entry has no builder here.
    """
    from beit_demo.catalog import CATALOG, CheckpointFormat

    repos: dict[str, dict[str, bytes]] = {}
    for entry in CATALOG:
        if entry.source.checkpoint_format is not CheckpointFormat.TRANSFORMERS:
            continue
        if entry.repo_id not in _CATALOG_BUILDERS:
            raise KeyError(f"No test checkpoint for catalog repo {entry.repo_id!r}: add one to _CATALOG_BUILDERS")
        files = _CATALOG_BUILDERS[entry.repo_id](size)
        files["README.md"] = _model_card(entry.repo_id, entry.title)
        files[".gitattributes"] = _GITATTRIBUTES
        repos[entry.repo_id] = files
    return repos


# The real repo holds a 410 MB Flax checkpoint beside the weights we load: the demo must never fetch it.
FLAX_STAND_IN = b"a stand-in for flax_model.msgpack: never to be downloaded\n"


def _imagenet22k_beit(size: Size) -> dict[str, bytes]:
    """config, legacy preprocessor, pytorch_model.bin and the Flax weights; no Trainer files (the original release)."""
    files = beit_files(imagenet22k_style_labels(), size=size, weights="bin", legacy_preprocessor=True)
    return {**files, "flax_model.msgpack": FLAX_STAND_IN}


_CATALOG_BUILDERS: dict[str, Callable[[Size], dict[str, bytes]]] = {
    "microsoft/beit-base-patch16-224-pt22k-ft22k": _imagenet22k_beit,
    "AkshatSurolia/BEiT-FaceMask-Finetuned": lambda size: beit_files(
        FACE_MASK_LABELS, size=size, weights="bin", legacy_preprocessor=True, training_args=True, seed=1
    ),
    "AkshatSurolia/DeiT-FaceMask-Finetuned": lambda size: deit_files(
        FACE_MASK_LABELS, size=size, weights="bin", legacy_preprocessor=True, training_args=True, seed=2
    ),
    "thilinadj/image_classification_tdj_fashion-mnist": lambda size: beit_files(
        FASHION_MNIST_LABELS, size=size, weights="bin", training_args=True, seed=3
    ),
}


def _model_card(repo_id: str, title: str) -> bytes:
    return (
        f"---\nlicense: apache-2.0\ntags:\n- image-classification\n---\n\n# {repo_id}\n\n"
        f"A test double of {title}: random weights, built by beit_demo.testing.checkpoints.\n"
    ).encode()


def _beit_files(
    labels: tuple[str, ...], size: Size, weights: Weights, legacy_preprocessor: bool, training_args: bool, seed: int
) -> dict[str, bytes]:
    from transformers import BeitConfig, BeitForImageClassification

    config = BeitConfig(**_SIZES[size], **_IMAGE, **_BEIT_OPTIONS, **_label_maps(labels))
    config.architectures = ["BeitForImageClassification"]
    files = _model_files(BeitForImageClassification, config, weights, seed)
    files["preprocessor_config.json"] = _json(_beit_preprocessor(legacy_preprocessor))
    if training_args:
        files["training_args.bin"] = _training_args(seed)
    return files


def _deit_files(
    labels: tuple[str, ...], size: Size, weights: Weights, legacy_preprocessor: bool, training_args: bool, seed: int
) -> dict[str, bytes]:
    from transformers import DeiTConfig, DeiTForImageClassification

    config = DeiTConfig(**_SIZES[size], **_IMAGE, qkv_bias=True, encoder_stride=16, **_label_maps(labels))
    config.architectures = ["DeiTForImageClassification"]
    files = _model_files(DeiTForImageClassification, config, weights, seed)
    files["preprocessor_config.json"] = _json(_deit_preprocessor(legacy_preprocessor))
    if training_args:
        files["training_args.bin"] = _training_args(seed)
    return files


# Tiny repos are cached (tests build the same ones again and again); base ones are hundreds of MB, so they are not.
_cached_beit_files = functools.lru_cache(maxsize=32)(_beit_files)
_cached_deit_files = functools.lru_cache(maxsize=32)(_deit_files)


def _label_maps(labels: tuple[str, ...]) -> dict[str, dict]:
    if len(set(labels)) != len(labels):
        raise ValueError("Labels must be distinct: label2id maps each name to one id")
    return {
        "id2label": dict(enumerate(labels)),
        "label2id": {label: index for index, label in enumerate(labels)},
    }


def _model_files(model_class: type, config: object, weights: Weights, seed: int) -> dict[str, bytes]:
    """Save a randomly filled ``model_class(config)`` as the Hub repo would hold it."""
    import torch
    from safetensors.torch import load_file

    # Building on the meta device skips the slow default init (1.5 s for BEiT-base); every weight is then filled.
    with torch.device("meta"):
        model = model_class(config)
    model = model.to_empty(device="cpu")
    _fill_weights(model, seed, layer_scale=getattr(config, "layer_scale_init_value", None))
    with tempfile.TemporaryDirectory(prefix="beit-demo-checkpoint-") as folder:
        model.save_pretrained(folder)
        files = {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}
        if weights == "bin":
            # Same tensors, same (transformers 4) key names, pickled as the old repos hold them.
            state_dict = load_file(Path(folder) / "model.safetensors")
            del files["model.safetensors"]
            buffer = io.BytesIO()
            torch.save(state_dict, buffer)
            files["pytorch_model.bin"] = buffer.getvalue()
    return files


def _fill_weights(model: object, seed: int, *, layer_scale: float | None) -> None:
    """Give every parameter deterministic random values that keep activations in a sensible range.

    Nothing is left at zero or one, so a test that compares loaded weights notices any tensor that was not loaded.
    """
    import torch

    if any(True for _ in model.buffers()):
        raise RuntimeError("Buffers are not filled here: a model with buffers needs them initialised")
    norm_weights = {
        f"{name}.weight" for name, module in model.named_modules() if isinstance(module, torch.nn.LayerNorm)
    }
    hidden_size = model.config.hidden_size
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.normal_(0.0, _INITIALIZER_STD, generator=generator)
            if name in norm_weights:
                parameter.add_(1.0)
            elif name.endswith(("lambda_1", "lambda_2")) and layer_scale is not None:
                parameter.add_(layer_scale)
            elif name == "classifier.weight":
                # Logits of unit scale, so the top classes differ from image to image instead of all being ~1/N.
                parameter.mul_(1.0 / (_INITIALIZER_STD * math.sqrt(hidden_size)))


def _beit_preprocessor(legacy: bool) -> dict[str, object]:
    if legacy:  # as written by BeitFeatureExtractor (transformers 4.x, 2021)
        return {
            "crop_size": 224,
            "do_center_crop": False,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "BeitFeatureExtractor",
            "image_mean": _HALF,
            "image_std": _HALF,
            "reduce_labels": False,
            "resample": 2,
            "size": 224,
        }
    return {
        "crop_size": {"height": 224, "width": 224},
        "do_center_crop": False,
        "do_normalize": True,
        "do_reduce_labels": False,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": _HALF,
        "image_processor_type": "BeitImageProcessor",
        "image_std": _HALF,
        "resample": 2,
        "rescale_factor": 1 / 255,
        "size": {"height": 224, "width": 224},
    }


def _deit_preprocessor(legacy: bool) -> dict[str, object]:
    if legacy:  # as in facebook/deit-base-distilled-patch16-224, written by DeiTFeatureExtractor
        return {
            "crop_size": 224,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "DeiTFeatureExtractor",
            "image_mean": _IMAGENET_MEAN,
            "image_std": _IMAGENET_STD,
            "resample": 3,
            "size": 256,
        }
    return {
        "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": _IMAGENET_MEAN,
        "image_processor_type": "DeiTImageProcessor",
        "image_std": _IMAGENET_STD,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": 256, "width": 256},
    }


def _training_args(seed: int) -> bytes:
    """A stand-in for the pickled ``TrainingArguments`` that ``Trainer`` saves; nothing should ever load it."""
    import torch

    buffer = io.BytesIO()
    torch.save({"output_dir": "./results", "learning_rate": 5e-5, "num_train_epochs": 3, "seed": seed}, buffer)
    return buffer.getvalue()


def _json(payload: dict[str, object]) -> bytes:
    return (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode()
