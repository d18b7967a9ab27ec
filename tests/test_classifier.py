"""preprocess -> forward -> postprocess on tiny real checkpoints."""

import pytest
import torch
from PIL import Image

from beit_demo.inference.classify import classify, model_view, postprocess
from beit_demo.models.registry import ModelRegistry
from tests.conftest import PHOTOS, source


@pytest.fixture
def face_mask_model():
    with ModelRegistry().use(source("facemask-beit")) as loaded:
        yield loaded


def photos(*names):
    return [Image.open(PHOTOS / name).convert("RGB") for name in names]


def test_top_k_is_capped_at_the_number_of_labels(face_mask_model):
    prediction = classify(face_mask_model, photos("astronaut.jpg"), top_k=20)[0]
    assert list(prediction.scores) in (["No Mask", "Mask"], ["Mask", "No Mask"])
    assert sum(prediction.scores.values()) == pytest.approx(1.0, abs=1e-6)


def test_postprocess_returns_the_k_largest_as_plain_floats_in_order():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    (row,) = postprocess(logits, ["a", "b", "c", "d"], top_k=3)
    assert list(row) == ["b", "d", "c"]
    assert all(type(value) is float for value in row.values())
    expected = torch.softmax(logits, dim=-1)[0]
    assert row["b"] == pytest.approx(float(expected[1]))
    assert postprocess(logits, ["a", "b", "c", "d"], top_k=0) == [{"b": pytest.approx(float(expected[1]))}]


def test_a_batch_gives_the_same_answers_as_one_image_at_a_time(face_mask_model):
    images = photos("chelsea.jpg", "rocket.jpg", "horse.jpg")
    batched = [p.scores for p in classify(face_mask_model, images, top_k=2)]
    single = [classify(face_mask_model, [image], top_k=2)[0].scores for image in images]
    for one, other in zip(batched, single, strict=True):
        assert one.keys() == other.keys()
        assert list(one.values()) == pytest.approx(list(other.values()), abs=1e-5)


def test_the_model_runs_in_eval_mode_without_gradients(face_mask_model):
    assert not face_mask_model.model.training
    prediction = classify(face_mask_model, photos("coffee.jpg"), top_k=1)[0]
    assert prediction.seconds > 0


def test_model_view_is_the_224_input_unnormalised(face_mask_model):
    (image,) = photos("rocket.jpg")
    view = model_view(face_mask_model, image)
    assert view.size == (224, 224) and view.mode == "RGB"
    # The legacy processor squashes the whole photo to 224 x 224: the view is the photo resized, give or take rounding.
    expected = image.resize((224, 224), Image.Resampling.BILINEAR)
    difference = torch.tensor(list(view.getdata()), dtype=torch.float32) - torch.tensor(
        list(expected.getdata()), dtype=torch.float32
    )
    assert difference.abs().mean() < 3.0
