"""Requests that arrive while a forward pass runs share the next one; a lone request runs at once."""

import threading
import time

import pytest
from PIL import Image

from beit_demo.inference.batching import BatchingClassifier
from beit_demo.inference.classify import classify
from beit_demo.models.registry import ModelRegistry
from tests.conftest import PHOTOS, source

NAMES = ("chelsea.jpg", "coffee.jpg", "rocket.jpg", "horse.jpg")


@pytest.fixture
def fashion_model():
    with ModelRegistry().use(source("fashion-mnist")) as loaded:
        yield loaded


def forward_batch_sizes(loaded) -> list[int]:
    """Batch sizes of the forward passes the model runs from now on (a hook: the model itself is untouched)."""
    sizes: list[int] = []
    loaded.model.register_forward_hook(
        lambda module, args, kwargs, output: sizes.append(len(output.logits)), with_kwargs=True
    )
    return sizes


def test_a_lone_request_runs_alone_and_matches_classify(fashion_model):
    image = Image.open(PHOTOS / "chelsea.jpg").convert("RGB")
    expected = classify(fashion_model, [image], top_k=3)[0].scores
    sizes = forward_batch_sizes(fashion_model)
    prediction = BatchingClassifier(max_batch=8).classify(fashion_model, image, top_k=3)
    assert sizes == [1]
    assert list(prediction.scores) == list(expected)
    assert list(prediction.scores.values()) == pytest.approx(list(expected.values()), abs=1e-6)


def test_requests_waiting_behind_a_pass_share_the_next_one_each_with_its_own_top_k(fashion_model):
    images = [Image.open(PHOTOS / name).convert("RGB") for name in NAMES]
    batcher = BatchingClassifier(max_batch=8)
    sizes = forward_batch_sizes(fashion_model)
    results: dict[int, dict[str, float]] = {}

    def request(index: int) -> None:
        results[index] = batcher.classify(fashion_model, images[index], top_k=index + 1).scores

    with batcher._engine:  # a forward pass is "running": the requests below must wait and queue up
        threads = [threading.Thread(target=request, args=(index,)) for index in range(len(images))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while sum(len(jobs) for jobs in batcher._pending.values()) < len(images) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=30)
    assert sizes == [len(images)]
    assert [len(results[index]) for index in range(len(images))] == [1, 2, 3, 4]
    for index, image in enumerate(images):
        alone = classify(fashion_model, [image], top_k=index + 1)[0].scores
        assert list(results[index]) == list(alone)


def test_max_batch_bounds_a_pass(fashion_model):
    images = [Image.open(PHOTOS / name).convert("RGB") for name in NAMES]
    batcher = BatchingClassifier(max_batch=3)
    sizes = forward_batch_sizes(fashion_model)
    with batcher._engine:
        threads = [threading.Thread(target=batcher.classify, args=(fashion_model, image)) for image in images]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while sum(len(jobs) for jobs in batcher._pending.values()) < len(images) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(sizes) == [1, 3]
