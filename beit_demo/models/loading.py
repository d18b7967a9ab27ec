"""Loading a checkpoint from the Hub cache into a model ready for inference: format, precision, device."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beit_demo import hub
from beit_demo.catalog import CheckpointFormat, ModelSource, describe
from beit_demo.errors import ModelLoadError
from beit_demo.hub import ProgressCallback
from beit_demo.memory import return_freed_memory
from beit_demo.models.loaded import LoadedModel, unique_labels

_log = logging.getLogger(__name__)


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


def default_processor(config: Any) -> Any:
    """The family's own preprocessing at its defaults, for a repo without ``preprocessor_config.json``."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    classes = IMAGE_PROCESSOR_MAPPING[type(config)]  # the PIL one: this project runs without torchvision
    return classes.get("pil", classes.get("torchvision"))()


def _load_transformers(directory: Path) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    # No attn_implementation: transformers then takes SDPA where the family has it and eager attention otherwise.
    # Asking for "sdpa" outright fails for families without it (ConvNeXt, ResNet: they have no attention at all).
    model = AutoModelForImageClassification.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    if (directory / hub.PREPROCESSOR_CONFIG).is_file():
        processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True, trust_remote_code=False)
    else:
        processor = default_processor(model.config)
    return model, processor


def _load_timm(directory: Path) -> tuple[Any, Any]:
    from beit_demo.models.timm_beit import load_timm_beit

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


def load_model(source: ModelSource, precision: str = "fp32", progress: ProgressCallback | None = None) -> LoadedModel:
    """Fetch ``source`` into the Hub cache (if needed) and load it for inference.

    Raises:
        ModelUnavailableError: the files cannot be fetched.
        ModelLoadError: the files are there but do not make a working model.
    """
    started = time.perf_counter()
    fetched = hub.fetch(source, progress)
    if progress is not None:
        progress(1.0, f"Loading {describe(source)} into memory")
    device = select_device(precision)
    try:
        model, processor = _FORMAT_LOADERS[source.checkpoint_format](fetched.directory)
    except Exception as err:
        # The library's own text is for the operator's log: it can be long, and name files and settings.
        _log.warning("Loading %s failed: %r", source, err)
        raise ModelLoadError(
            f"{describe(source)} was downloaded but could not be loaded ({type(err).__name__}); pick another model."
        ) from err
    model = _apply_precision(model, precision, device)
    parameter_bytes = _parameter_bytes(model)
    from beit_demo.models.optimize import speed_up  # imports torch: only once a model is loaded

    speed_up(model, precision, device)
    return_freed_memory()
    return LoadedModel(
        source=source,
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
