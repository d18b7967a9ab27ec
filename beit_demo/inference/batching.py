"""Micro-batching: requests that arrive together for the same model share one forward pass.

Kept apart from `beit_demo.inference.classify` so that the service can hold a batcher without importing torch
before the first request (start-up stays as fast as Gradio itself).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from beit_demo.models.loaded import LoadedModel

if TYPE_CHECKING:
    from beit_demo.inference.classify import Prediction


@dataclass
class _Job:
    """One request: its images (one photo, or the face crops of one photo) and what it wants back."""

    images: list[Image.Image]
    top_k: int
    results: list[Prediction] | None = None
    error: BaseException | None = None

    @property
    def finished(self) -> bool:
        return self.results is not None or self.error is not None


class BatchingClassifier:
    """Runs requests that arrive together for the same model as one batched forward pass.

    There is no waiting window: a request that finds the model idle runs at once, alone, so a lone
    visitor is never slowed down; requests that arrive while a forward pass runs are taken together in
    the next one. Only one forward pass runs at a time in the process: on a 2-core CPU two passes side
    by side just fight over the cores, while one batched pass uses them better.

    Args:
        max_batch: most images in one forward pass, from several requests (bounds the memory a pass can take).
            A request of more images than this (the faces of one photo) still runs whole, in a pass of its own.
    """

    def __init__(self, max_batch: int = 8):
        self.max_batch = max_batch
        self._engine = threading.Lock()  # held while a forward pass runs
        self._pending_lock = threading.Lock()
        self._pending: dict[int, list[_Job]] = {}  # id(loaded model) -> jobs waiting for it, oldest first

    def classify(self, loaded: LoadedModel, image: Image.Image, top_k: int = 5) -> Prediction:
        """Classify one image, batched with whatever else is waiting for the same model."""
        return self.classify_together(loaded, [image], top_k)[0]

    def classify_together(self, loaded: LoadedModel, images: list[Image.Image], top_k: int = 5) -> list[Prediction]:
        """Classify several images of one request in one forward pass (with others waiting, if they fit)."""
        job = _Job(list(images), top_k)
        with self._pending_lock:
            self._pending.setdefault(id(loaded), []).append(job)
        while not job.finished:
            with self._engine:
                if not job.finished:
                    self._run_batch(loaded, self._take(loaded))
        if job.error is not None:
            raise job.error
        return job.results

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the engine: no batched forward pass runs meanwhile (for an explanation's pass, which changes a
        model's attention implementation or needs gradients)."""
        with self._engine:
            yield

    def _take(self, loaded: LoadedModel) -> list[_Job]:
        """The oldest waiting job, and the next ones while the pass stays within max_batch images."""
        with self._pending_lock:
            queue = self._pending[id(loaded)]
            count, images = 1, len(queue[0].images)
            while count < len(queue) and images + len(queue[count].images) <= self.max_batch:
                images += len(queue[count].images)
                count += 1
            batch, queue[:] = queue[:count], queue[count:]
            if not queue:
                del self._pending[id(loaded)]
        return batch

    @staticmethod
    def _run_batch(loaded: LoadedModel, batch: list[_Job]) -> None:
        from beit_demo.inference.classify import classify  # imports torch: on the first request, not at start-up

        images = [image for job in batch for image in job.images]
        top_ks = [job.top_k for job in batch for _ in job.images]
        try:
            predictions = classify(loaded, images, top_ks)
        except BaseException as err:  # every waiting request gets the failure, none hangs
            for job in batch:
                job.error = err
            return
        start = 0
        for job in batch:
            job.results = predictions[start : start + len(job.images)]
            start += len(job.images)
