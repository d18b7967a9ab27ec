"""Explanations that would fail if they were wrong: tiny ViT-family models trained here to find an object.

Each model learns, in a few seconds, to tell the colour of a small square placed at a random spot on a noisy
background: the evidence is in the square alone, so a right explanation peaks on it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    BeitConfig,
    BeitForImageClassification,
    BeitImageProcessorPil,
    DeiTConfig,
    DeiTForImageClassification,
    DeiTImageProcessorPil,
)

from beit_demo.catalog import ModelSource
from beit_demo.errors import InvalidRequestError
from beit_demo.inference.explain import ATTENTION_ROLLOUT, GRADIENT_X_ACTIVATION, explain_patches, rollout
from beit_demo.inference.heatmaps import onto_image
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.optimize import speed_up
from beit_demo.models.timm_beit import TimmImageProcessor

SIDE, PATCH, OBJECT = 64, 8, 16  # an 8 x 8 grid of patches; the square covers 4 to 9 of them
COLOURS = ((220, 40, 40), (40, 200, 40), (50, 70, 230))
LABELS = ("red", "green", "blue")
SIZES = {"hidden_size": 48, "num_hidden_layers": 3, "num_attention_heads": 3, "intermediate_size": 96}


def scene(rng: np.random.Generator) -> tuple[Image.Image, int, tuple[int, int, int, int]]:
    """A noisy grey picture with one coloured square: (picture, class, square's box)."""
    pixels = rng.normal(128, 10, (SIDE, SIDE, 1)).clip(0, 255).repeat(3, axis=2)
    label = int(rng.integers(len(COLOURS)))
    x, y = (int(value) for value in rng.integers(0, SIDE - OBJECT, size=2))
    pixels[y : y + OBJECT, x : x + OBJECT] = COLOURS[label]
    return Image.fromarray(pixels.astype(np.uint8)), label, (x, y, x + OBJECT, y + OBJECT)


def build(family: str, seed: int = 0) -> LoadedModel:
    torch.manual_seed(seed)
    common = {**SIZES, "image_size": SIDE, "patch_size": PATCH, "num_labels": len(LABELS)}
    mean_std = {"image_mean": [0.5] * 3, "image_std": [0.5] * 3, "size": {"height": SIDE, "width": SIDE}}
    if family == "beit":
        config = BeitConfig(
            **common, use_mean_pooling=True, use_relative_position_bias=True, layer_scale_init_value=0.1
        )
        model, processor = BeitForImageClassification(config), BeitImageProcessorPil(do_center_crop=False, **mean_std)
    else:
        model, processor = (
            DeiTForImageClassification(DeiTConfig(**common)),
            DeiTImageProcessorPil(do_center_crop=False, **mean_std),
        )
    model.config.id2label = dict(enumerate(LABELS))
    return LoadedModel(
        ModelSource(f"tests/{family}"), model.eval(), processor, LABELS, SIDE, "fp32", "cpu", False, 0, 0
    )


def train(loaded: LoadedModel, steps: int = 300) -> LoadedModel:
    rng = np.random.default_rng(0)
    data = [scene(rng) for _ in range(1200)]
    pixels = loaded.processor(images=[image for image, _, _ in data], return_tensors="pt")["pixel_values"]
    targets = torch.tensor([label for _, label, _ in data])
    model = loaded.model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(len(data), (48,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(pixel_values=pixels[batch]).logits, targets[batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return loaded


@pytest.fixture(scope="module", params=["beit", "deit"])
def trained(request) -> LoadedModel:
    loaded = train(build(request.param))
    speed_up(loaded.model, "fp32", "cpu")  # explanations must work on the model as the app serves it
    return loaded


def held_out(count: int = 60):
    rng = np.random.default_rng(12345)
    return [scene(rng) for _ in range(count)]


def peak_on_object(grid: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    row, column = np.unravel_index(int(np.argmax(grid)), grid.shape)
    x0, y0, x1, y1 = column * PATCH, row * PATCH, (column + 1) * PATCH, (row + 1) * PATCH
    return x0 < box[2] and box[0] < x1 and y0 < box[3] and box[1] < y1


def test_the_models_really_learned_the_task(trained):
    from beit_demo.inference.classify import classify

    scenes = held_out()
    predictions = classify(trained, [image for image, _, _ in scenes], 1)
    correct = sum(
        next(iter(prediction.scores)) == LABELS[label]
        for prediction, (_, label, _) in zip(predictions, scenes, strict=True)
    )
    assert correct >= 0.95 * len(scenes)


def test_the_default_explanation_points_at_the_object(trained):
    scenes = held_out()
    hits = sum(peak_on_object(explain_patches(trained, image).grid, box) for image, _, box in scenes)
    assert hits >= 0.9 * len(scenes), hits


def test_the_explanation_of_another_class_is_another_map(trained):
    image, label, _ = held_out(1)[0]
    own = explain_patches(trained, image)
    other = explain_patches(trained, image, LABELS[(label + 1) % len(LABELS)])
    assert own.label == LABELS[label] and other.label != own.label
    assert not np.allclose(own.grid, other.grid)


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(values.ravel())) for values in (first, second)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_with_the_weights_redrawn_the_map_changes(trained):
    random_model = build(trained.source.repo_id.removeprefix("tests/"), seed=7)  # same architecture, new weights
    correlations = [
        spearman(explain_patches(trained, image).grid, explain_patches(random_model, image).grid)
        for image, _, _ in held_out(20)
    ]
    assert float(np.mean(correlations)) < 0.5, correlations


def test_rollout_equals_a_straightforward_computation_on_the_same_attentions(trained):
    image, _, _ = held_out(1)[0]
    pixels = trained.processor(images=[image], return_tensors="pt")["pixel_values"]
    trained.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            attentions = [
                a[0].double().numpy() for a in trained.model(pixel_values=pixels, output_attentions=True).attentions
            ]
    finally:
        trained.model.set_attn_implementation("sdpa")
    tokens = attentions[0].shape[-1]
    patches = (SIDE // PATCH) ** 2
    prefix = tokens - patches
    joint = np.eye(tokens)
    for attention in attentions:  # layer by layer, as the paper writes it
        layer = np.zeros((tokens, tokens))
        for head in attention:
            layer += head / len(attention)
        layer = 0.5 * layer + 0.5 * np.eye(tokens)
        for row in range(tokens):
            layer[row] /= layer[row].sum()
        joint = layer @ joint
    reads_cls = trained.source.repo_id == "tests/deit"
    expected = joint[0, prefix:] if reads_cls else joint[prefix:, prefix:].mean(axis=0)
    ours = rollout([torch.from_numpy(a) for a in attentions], prefix, reads_cls).numpy()
    assert np.allclose(ours, expected, atol=1e-10)
    explained = explain_patches(trained, image, method=ATTENTION_ROLLOUT)
    assert explained.method == ATTENTION_ROLLOUT
    assert np.allclose(explained.grid.ravel(), expected / expected.max(), atol=1e-4)


def test_the_classify_path_keeps_its_fast_attention(trained):
    image, _, _ = held_out(1)[0]
    explain_patches(trained, image, method=ATTENTION_ROLLOUT)
    assert trained.model.config._attn_implementation == "sdpa"


def test_an_unknown_class_or_method_gets_a_sentence(trained):
    image, _, _ = held_out(1)[0]
    with pytest.raises(InvalidRequestError, match="has no class 'purple'.*such as"):
        explain_patches(trained, image, "purple")
    with pytest.raises(InvalidRequestError, match="Unknown explanation method 'saliency'.*gradient x activation"):
        explain_patches(trained, image, method="saliency")
    assert explain_patches(trained, image, method=" Gradient  X Activation ").method == GRADIENT_X_ACTIVATION


# -- geometry ------------------------------------------------------------------------------------------------


def one_hot_grid(rows: int, row: int, column: int) -> np.ndarray:
    grid = np.zeros((rows, rows), dtype=np.float32)
    grid[row, column] = 1.0
    return grid


def peak(heat: np.ndarray) -> tuple[int, int]:
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return int(x), int(y)


def test_a_deit_processor_that_crops_maps_the_peak_back_onto_a_wide_photo():
    processor = DeiTImageProcessorPil(size={"height": 256, "width": 256}, do_center_crop=True, crop_size=224)
    photo = (1000, 500)  # squashed to 256 x 256, then the centre 224 x 224 is kept
    heat = onto_image(one_hot_grid(14, 2, 11), processor, photo)
    assert heat.shape == (500, 1000)
    # Patch (row 2, column 11) is centred at (184, 40) in the crop, (200, 56) in the 256 image.
    x, y = peak(heat)
    assert abs(x - 200 * 1000 / 256) <= 1000 / 256 * 8 and abs(y - 56 * 500 / 256) <= 500 / 256 * 8
    # The 16 px cropped away on every side of the 256 image was never seen: zero there.
    assert heat[:, : int(16 * 1000 / 256) - 2].max() == 0 and heat[: int(16 * 500 / 256) - 2].max() == 0


def test_the_timm_crop_maps_the_peak_back_onto_a_tall_photo():
    processor = TimmImageProcessor(
        crop_size=224, crop_pct=0.9, interpolation="bicubic", image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    photo = (600, 900)  # shorter side to 248: 248 x 372, then the centre 224 x 224
    heat = onto_image(one_hot_grid(14, 13, 0), processor, photo)
    assert heat.shape == (900, 600)
    left, top = round((248 - 224) / 2), round((372 - 224) / 2)  # 12, 74
    x, y = peak(heat)
    scale = 600 / 248
    assert abs(x - (left + 8) * scale) <= 8 * scale and abs(y - (top + 216) * scale) <= 8 * scale
    # Above and below the crop, the model saw nothing of the photo.
    assert heat[: int(top * scale) - 3].max() == 0 and heat[int((top + 224) * scale) + 3 :].max() == 0


def test_a_squashing_processor_covers_the_whole_photo():
    processor = BeitImageProcessorPil(size={"height": 224, "width": 224}, do_center_crop=False)
    heat = onto_image(np.ones((14, 14), dtype=np.float32), processor, (640, 427))
    assert heat.shape == (427, 640) and heat.min() > 0.99


def test_an_int8_model_is_explained_too():
    import copy

    from torch.ao.quantization import quantize_dynamic

    loaded = train(build("beit"))
    model = quantize_dynamic(copy.deepcopy(loaded.model), {torch.nn.Linear}, dtype=torch.qint8)
    speed_up(model, "int8", "cpu")
    int8 = LoadedModel(loaded.source, model, loaded.processor, LABELS, SIDE, "int8", "cpu", False, 0, 0)
    scenes = held_out()
    hits = sum(peak_on_object(explain_patches(int8, image).grid, box) for image, _, box in scenes)
    assert hits >= 0.9 * len(scenes), hits
