"""Loaded models, kept in memory and shared between requests.

The registry downloads (through `beit_demo.hub`) and loads each model once, even when many requests ask
for it at the same moment, keeps at most ``max_models`` of them (least recently used goes first), and
never frees a model that a request is still using.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from beit_demo import hub
from beit_demo.catalog import CATALOG, CheckpointFormat, ModelSpec, get_spec
from beit_demo.hub import ModelUnavailableError, ProgressCallback


class ModelLoadError(RuntimeError):
    """Files were fetched but could not be turned into a working model."""


@dataclass
class LoadedModel:
    """A model ready for inference, with everything needed to use it."""

    spec: ModelSpec
    model: Any  # a transformers *ForImageClassification in eval mode
    processor: Any  # callable(images=[PIL...], return_tensors="pt") -> {"pixel_values": tensor}
    labels: tuple[str, ...]  # index -> label, from the checkpoint's config.id2label
    input_size: int  # side of the square the model sees
    precision: str
    device: str
    downloaded: bool  # True when this load had to download files
    load_seconds: float
    parameter_bytes: int  # the weights at their loaded precision (int8 weights count one byte each)


def unique_labels(id2label: dict[int, str], num_labels: int) -> tuple[str, ...]:
    """Index -> label, with repeated names told apart by their class index.

    Predictions are keyed by label, so two classes with one name (ImageNet-1k has a "crane" bird and a
    "crane" machine) would otherwise hide each other.
    """
    names = [id2label.get(index, f"LABEL_{index}") for index in range(num_labels)]
    counts = Counter(names)
    return tuple(name if counts[name] == 1 else f"{name} (class {index})" for index, name in enumerate(names))


def _labels(config: Any) -> tuple[str, ...]:
    return unique_labels({int(index): str(name) for index, name in config.id2label.items()}, config.num_labels)


def _parameter_bytes(model: Any) -> int:
    """Bytes of the weights at their loaded precision."""
    total = 0
    for value in model.state_dict().values():
        # A dynamically quantized Linear keeps its int8 weight and its bias as one packed (weight, bias) entry.
        tensors = value if isinstance(value, tuple) else (value,)
        total += sum(tensor.numel() * tensor.element_size() for tensor in tensors if hasattr(tensor, "numel"))
    return total


def _return_freed_memory() -> None:
    """Hand memory freed by a load or an eviction back to the operating system, so RSS follows the models kept."""
    gc.collect()
    # glibc keeps freed blocks in its heap unless asked: the fp32 copy that int8 quantization throws away stayed
    # resident, and five int8 models took 1.5 GB instead of 0.9 GB. Other C libraries may lack malloc_trim.
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _load_transformers(directory: Path) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(
        directory, local_files_only=True, trust_remote_code=False, attn_implementation="sdpa"
    )
    processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    return model, processor


def _load_timm(directory: Path) -> tuple[Any, Any]:
    from beit_demo.timm_beit import load_timm_beit

    return load_timm_beit(directory / "config.json", directory / "model.safetensors")


_FORMAT_LOADERS: dict[CheckpointFormat, Callable[[Path], tuple[Any, Any]]] = {
    CheckpointFormat.TRANSFORMERS: _load_transformers,
    CheckpointFormat.TIMM: _load_timm,
}


def select_device(precision: str) -> str:
    """The torch device for a precision mode.

    Raises:
        ModelLoadError: the mode needs hardware this machine lacks (fp16 needs CUDA).
    """
    import torch

    if precision == "fp16" and not torch.cuda.is_available():
        raise ModelLoadError("BEIT_DEMO_PRECISION=fp16 needs a CUDA GPU; use fp32 or int8 on a CPU.")
    # Dynamic int8 quantization runs on the CPU only.
    return "cuda" if torch.cuda.is_available() and precision != "int8" else "cpu"


def _apply_precision(model: Any, precision: str, device: str) -> Any:
    import torch

    model = model.eval().to(device)
    if precision == "int8":
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    if precision == "fp16":
        return model.half()
    return model


def _speed_up(model: Any, precision: str, device: str) -> None:
    """Inference-only changes that keep the answers (see `beit_demo.classifier`; BENCHMARKS.md says what they save)."""
    from beit_demo.classifier import freeze_relative_position_biases, prepack_linear_layers

    freeze_relative_position_biases(model)
    if precision == "fp32" and device == "cpu":
        prepack_linear_layers(model)


def load_model(spec: ModelSpec, precision: str = "fp32", progress: ProgressCallback | None = None) -> LoadedModel:
    """Fetch ``spec`` into the Hub cache (if needed) and load it for inference.

    Raises:
        ModelUnavailableError: the files cannot be fetched.
        ModelLoadError: the files are there but do not make a working model.
    """
    started = time.perf_counter()
    fetched = hub.fetch(spec, progress)
    if progress is not None:
        progress(1.0, f"Loading {spec.title} into memory")
    device = select_device(precision)
    try:
        model, processor = _FORMAT_LOADERS[spec.checkpoint_format](fetched.directory)
    except Exception as err:
        raise ModelLoadError(
            f"{spec.title} ({spec.repo_id}) was downloaded but could not be loaded ({type(err).__name__}: {err})."
        ) from err
    model = _apply_precision(model, precision, device)
    parameter_bytes = _parameter_bytes(model)
    _speed_up(model, precision, device)
    _return_freed_memory()
    return LoadedModel(
        spec=spec,
        model=model,
        processor=processor,
        labels=_labels(model.config),
        input_size=int(getattr(model.config, "image_size", 224)),
        precision=precision,
        device=device,
        downloaded=fetched.downloaded,
        load_seconds=time.perf_counter() - started,
        parameter_bytes=parameter_bytes,
    )


class ModelState(StrEnum):
    """Where a catalog model is, as the status panel shows it."""

    NOT_DOWNLOADED = "not downloaded"
    ON_DISK = "on disk"
    LOADING = "downloading / loading"
    IN_MEMORY = "in memory"


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of one catalog model's state."""

    spec: ModelSpec
    state: ModelState
    disk_bytes: int
    progress: float | None  # fraction done while loading
    progress_text: str
    users: int  # requests using it right now


@dataclass
class _Slot:
    """One model the registry knows about: loading, or loaded."""

    done: threading.Event = field(default_factory=threading.Event)
    loaded: LoadedModel | None = None
    error: BaseException | None = None
    users: int = 0
    progress: float = 0.0
    progress_text: str = "Waiting to start"

    def report(self, fraction: float, text: str) -> None:
        self.progress, self.progress_text = fraction, text


Loader = Callable[[ModelSpec, str, ProgressCallback], LoadedModel]


class ModelRegistry:
    """A bounded, thread-safe LRU of loaded models with single-flight loading.

    Args:
        max_models: most models kept loaded while idle. Models in use are never freed, so the count can
            exceed this while requests hold more models than that; the extra ones go when released.
        precision: passed to the loader.
        loader: loads one model; `load_model` unless a test substitutes a counting wrapper.
    """

    def __init__(self, max_models: int = 3, precision: str = "fp32", loader: Loader = load_model):
        if max_models < 1:
            raise ValueError("max_models must be at least 1")
        self.max_models = max_models
        self.precision = precision
        self._loader = loader
        self._lock = threading.Lock()
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # oldest use first

    @contextmanager
    def use(self, key: str, progress: ProgressCallback | None = None) -> Iterator[LoadedModel]:
        """Borrow the loaded model ``key`` for the duration of a ``with`` block, loading it if needed.

        While this request waits for a download that another request started, ``progress`` still gets
        that download's progress.

        Raises:
            UnknownModelError: ``key`` is not in the catalog.
            ModelUnavailableError / ModelLoadError: the model cannot be fetched or loaded (every waiter gets
                the same error; nothing broken is kept, so the next request tries again).
        """
        spec = get_spec(key)
        slot, leader = self._claim(key)
        try:
            if leader:
                self._load_into(slot, spec, progress)
            else:
                self._wait_for(slot, progress)
            if slot.error is not None:
                raise slot.error
            yield slot.loaded
        finally:
            self._release(key, slot)

    def _claim(self, key: str) -> tuple[_Slot, bool]:
        with self._lock:
            slot = self._slots.get(key)
            leader = slot is None
            if leader:
                slot = self._slots[key] = _Slot()
            self._slots.move_to_end(key)
            slot.users += 1
            return slot, leader

    def _load_into(self, slot: _Slot, spec: ModelSpec, progress: ProgressCallback | None) -> None:
        def report(fraction: float, text: str) -> None:
            slot.report(fraction, text)
            if progress is not None:
                progress(fraction, text)

        try:
            slot.loaded = self._loader(spec, self.precision, report)
        except BaseException as err:
            slot.error = err
            with self._lock:  # forget the failure so the next request retries from scratch
                if self._slots.get(spec.key) is slot:
                    del self._slots[spec.key]
        finally:
            slot.done.set()

    @staticmethod
    def _wait_for(slot: _Slot, progress: ProgressCallback | None) -> None:
        while not slot.done.wait(timeout=0.25):
            if progress is not None:
                progress(slot.progress, slot.progress_text)

    def _release(self, key: str, slot: _Slot) -> None:
        with self._lock:
            slot.users -= 1
            evicted = self._evict_idle()
        if evicted:
            _return_freed_memory()  # now, not at some later collection

    def _evict_idle(self) -> int:
        """Drop least recently used idle models until at most max_models remain. Caller holds the lock."""
        evicted = 0
        for key in list(self._slots):
            if len(self._slots) <= self.max_models:
                break
            slot = self._slots[key]
            if slot.users == 0 and slot.done.is_set():
                del self._slots[key]
                evicted += 1
        return evicted

    def loaded_keys(self) -> list[str]:
        """Keys of models in memory, least recently used first."""
        with self._lock:
            return [key for key, slot in self._slots.items() if slot.loaded is not None]

    def status(self) -> list[ModelStatus]:
        """The state of every catalog model, in catalog order."""
        with self._lock:
            slots = dict(self._slots)
        statuses = []
        for spec in CATALOG:
            slot = slots.get(spec.key)
            disk_bytes = hub.cached_size_bytes(spec)
            if slot is not None and slot.loaded is not None:
                state, progress = ModelState.IN_MEMORY, None
            elif slot is not None:
                state, progress = ModelState.LOADING, slot.progress
            else:
                state, progress = (ModelState.ON_DISK if disk_bytes else ModelState.NOT_DOWNLOADED), None
            text = slot.progress_text if state is ModelState.LOADING else ""
            users = slot.users if slot is not None else 0
            statuses.append(ModelStatus(spec, state, disk_bytes, progress, text, users))
        return statuses

    def preload(self, keys: tuple[str, ...]) -> threading.Thread:
        """Load ``keys`` one after another in a background thread; failures are kept for the status panel only."""

        def run() -> None:
            for key in keys:
                try:
                    with self.use(key):
                        pass
                except (ModelUnavailableError, ModelLoadError):
                    continue  # the UI reports it when someone picks the model

        thread = threading.Thread(target=run, name="beit-demo-preload", daemon=True)
        thread.start()
        return thread
