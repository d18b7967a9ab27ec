"""timm's BEiT checkpoint served through transformers: tensor mapping, logits, preprocessing and labels.

The references here are written from timm's definitions (timm 1.0 ``beit.py`` and ``transforms_imagenet_eval``)
in plain torch and PIL, so that they share no code with ``beit_demo.models.timm_beit``. The comparison with timm itself
runs outside CI: ``tools/timm_parity.py``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load
from transformers import BeitConfig, BeitForImageClassification

from beit_demo.models.timm_beit import convert_state_dict, load_timm_beit
from beit_demo.models.timm_config import (
    SUPPORTED_ARCHITECTURES,
    TimmConversionError,
    beit_config_from_timm,
    read_timm_config,
)
from beit_demo.models.timm_processor import TimmImageProcessor
from beit_demo.testing.timm_checkpoints import timm_beit_files

PHOTOS = Path(__file__).resolve().parent / "data" / "photos"
TINY_HEADS = 2


def write_repo(folder: Path, files: Mapping[str, bytes]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, contents in files.items():
        (folder / name).write_bytes(contents)
    return folder / "config.json", folder / "model.safetensors"


def tiny_state(**kwargs: object) -> dict[str, torch.Tensor]:
    return load(timm_beit_files(size="tiny", **kwargs)["model.safetensors"])


def tiny_config(tmp_path: Path, **kwargs: object) -> BeitConfig:
    config_path, _ = write_repo(tmp_path / "config-only", {"config.json": timm_beit_files(**kwargs)["config.json"]})
    return beit_config_from_timm(read_timm_config(config_path))


def base_config() -> dict:
    """The config.json of the real repo: the tiny one without its model_args (building base weights takes seconds)."""
    config = json.loads(timm_beit_files()["config.json"])
    del config["model_args"]
    config["num_features"] = 768
    return config


def timm_relative_position_index(grid: int) -> torch.Tensor:
    """timm's gen_relative_position_index for a square grid: pairwise offsets, then three slots for the cls token."""
    num_relative_distance = (2 * grid - 1) ** 2 + 3
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # 2, N
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (grid - 1)  # N, N, 2, from 0
    index = torch.zeros((grid * grid + 1,) * 2, dtype=torch.long)
    index[1:, 1:] = relative[:, :, 0] * (2 * grid - 1) + relative[:, :, 1]
    index[0, :] = num_relative_distance - 3  # cls to token
    index[:, 0] = num_relative_distance - 2  # token to cls
    index[0, 0] = num_relative_distance - 1  # cls to cls
    return index


def timm_reference_logits(
    state: Mapping[str, torch.Tensor], pixel_values: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """timm's Beit.forward for beit_base_patch16_224 (eval mode), written out with the timm tensors."""
    weight = state["patch_embed.proj.weight"]
    dim, patch = weight.shape[0], weight.shape[-1]
    tokens = F.conv2d(pixel_values, weight, state["patch_embed.proj.bias"], stride=patch)
    batch, _, grid, _ = tokens.shape
    tokens = torch.cat([state["cls_token"].expand(batch, -1, -1), tokens.flatten(2).transpose(1, 2)], dim=1)
    count = tokens.shape[1]
    index = timm_relative_position_index(grid)
    depth = len({name.split(".")[1] for name in state if name.startswith("blocks.")})
    for layer in range(depth):
        block = {
            name.split(".", 2)[2]: tensor for name, tensor in state.items() if name.startswith(f"blocks.{layer}.")
        }
        hidden = F.layer_norm(tokens, (dim,), block["norm1.weight"], block["norm1.bias"], eps=1e-6)
        bias = torch.cat([block["attn.q_bias"], torch.zeros_like(block["attn.q_bias"]), block["attn.v_bias"]])
        qkv = F.linear(hidden, block["attn.qkv.weight"], bias).reshape(batch, count, 3, num_heads, -1)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        table = block["attn.relative_position_bias_table"]
        position_bias = table[index.view(-1)].view(count, count, -1).permute(2, 0, 1)
        scores = (query * query.shape[-1] ** -0.5) @ key.transpose(-2, -1) + position_bias
        attended = (scores.softmax(dim=-1) @ value).transpose(1, 2).reshape(batch, count, dim)
        tokens = tokens + block["gamma_1"] * F.linear(attended, block["attn.proj.weight"], block["attn.proj.bias"])
        hidden = F.layer_norm(tokens, (dim,), block["norm2.weight"], block["norm2.bias"], eps=1e-6)
        hidden = F.gelu(F.linear(hidden, block["mlp.fc1.weight"], block["mlp.fc1.bias"]))
        hidden = F.linear(hidden, block["mlp.fc2.weight"], block["mlp.fc2.bias"])
        tokens = tokens + block["gamma_2"] * hidden
    pooled = F.layer_norm(tokens[:, 1:].mean(dim=1), (dim,), state["fc_norm.weight"], state["fc_norm.bias"], eps=1e-6)
    return F.linear(pooled, state["head.weight"], state["head.bias"])


def timm_eval_transform(
    image: Image.Image,
    *,
    size: int = 224,
    crop_pct: float = 0.9,
    resample: Image.Resampling = Image.Resampling.BICUBIC,
    mean: tuple[float, ...] = (0.5, 0.5, 0.5),
    std: tuple[float, ...] = (0.5, 0.5, 0.5),
    round_offsets: bool = True,
) -> torch.Tensor:
    """timm's eval transform: Resize(floor(size / crop_pct)), CenterCrop(size), ToTensor, Normalize.

    Resize and CenterCrop as torchvision computes them for a PIL image: the shorter side becomes the scale size,
    the longer side int(scale * long / short); crop offsets int(round(excess / 2)).
    ``round_offsets=False`` floors them instead, as transformers' center_crop does.
    """
    image = image.convert("RGB")
    scale = math.floor(size / crop_pct)
    width, height = image.size
    new_size = (scale, int(scale * height / width)) if width <= height else (int(scale * width / height), scale)
    if new_size != image.size:
        image = image.resize(new_size, resample)
    offset = (lambda excess: int(round(excess / 2.0))) if round_offsets else (lambda excess: excess // 2)
    top, left = offset(image.height - size), offset(image.width - size)
    image = image.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(255)
    return (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def photo_variants() -> dict[str, Image.Image]:
    """Real photos: square, landscape with odd width or height, portrait, greyscale and with alpha."""
    photos = {path.name: Image.open(path) for path in sorted(PHOTOS.glob("*.jpg"))}
    assert {"astronaut.jpg", "chelsea.jpg", "rocket.jpg"} <= set(photos), f"photos missing in {PHOTOS}"
    photos["chelsea-portrait"] = photos["chelsea.jpg"].transpose(Image.Transpose.ROTATE_90)
    # 427 x 640 resizes to 248 x 371: rows to drop, 147, is 3 mod 4, where rounding and flooring part ways
    photos["rocket-portrait"] = photos["rocket.jpg"].transpose(Image.Transpose.ROTATE_270)
    photos["coffee-greyscale"] = photos["coffee.jpg"].convert("L")
    photos["horse-rgba"] = photos["horse.jpg"].convert("RGBA")
    return photos


# --- Mapping coverage ---


def test_every_timm_tensor_is_used_exactly_once(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    state = tiny_state()
    # Number every element of every timm tensor: the converted values must be exactly these numbers, each once.
    numbered, ranges, offset = {}, {}, 0
    for name, tensor in state.items():
        numbered[name] = torch.arange(offset, offset + tensor.numel(), dtype=torch.float32).reshape(tensor.shape)
        ranges[name] = (offset, offset + tensor.numel())
        offset += tensor.numel()
    converted = convert_state_dict(numbered, config)

    values = torch.cat([tensor.flatten() for tensor in converted.values()]).sort().values
    assert torch.equal(values, torch.arange(offset, dtype=torch.float32))
    # One transformers tensor per timm tensor, except qkv.weight, which becomes q_proj, k_proj and v_proj.
    assert len(converted) == len(state) + 2 * config.num_hidden_layers
    sources = {}
    for hf_name, tensor in converted.items():
        first = int(tensor.flatten()[0])
        # an unbroken run of one timm tensor's numbers: nothing transposed, reordered or mixed
        assert torch.equal(tensor.flatten(), torch.arange(first, first + tensor.numel(), dtype=torch.float32))
        source = next(name for name, (start, end) in ranges.items() if start <= first < end)
        assert first + tensor.numel() <= ranges[source][1], hf_name
        sources[hf_name] = source
    assert sources["classifier.weight"] == "head.weight"
    assert sources["beit.pooler.layernorm.weight"] == "fc_norm.weight"
    assert sources["beit.layers.1.lambda_2"] == "blocks.1.gamma_2"
    assert sources["beit.layers.1.attention.o_proj.weight"] == "blocks.1.attn.proj.weight"
    qkv = numbered["blocks.1.attn.qkv.weight"]
    for part, projection in zip(qkv.chunk(3), ("q_proj", "k_proj", "v_proj"), strict=True):
        assert torch.equal(converted[f"beit.layers.1.attention.{projection}.weight"], part)


def test_a_stored_relative_position_index_is_checked_and_consumed(tmp_path: Path) -> None:
    config = tiny_config(tmp_path)
    stored = {f"blocks.{layer}.attn.relative_position_index": timm_relative_position_index(14) for layer in range(2)}
    converted = convert_state_dict(tiny_state(extra_tensors=stored), config)
    assert converted.keys() == convert_state_dict(tiny_state(), config).keys()
    assert not any("relative_position_index" in name for name in converted)


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda index: index.flip(1),
        lambda index: torch.where(index == 5, torch.tensor(6), index),  # one offset off
        lambda index: index[1:, 1:],  # made for another grid
        lambda index: index.float(),
    ],
    ids=["flipped", "one-offset-off", "wrong-shape", "float"],
)
def test_a_corrupted_relative_position_index_is_caught(tmp_path: Path, corrupt) -> None:
    config = tiny_config(tmp_path)
    stored = {
        "blocks.0.attn.relative_position_index": timm_relative_position_index(14),
        "blocks.1.attn.relative_position_index": corrupt(timm_relative_position_index(14)),
    }
    with pytest.raises(TimmConversionError, match=r"'?blocks\.1\.attn\.relative_position_index'? does not match"):
        convert_state_dict(tiny_state(extra_tensors=stored), config)


def test_a_renamed_tensor_is_named_both_ways(tmp_path: Path) -> None:
    state = tiny_state(rename={"blocks.1.attn.proj.weight": "blocks.1.attn.out_proj.weight"})
    with pytest.raises(TimmConversionError) as caught:
        convert_state_dict(state, tiny_config(tmp_path))
    message = str(caught.value)
    assert "missing tensor(s) 'blocks.1.attn.proj.weight'" in message
    assert "unexpected tensor(s) 'blocks.1.attn.out_proj.weight'" in message


def test_an_extra_tensor_is_named(tmp_path: Path) -> None:
    state = tiny_state(extra_tensors={"blocks.0.attn.k_bias": torch.zeros(32)})
    with pytest.raises(TimmConversionError, match=r"unexpected tensor\(s\) 'blocks\.0\.attn\.k_bias'") as caught:
        convert_state_dict(state, tiny_config(tmp_path))
    assert "missing" not in str(caught.value)


def test_a_missing_tensor_is_named(tmp_path: Path) -> None:
    state = tiny_state()
    del state["blocks.0.gamma_1"]
    with pytest.raises(TimmConversionError, match=r"missing tensor\(s\) 'blocks\.0\.gamma_1'\.$"):
        convert_state_dict(state, tiny_config(tmp_path))


def test_a_checkpoint_deeper_than_its_config_is_refused(tmp_path: Path) -> None:
    # Blocks 2..11 of a 12-block checkpoint, read with the 2-block tiny config.
    state = tiny_state()
    for layer in range(2, 12):
        state.update({name.replace("blocks.1.", f"blocks.{layer}."): t for name, t in state.items() if ".1." in name})
    with pytest.raises(TimmConversionError, match=r"unexpected tensor\(s\) 'blocks\.10\.") as caught:
        convert_state_dict(state, tiny_config(tmp_path))
    assert "and 152 more" in str(caught.value)  # 10 extra blocks x 16 tensors, 8 of them listed


def test_a_tensor_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    state = tiny_state(extra_tensors={"head.weight": torch.zeros(1000, 33)})
    with pytest.raises(TimmConversionError, match=r"head\.weight has shape \(1000, 33\).*\(1000, 32\)"):
        convert_state_dict(state, tiny_config(tmp_path))


@pytest.mark.parametrize("architecture", ["beitv2_base_patch16_224", "vit_base_patch16_224", "beit_large_patch16_224"])
def test_an_unsupported_architecture_is_named(tmp_path: Path, architecture: str) -> None:
    config = json.loads(timm_beit_files()["config.json"])
    config["architecture"] = architecture
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(TimmConversionError, match=f"Unsupported timm architecture '{architecture}'"):
        read_timm_config(path)
    assert SUPPORTED_ARCHITECTURES == ("beit_base_patch16_224",)


@pytest.mark.parametrize(
    ("model_args", "named"),
    [
        ({"use_abs_pos_emb": True}, "use_abs_pos_emb"),
        ({"global_pool": "token"}, "global_pool='token'"),
        ({"in_chans": 1}, "in_chans=1"),
        ({"img_size": [224, 160]}, "img_size"),
        ({"num_classes": 10}, "num_classes 10"),
    ],
)
def test_model_args_that_change_the_architecture_are_refused(tmp_path: Path, model_args: dict, named: str) -> None:
    config = read_timm_config(write_repo(tmp_path, timm_beit_files())[0])
    config["model_args"] = {**config["model_args"], **model_args}
    with pytest.raises(TimmConversionError, match=named):
        beit_config_from_timm(config)


def test_model_args_as_recent_timm_exports_write_them_are_accepted(tmp_path: Path) -> None:
    config = read_timm_config(write_repo(tmp_path, timm_beit_files())[0])
    # timm 1.0's save_for_hf restates these for beit_base_patch16_224
    config["model_args"].update(in_chans=3, num_classes=1000, global_pool="avg", img_size=[224, 224])
    assert beit_config_from_timm(config).image_size == 224


def test_a_file_that_is_not_safetensors_is_a_conversion_error(tmp_path: Path) -> None:
    config_path, weights_path = write_repo(tmp_path, timm_beit_files())
    weights_path.write_bytes(b"<html>not the weights</html>")
    with pytest.raises(TimmConversionError, match="not a readable safetensors file"):
        load_timm_beit(config_path, weights_path)


def test_a_config_that_is_not_json_is_a_conversion_error(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(TimmConversionError, match="not valid JSON"):
        read_timm_config(path)


# --- Config ---


def test_base_config_equals_timms_beit_base_patch16_224(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(base_config()))
    config = beit_config_from_timm(read_timm_config(path))
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert (config.intermediate_size, config.patch_size, config.image_size, config.num_channels) == (3072, 16, 224, 3)
    assert config.layer_norm_eps == 1e-6
    assert config.layer_scale_init_value > 0
    assert config.use_relative_position_bias and not config.use_shared_relative_position_bias
    assert not config.use_absolute_position_embeddings
    assert config.use_mean_pooling
    assert config.hidden_act == "gelu"
    assert config.num_labels == 1000


def test_legacy_flat_config_is_read_like_timm_reads_it(tmp_path: Path) -> None:
    current = base_config()
    flat = {"architecture": current["architecture"], "num_features": 768, **current["pretrained_cfg"]}
    flat["labels"] = [f"class {index}" for index in range(1000)]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(flat))
    config = read_timm_config(path)
    assert config["num_classes"] == 1000
    assert config["pretrained_cfg"]["crop_pct"] == 0.9
    assert beit_config_from_timm(config).id2label[7] == "class 7"


# --- Logits ---


def test_converted_model_matches_timms_forward(tmp_path: Path) -> None:
    files = timm_beit_files(size="tiny", seed=3)
    model, processor = load_timm_beit(*write_repo(tmp_path, files))
    assert not model.training
    assert model.config._attn_implementation == "sdpa"

    photos = [Image.open(PHOTOS / name) for name in ("chelsea.jpg", "rocket.jpg", "astronaut.jpg")]
    pixel_values = torch.cat(
        [processor(photos)["pixel_values"], torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))]
    )
    with torch.inference_mode():
        logits = model(pixel_values=pixel_values).logits
        expected = timm_reference_logits(load(files["model.safetensors"]), pixel_values, num_heads=TINY_HEADS)

    difference = (logits - expected).abs().max().item()
    print(f"max |logit difference| vs timm's math: {difference:.2e} (logit std {expected.std().item():.2f})")
    assert difference <= 1e-5
    assert expected.std() > 0.3  # the logits differ from class to class: the comparison can tell models apart
    assert torch.equal(logits.topk(5).indices, expected.topk(5).indices)


def test_a_stored_relative_position_index_changes_nothing(tmp_path: Path) -> None:
    stored = {f"blocks.{layer}.attn.relative_position_index": timm_relative_position_index(14) for layer in range(2)}
    pixel_values = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    logits = []
    for name, extra in (("without", None), ("with", stored)):
        model, _ = load_timm_beit(*write_repo(tmp_path / name, timm_beit_files(extra_tensors=extra)))
        with torch.inference_mode():
            logits.append(model(pixel_values=pixel_values).logits)
    assert torch.equal(logits[0], logits[1])


def test_the_converted_model_saves_and_reloads_as_a_plain_transformers_model(tmp_path: Path) -> None:
    model, _ = load_timm_beit(*write_repo(tmp_path / "timm", timm_beit_files()))
    model.save_pretrained(tmp_path / "transformers")
    reloaded = BeitForImageClassification.from_pretrained(tmp_path / "transformers")
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[name], loaded[name]) for name in saved)
    assert reloaded.config.layer_norm_eps == 1e-6 and reloaded.config.id2label[207] == "golden retriever"


# --- Preprocessing ---


def test_preprocessing_equals_timms_eval_transform_on_real_photos(tmp_path: Path) -> None:
    _, processor = load_timm_beit(*write_repo(tmp_path, timm_beit_files()))
    assert (processor.crop_size, processor.image_mean, processor.image_std) == (224, (0.5,) * 3, (0.5,) * 3)
    photos = photo_variants()
    assert any(image.width % 2 for image in photos.values()) and any(image.height % 2 for image in photos.values())
    assert any(image.width < image.height for image in photos.values())

    pixel_values = processor(list(photos.values()), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (len(photos), 3, 224, 224) and pixel_values.dtype == torch.float32
    assert pixel_values.is_contiguous()
    for (name, image), pixels in zip(photos.items(), pixel_values, strict=True):
        difference = (pixels - timm_eval_transform(image)).abs().max().item()
        assert difference <= 1e-5, f"{name}: {difference}"


def test_crop_offsets_round_as_torchvision_not_as_transformers() -> None:
    # rocket.jpg (640 x 427) resizes to 371 x 248: 147 columns to drop, 73.5 per side. torchvision rounds that to
    # 74 (half to even), transformers' center_crop floors it to 73; timm's transform is torchvision's.
    rocket = Image.open(PHOTOS / "rocket.jpg")
    processor = TimmImageProcessor(
        crop_size=224, crop_pct=0.9, interpolation="bicubic", image_mean=(0.5,) * 3, image_std=(0.5,) * 3
    )
    pixels = processor([rocket])["pixel_values"][0]
    assert (pixels - timm_eval_transform(rocket)).abs().max() <= 1e-5
    assert (pixels - timm_eval_transform(rocket, round_offsets=False)).abs().max() > 0.1


@pytest.mark.parametrize(
    ("pretrained_cfg", "reference"),
    [
        (
            {"input_size": [3, 224, 224], "crop_pct": 1.0, "interpolation": "bilinear"},
            {"crop_pct": 1.0, "resample": Image.Resampling.BILINEAR, "mean": (0.485, 0.456, 0.406)},
        ),
        (
            {"input_size": [3, 224, 224], "crop_pct": 0.875, "mean": [0.1, 0.2, 0.3], "std": [0.9, 0.8, 0.7]},
            {"crop_pct": 0.875, "mean": (0.1, 0.2, 0.3), "std": (0.9, 0.8, 0.7)},
        ),
    ],
    ids=["crop-1.0-bilinear-default-mean", "crop-0.875-own-mean-std"],
)
def test_preprocessing_follows_the_pretrained_cfg(pretrained_cfg: dict, reference: dict) -> None:
    processor = TimmImageProcessor.from_pretrained_cfg(pretrained_cfg)
    reference = {"std": (0.229, 0.224, 0.225), "mean": (0.485, 0.456, 0.406), **reference}
    chelsea = Image.open(PHOTOS / "chelsea.jpg")
    pixels = processor([chelsea])["pixel_values"][0]
    assert processor.image_mean == pytest.approx(reference["mean"])
    assert (pixels - timm_eval_transform(chelsea, **reference)).abs().max() <= 1e-5


@pytest.mark.parametrize(
    ("pretrained_cfg", "named"),
    [
        ({"crop_mode": "squash"}, "crop_mode 'squash'"),
        ({"input_size": [3, 224, 192]}, "input_size"),
        ({"interpolation": "random"}, "interpolation 'random'"),
    ],
)
def test_preprocessing_it_cannot_reproduce_is_refused(pretrained_cfg: dict, named: str) -> None:
    with pytest.raises(TimmConversionError, match=named):
        TimmImageProcessor.from_pretrained_cfg(pretrained_cfg)


# --- Labels ---


def test_imagenet_names_come_from_the_data_file(tmp_path: Path) -> None:
    model, _ = load_timm_beit(*write_repo(tmp_path, timm_beit_files()))
    labels = model.config.id2label
    assert len(labels) == 1000
    assert labels[0].startswith("tench")
    assert labels[1].startswith("goldfish")
    assert labels[207] == "golden retriever"
    assert "tabby cat" in labels[281]
    assert labels[999] == "toilet tissue, toilet paper, bathroom tissue"
    data_file = Path(__file__).resolve().parents[1] / "beit_demo" / "models" / "data" / "imagenet1k_labels.txt"
    lines = data_file.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 1001 and lines[-1] == ""  # 1,000 lines, each ending in a newline
    assert all(line.strip() == line and line for line in lines[:-1])


def test_label_names_from_the_config_win(tmp_path: Path) -> None:
    names = [f"kind {index}" for index in range(1000)]
    model, _ = load_timm_beit(*write_repo(tmp_path, timm_beit_files(label_names=names)))
    assert [model.config.id2label[index] for index in (0, 281, 999)] == ["kind 0", "kind 281", "kind 999"]


def test_label_descriptions_are_shown_for_wordnet_ids(tmp_path: Path) -> None:
    config = read_timm_config(write_repo(tmp_path, timm_beit_files(num_classes=3))[0])
    config["label_names"] = ["n01440764", "n01443537", "n99999999"]
    config["label_descriptions"] = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus"}
    assert beit_config_from_timm(config).id2label == {
        0: "tench, Tinca tinca",
        1: "goldfish, Carassius auratus",
        2: "n99999999",
    }


def test_other_heads_without_names_get_generic_labels(tmp_path: Path) -> None:
    model, _ = load_timm_beit(*write_repo(tmp_path, timm_beit_files(num_classes=7)))
    assert model.config.id2label == {index: f"LABEL_{index}" for index in range(7)}
    assert model.classifier.out_features == 7


def test_label_names_of_the_wrong_length_are_refused(tmp_path: Path) -> None:
    config_path, weights_path = write_repo(tmp_path, timm_beit_files(num_classes=7, label_names=["a", "b"]))
    with pytest.raises(TimmConversionError, match="label_names must list 7 names"):
        load_timm_beit(config_path, weights_path)
