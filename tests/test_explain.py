"""Explanations that would fail if they were wrong: tiny ViT-family models trained here to find a square.

The models and their uploads are `tests.explain_cases`: twelve independently trained models (six BEiTs, six DeiTs;
seeds, square sizes, backgrounds, upload sizes, tasks and processors differ). The evidence is in the square alone,
so a right explanation peaks on it; the default method must do so on every model, not on average. On a plain
background the square is also the most conspicuous thing in the picture, so there even a method that ignored the
model would point at it: the cases on clutter, where it would not, are what make the pointing test a test.
"""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import BeitImageProcessorPil, DeiTImageProcessorPil

from beit_demo.errors import InvalidRequestError
from beit_demo.inference import attribution, explain
from beit_demo.inference.attribution import rollout
from beit_demo.inference.classify import classify
from beit_demo.inference.explain import (
    ATTENTION_ROLLOUT,
    GRADIENT_ROLLOUT,
    GRADIENT_X_ACTIVATION,
    INTEGRATED_GRADIENTS,
    explain_faces,
    explain_patches,
)
from beit_demo.inference.faces import JudgedFace, crop_box
from beit_demo.inference.heatmaps import DEFAULT_METHOD, METHODS, onto_image
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.optimize import speed_up
from beit_demo.models.timm_processor import TimmImageProcessor
from tests.conftest import DATA
from tests.explain_cases import CASES, PATCH, SIDE, Case, cached_model, held_out, pointing, scene, untrained

UPLOADS = 48  # held-out uploads per model for the pointing test
# The share of uploads on which the default's peak must fall on the square, for each model, as the explanation issue
# asks. Measured (docs/explanations.md): at least 44 of 48 on every model.
POINTING = 0.90
BEIT, DEIT = (next(case for case in CASES if case.family == family) for family in ("beit", "deit"))


@pytest.fixture(scope="session")
def trained(request):
    """case -> its trained model as the app serves it (sped up), trained once and kept in pytest's cache."""
    folder = request.config.cache.mkdir("explain-models")
    models: dict[str, LoadedModel] = {}

    def model(case: Case) -> LoadedModel:
        if case.name not in models:
            loaded = cached_model(case, folder)
            speed_up(loaded.model, "fp32", "cpu")  # explanations must work on the model as the app serves it
            models[case.name] = loaded
        return models[case.name]

    return model


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_models_really_learned_the_task(trained, case):
    rng = np.random.default_rng(54321 + case.seed)
    uploads = [scene(case, rng) for _ in range(60)]  # both classes of the mask task
    predictions = classify(trained(case), [image for image, _, _ in uploads], 1)
    correct = sum(
        next(iter(prediction.scores)) == case.labels[label]
        for prediction, (_, label, _) in zip(predictions, uploads, strict=True)
    )
    assert correct >= 0.95 * len(uploads)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_default_explanation_points_at_the_evidence_on_every_trained_model(trained, case):
    assert DEFAULT_METHOD == INTEGRATED_GRADIENTS == METHODS[0]
    hits = pointing(trained(case), case, explain_patches, held_out(case, UPLOADS))
    assert hits >= POINTING * UPLOADS, f"{case.name}: {hits} of {UPLOADS}"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_with_the_weights_redrawn_the_default_map_changes_and_stops_pointing(trained, case):
    redrawn = untrained(case, seed=1000 + case.seed)  # same architecture and processor, new weights
    uploads = held_out(case, 16)
    correlations = [
        spearman(explain_patches(trained(case), image).grid, explain_patches(redrawn, image).grid)
        for image, _, _ in uploads
    ]
    assert float(np.mean(correlations)) < 0.5, correlations
    if case.background == "clutter":  # elsewhere the square stands out of the photo alone (see the docstring)
        assert pointing(redrawn, case, explain_patches, held_out(case, UPLOADS)) <= 0.6 * UPLOADS


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", [BEIT, DEIT], ids=lambda case: case.name)
def test_the_explanation_of_another_class_is_another_map_except_for_rollout(trained, case, method):
    image, label, _ = held_out(case, 1)[0]
    own = explain_patches(trained(case), image, method=method)
    other = explain_patches(trained(case), image, case.labels[(label + 1) % len(case.labels)], method)
    assert own.label == case.labels[label] and other.label != own.label
    # Attention rollout explains no class in particular: the same map for every class, by design.
    assert np.allclose(own.grid, other.grid) == (method == ATTENTION_ROLLOUT)


def spearman(first: np.ndarray, second: np.ndarray) -> float:
    ranks = [np.argsort(np.argsort(values.ravel())) for values in (first, second)]
    return float(np.corrcoef(*ranks)[0, 1])


def test_integrated_gradients_add_up_to_the_change_of_the_log_probability(trained):
    """The method's completeness: the attributions sum to log p(photo) - log p(baseline), given enough steps."""
    loaded = trained(BEIT)
    image, label, _ = held_out(BEIT, 1)[0]
    pixel_values = explain.model_input(loaded, image)
    relevance, index = attribution.integrated_gradients(loaded, pixel_values, "", 64, steps=256)
    with torch.inference_mode():
        logits = loaded.model(pixel_values=torch.cat([pixel_values, torch.zeros_like(pixel_values)])).logits
    log_probabilities = logits.log_softmax(dim=-1)
    change = float(log_probabilities[0, index] - log_probabilities[1, index])
    assert index == label
    assert abs(float(relevance.sum()) - change) <= 0.02 * abs(change), (float(relevance.sum()), change)


def attentions_and_gradients(loaded: LoadedModel, image: Image.Image):
    """Every block's attention weights and the gradient of the top-1 logit with respect to them, from plain autograd
    on the model as served (eager attention for this pass, as the methods switch to), and the tokens before the
    patches."""
    pixels = loaded.processor(images=[image], return_tensors="pt")["pixel_values"].requires_grad_(True)
    loaded.model.set_attn_implementation("eager")
    try:
        with torch.enable_grad():
            output = loaded.model(pixel_values=pixels, output_attentions=True)
            gradients = torch.autograd.grad(output.logits[0].max(), output.attentions)
    finally:
        loaded.model.set_attn_implementation("sdpa")
    attentions = [a[0].detach().double().numpy() for a in output.attentions]
    return attentions, [g[0].double().numpy() for g in gradients], attentions[0].shape[-1] - (SIDE // PATCH) ** 2


def read_by_the_head(relevance: np.ndarray, prefix: int, case: Case) -> np.ndarray:
    """The row a token-to-token relevance gives the patches from what the head reads: DeiT's CLS token, the mean of
    BEiT's patch tokens."""
    return relevance[0, prefix:] if case.family == "deit" else relevance[prefix:, prefix:].mean(axis=0)


@pytest.mark.parametrize("case", [BEIT, DEIT], ids=lambda case: case.name)
def test_gradient_weighted_rollout_equals_the_papers_formula_on_the_same_attentions(trained, case):
    loaded = trained(case)
    image, _, _ = held_out(case, 1)[0]
    attentions, gradients, prefix = attentions_and_gradients(loaded, image)
    tokens = attentions[0].shape[-1]
    relevance = np.eye(tokens)
    for attention, gradient in zip(attentions, gradients, strict=True):  # Chefer et al. 2021, equations 5 and 6
        weighted = np.zeros((tokens, tokens))
        for head in range(len(attention)):
            weighted += np.maximum(gradient[head] * attention[head], 0) / len(attention)
        relevance = relevance + weighted @ relevance
    expected = np.maximum(read_by_the_head(relevance - np.eye(tokens), prefix, case), 0)
    explained = explain_patches(loaded, image, method=GRADIENT_ROLLOUT)
    assert explained.method == GRADIENT_ROLLOUT
    assert np.allclose(explained.grid.ravel(), expected / expected.max(), atol=1e-4)


@pytest.mark.parametrize("case", [BEIT, DEIT], ids=lambda case: case.name)
def test_rollout_equals_a_straightforward_computation_on_the_same_attentions(trained, case):
    loaded = trained(case)
    image, _, _ = held_out(case, 1)[0]
    attentions, _, prefix = attentions_and_gradients(loaded, image)
    tokens = attentions[0].shape[-1]
    joint = np.eye(tokens)
    for attention in attentions:  # layer by layer, as the paper writes it
        layer = np.zeros((tokens, tokens))
        for head in attention:
            layer += head / len(attention)
        layer = 0.5 * layer + 0.5 * np.eye(tokens)
        for row in range(tokens):
            layer[row] /= layer[row].sum()
        joint = layer @ joint
    expected = read_by_the_head(joint, prefix, case)
    ours = rollout([torch.from_numpy(a) for a in attentions], prefix, case.family == "deit").numpy()
    assert np.allclose(ours, expected, atol=1e-10)
    explained = explain_patches(loaded, image, method=ATTENTION_ROLLOUT)
    assert explained.method == ATTENTION_ROLLOUT
    assert np.allclose(explained.grid.ravel(), expected / expected.max(), atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_the_classify_path_keeps_its_fast_attention_and_no_kept_weights(trained, method):
    loaded = trained(BEIT)
    image, _, _ = held_out(BEIT, 1)[0]
    explain_patches(loaded, image, method=method)
    assert loaded.model.config._attn_implementation == "sdpa"
    assert all(getattr(module, "kept_weight", None) is None for module in loaded.model.modules())


def test_integrated_gradients_let_other_passes_run_between_its_own(trained):
    """It takes the engine pass by pass (a classification may run between), the hooking methods once for all."""
    turns = []

    def turn():
        turns.append(1)
        return contextlib.nullcontext()

    image, _, _ = held_out(BEIT, 1)[0]
    explain_patches(trained(BEIT), image, method=INTEGRATED_GRADIENTS, turn=turn)
    assert len(turns) == 1 + attribution.INTEGRATED_GRADIENT_STEPS // 2  # the class's pass, then two steps a pass
    turns.clear()
    explain_patches(trained(BEIT), image, method=GRADIENT_ROLLOUT, turn=turn)
    assert len(turns) == 1


def test_an_unknown_class_or_method_gets_a_sentence(trained):
    image, _, _ = held_out(BEIT, 1)[0]
    with pytest.raises(InvalidRequestError, match="has no class 'purple'.*such as"):
        explain_patches(trained(BEIT), image, "purple")
    with pytest.raises(InvalidRequestError, match="Unknown explanation method 'saliency'.*integrated gradients"):
        explain_patches(trained(BEIT), image, method="saliency")
    assert explain_patches(trained(BEIT), image, method=" Gradient  X Activation ").method == GRADIENT_X_ACTIVATION
    assert explain_patches(trained(BEIT), image).method == INTEGRATED_GRADIENTS


def test_an_int8_model_is_explained_too(trained, request):
    from torch.ao.quantization import quantize_dynamic

    trained(BEIT)  # trains it, if no earlier run has
    fresh = cached_model(BEIT, request.config.cache.mkdir("explain-models"))  # not sped up: plain Linear layers
    model = quantize_dynamic(copy.deepcopy(fresh.model), {torch.nn.Linear}, dtype=torch.qint8)
    speed_up(model, "int8", "cpu")
    int8 = LoadedModel(fresh.source, model, fresh.processor, fresh.labels, SIDE, "int8", "cpu", False, 0, 0)
    hits = pointing(int8, BEIT, explain_patches, held_out(BEIT, 24))
    assert hits >= POINTING * 24, hits


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


# -- faces ---------------------------------------------------------------------------------------------------

MASK_CASE = next(case for case in CASES if case.task == "mask" and not case.crop)


def test_each_face_is_explained_on_its_own_crop_and_the_overlay_peaks_on_each_face(trained):
    """A real photo of three people, each given a saturated square over the lower face: the evidence of the "mask"
    model trained here. Every face's part of the overlay peaks on its own square, and nothing is drawn outside the
    faces' crops."""
    boxes = [tuple(box) for box in json.loads((DATA / "face-mask" / "faces.json").read_text())["scene_1.jpg"]]
    pixels = np.asarray(Image.open(DATA / "face-mask" / "scene_1.jpg").convert("RGB")).copy()
    squares = []
    for x0, y0, x1, y1 in boxes:
        side = round(0.3 * max(x1 - x0, y1 - y0))  # a fifth of the crop, as in the model's training
        left, top = (x0 + x1 - side) // 2, y0 + round(0.7 * (y1 - y0)) - side // 2
        pixels[top : top + side, left : left + side] = (230, 40, 150)
        squares.append((left, top, left + side, top + side))
    photo = Image.fromarray(pixels)
    faces = [JudgedFace(box, 0.9, {"Mask": 0.9, "No Mask": 0.1}) for box in boxes]
    relevance = explain_faces(trained(MASK_CASE), photo, faces, photo.size)
    assert relevance.shape == (photo.height, photo.width)
    outside = np.ones(relevance.shape, dtype=bool)
    for box, square in zip(boxes, squares, strict=True):
        left, top, right, bottom = crop_box(box, photo.width, photo.height)
        outside[top:bottom, left:right] = False
        region = relevance[top:bottom, left:right]
        assert region.max() > 0.8  # each face scaled to its own peak (bilinear resizing softens it a little)
        y, x = np.unravel_index(int(np.argmax(region)), region.shape)
        slack = 0.5 * 8 * (right - left) / SIDE  # half a patch, in the photo's pixels
        assert square[0] - slack <= left + x <= square[2] + slack, (box, square, (left + x, top + y))
        assert square[1] - slack <= top + y <= square[3] + slack, (box, square, (left + x, top + y))
    assert relevance[outside].max() == 0.0


def test_explained_faces_are_laid_onto_a_shrunk_photo_in_place(trained):
    pixels = np.random.default_rng(5).normal(128, 20, (400, 800, 3)).clip(0, 255).astype(np.uint8)
    pixels[160:190, 535:565] = (230, 40, 150)  # a "mask" on the face
    photo = Image.fromarray(pixels)
    face = JudgedFace((500, 100, 600, 200), 0.9, {"Mask": 0.6, "No Mask": 0.4})
    relevance = explain_faces(trained(MASK_CASE), photo, [face], (400, 200), INTEGRATED_GRADIENTS)
    left, top, right, bottom = (value // 2 for value in crop_box(face.box, 800, 400))
    inside = np.zeros(relevance.shape, dtype=bool)
    inside[top:bottom, left:right] = True
    assert relevance.shape == (200, 400) and relevance[inside].max() > 0 and relevance[~inside].max() == 0
