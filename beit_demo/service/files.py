"""Many files: one model, ``settings.max_batch`` images per forward pass; a file that fails gets its sentence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from PIL import Image

from beit_demo.catalog import CatalogEntry
from beit_demo.errors import DemoError
from beit_demo.hub import ProgressCallback
from beit_demo.service.classify import adapted
from beit_demo.service.core import ImageInput, ServiceCore, parse_top_k


@dataclass(frozen=True)
class FileResult:
    """One file of a batch: its top-k (most likely first), or the sentence saying why it has none."""

    name: str  # as the caller named it (a path, an upload's file name)
    scores: dict[str, float]  # label -> probability; empty when the file failed
    error: str = ""

    @property
    def label(self) -> str:
        return next(iter(self.scores), "")

    @property
    def probability(self) -> float | None:
        return next(iter(self.scores.values()), None)


def classify_files(
    core: ServiceCore,
    files: Sequence[tuple[str, ImageInput]],
    model_key: str,
    top_k: float | str | None = 5,
    progress: ProgressCallback | None = None,
) -> Iterator[FileResult]:
    """Classify many images with one model, ``settings.max_batch`` of them per forward pass.

    The batch tab, the command line and the Ray workers all run this. Yields one result per file, in order, as
    each pass finishes. A file that cannot be used gets its sentence in its result; the batch goes on.

    Args:
        files: (name, image) pairs: a path or the file's bytes, named as the caller wants them reported.

    Raises:
        DemoError: a bad model key or top-k, or a model that cannot be fetched or loaded (before any file).
    """
    entry = core.entry(model_key)
    k = parse_top_k(top_k)
    files = list(files)
    with core.borrow(entry, progress) as (loaded, _):
        for start in range(0, len(files), core.settings.max_batch):
            chunk = files[start : start + core.settings.max_batch]
            with core.work_slots:  # the chunk's pictures are shrunk to about twice the model's input
                pictures = [_picture_or_error(core, entry, image) for _, image in chunk]
                good = [picture for picture in pictures if isinstance(picture, Image.Image)]
                predictions = iter(core.batcher.classify_together(loaded, good, k) if good else ())
            for (name, _), picture in zip(chunk, pictures, strict=True):
                if isinstance(picture, Image.Image):
                    yield FileResult(name, next(predictions).scores)
                else:
                    yield FileResult(name, {}, picture)


def _picture_or_error(core: ServiceCore, entry: CatalogEntry, image: ImageInput) -> Image.Image | str:
    """The picture ``entry``'s model is given (through its input adapter), or the sentence saying why not."""
    try:
        picture = core.decode(image, entry.input_size)
    except DemoError as err:
        return str(err)
    except OSError:  # a file that went away or cannot be read
        return "The file could not be read."
    return adapted(entry.input_adapter, picture)
