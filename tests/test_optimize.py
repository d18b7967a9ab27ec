"""The inference speed-ups keep the stock models' answers; the model view matches the prediction's input."""

import numpy as np
import pytest
import torch
from PIL import Image

from beit_demo import hub
from beit_demo.catalog import get_entry
from beit_demo.inference import classify as classifier
from beit_demo.models.loading import load_model
from beit_demo.models.optimize import FrozenRelativePositionBias, PrepackedLinear
from tests.conftest import PHOTOS


@pytest.mark.parametrize("key", ["beit-in22k", "facemask-deit"])
def test_the_fast_path_gives_the_stock_models_logits(key):
    from transformers import AutoModelForImageClassification

    spec = get_entry(key)
    loaded = load_model(spec.source)
    stock = AutoModelForImageClassification.from_pretrained(hub.fetch(spec.source).directory).eval()
    modules = [type(module) for module in loaded.model.modules()]
    assert PrepackedLinear in modules and torch.nn.Linear not in modules
    assert (FrozenRelativePositionBias in modules) == (spec.architecture.startswith("Beit"))
    pixels = classifier.preprocess(loaded, [Image.open(PHOTOS / "chelsea.jpg").convert("RGB")])
    with torch.inference_mode():
        expected = stock(pixel_values=pixels).logits
    for _ in range(2):  # the second pass reuses the frozen biases
        assert torch.allclose(classifier.forward(loaded, pixels), expected, atol=1e-5)


def test_the_model_view_from_a_predictions_pixels_is_the_one_from_the_image():
    loaded = load_model(get_entry("facemask-deit").source)
    image = Image.open(PHOTOS / "coffee.jpg").convert("RGB")
    prediction = classifier.classify(loaded, [image])[0]
    from_pixels = classifier.model_view(loaded, prediction.pixel_values)
    assert np.array_equal(np.asarray(from_pixels), np.asarray(classifier.model_view(loaded, image)))


def test_the_fast_linears_back_propagate_as_the_stock_one_does():
    from torch.ao.quantization import quantize_dynamic

    from beit_demo.models.optimize import DifferentiableDynamicLinear

    linear = torch.nn.Linear(24, 40).eval()
    inputs = torch.randn(3, 5, 24)
    weights = torch.randn(3, 5, 40)

    def input_gradient(layer: torch.nn.Module) -> torch.Tensor:
        hidden = inputs.clone().requires_grad_(True)
        (layer(hidden) * weights).sum().backward()
        return hidden.grad

    expected = input_gradient(linear)
    assert torch.allclose(input_gradient(PrepackedLinear(linear)), expected, atol=1e-5)
    quantized = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8)[0]
    assert torch.allclose(input_gradient(DifferentiableDynamicLinear(quantized)), expected, atol=0.05)
    with torch.inference_mode():  # the fast path is the plain product
        assert torch.allclose(PrepackedLinear(linear)(inputs), linear(inputs), atol=1e-5)
