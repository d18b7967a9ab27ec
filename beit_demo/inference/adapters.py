"""Input adapters: turn a user's photo into the kind of picture a model was trained on, before its own processor.

A catalog entry names its adapter (`CatalogEntry.input_adapter`); most models need none. The face-mask models get
their faces cropped by `beit_demo.inference.faces` instead. Pure Pillow and NumPy: no gradio, no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

TILE = 28  # Fashion-MNIST's tiles are 28 x 28
# Work on a copy no larger than this: the result is 28 px, and trimming needs only a few pixels per tile pixel.
_WORKING_SIDE = 256
_BORDER = 2  # pixels of each edge that judge the background
# A pixel is garment when it stands out from the background by 4 times the border's own spread (JPEG noise, a soft
# shadow, a grey backdrop's grain), kept between these two (0..1): a busy photo's border must not hide everything.
_MIN_CONTRAST, _MAX_CONTRAST = 0.08, 0.2
# Rows and columns with fewer garment pixels than this fraction of the image's width or height are left out of the
# trim, so isolated specks do not widen it.
_MIN_LINE_SHARE = 0.02


@dataclass(frozen=True)
class Adapted:
    """A picture as an adapter made it, and which part of the original it shows where."""

    image: Image.Image  # what the model is given
    source_box: tuple[float, float, float, float]  # the part of the original shown, in the original's pixels
    target_box: tuple[int, int, int, int]  # where that part lies in ``image``

    def back_onto(self, values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Values laid over ``image`` (height, width), put back over an original of ``size``; 0 where unseen."""
        left, top, right, bottom = self.target_box
        inside = Image.fromarray(values[top:bottom, left:right].astype(np.float32), mode="F")
        x0, y0, x1, y1 = (round(value) for value in self.source_box)
        placed = np.asarray(inside.resize((max(1, x1 - x0), max(1, y1 - y0)), Image.Resampling.BILINEAR))
        canvas = np.zeros((size[1], size[0]), dtype=np.float32)
        canvas[y0:y1, x0:x1] = placed[: size[1] - y0, : size[0] - x0]
        return canvas


def fashion_mnist_look(image: Image.Image) -> Adapted:
    """A photo of one garment as a Fashion-MNIST tile: light garment on black, trimmed, 28 px on its longest edge.

    Zalando made the tiles by trimming to the garment, resizing the longest edge to 28, centring in 28 x 28, negating
    and converting to 8-bit grey. This does the same to a product photo: grey; negated when its border (the backdrop)
    is light; the backdrop's own level subtracted so it turns black; trimmed to what stands out from it; the longest
    edge shrunk to 28 by area averaging; centred. A 28 x 28 image on a dark border is a tile already and is returned
    unchanged (as RGB). Where nothing stands out from the backdrop (a blank or one-colour picture), the whole picture
    is kept, and comes out as the black tile it then is.
    """
    whole = (0.0, 0.0, float(image.width), float(image.height))
    if image.size == (TILE, TILE) and _background(_as_unit(ImageOps.grayscale(image))) < 0.5:
        return Adapted(ImageOps.grayscale(image).convert("RGB"), whole, (0, 0, TILE, TILE))
    factor = max(image.size) // _WORKING_SIDE
    # Shrinking first, then grey: one pass over a big photo's pixels instead of two.
    pixels = _as_unit(ImageOps.grayscale(image.reduce(factor) if factor >= 2 else image))
    background = _background(pixels)
    if background >= 0.5:  # a light backdrop: Fashion-MNIST garments are light on black
        pixels, background = 1.0 - pixels, 1.0 - background
    garment = pixels - background > np.clip(4 * _border_spread(pixels), _MIN_CONTRAST, _MAX_CONTRAST)
    rows, columns = _span(garment.sum(axis=1), garment.shape[1]), _span(garment.sum(axis=0), garment.shape[0])
    if rows is None or columns is None:  # nothing stands out (a blank or one-colour picture): keep it all
        rows, columns = (0, pixels.shape[0]), (0, pixels.shape[1])
    trimmed = np.clip((pixels[rows[0] : rows[1], columns[0] : columns[1]] - background) / (1.0 - background), 0, 1)
    tile = Image.fromarray(np.round(trimmed * 255).astype(np.uint8), mode="L")
    scale = TILE / max(tile.size)
    size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
    tile = tile.resize(size, Image.Resampling.BOX)  # area averaging, like subsampling a larger picture
    canvas = Image.new("L", (TILE, TILE), 0)
    # An odd margin puts its extra pixel before the garment, as in the dataset's own tiles.
    left, top = (TILE - tile.width + 1) // 2, (TILE - tile.height + 1) // 2
    canvas.paste(tile, (left, top))
    to_original = image.width / pixels.shape[1], image.height / pixels.shape[0]
    source = (
        columns[0] * to_original[0],
        rows[0] * to_original[1],
        columns[1] * to_original[0],
        rows[1] * to_original[1],
    )
    return Adapted(canvas.convert("RGB"), source, (left, top, left + tile.width, top + tile.height))


def _as_unit(grey: Image.Image) -> np.ndarray:
    return np.asarray(grey, dtype=np.float32) / 255.0


def _border_pixels(pixels: np.ndarray) -> np.ndarray:
    edge = min(_BORDER, *(side // 4 or 1 for side in pixels.shape))
    return np.concatenate(
        [pixels[:edge].ravel(), pixels[-edge:].ravel(), pixels[:, :edge].ravel(), pixels[:, -edge:].ravel()]
    )


def _background(pixels: np.ndarray) -> float:
    """The backdrop's level: the median of the border pixels (a garment touching an edge barely moves it)."""
    return float(np.median(_border_pixels(pixels)))


def _border_spread(pixels: np.ndarray) -> float:
    """How much the border varies around its median: the median absolute deviation."""
    border = _border_pixels(pixels)
    return float(np.median(np.abs(border - np.median(border))))


def _span(counts: np.ndarray, length: int) -> tuple[int, int] | None:
    """First and one-past-last index whose garment count reaches _MIN_LINE_SHARE of ``length``, or None."""
    lines = np.flatnonzero(counts >= max(1, _MIN_LINE_SHARE * length))
    return (int(lines[0]), int(lines[-1]) + 1) if lines.size else None


# Adapter names, as catalog entries give them, and what they do.
ADAPTERS: dict[str, Callable[[Image.Image], Adapted]] = {"fashion-mnist": fashion_mnist_look}
ADAPTER_TITLES = {"fashion-mnist": "the Fashion-MNIST look (grey, light garment on black, 28 x 28)"}
