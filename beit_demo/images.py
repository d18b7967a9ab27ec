"""Decode untrusted uploads into RGB images, safely and no larger than inference needs.

Pure Pillow: no gradio, no torch. Each front end shows :class:`ImageLoadError`'s sentence to its user.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from beit_demo.errors import ImageLoadError

# Decided by content (Pillow's format ids), never by file name.
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP")

_UNSUPPORTED = (
    "The file is not a supported image (JPEG, PNG, WebP, GIF or BMP): upload a photo in one of these formats."
)
_DAMAGED = "The image file is damaged or incomplete and could not be decoded: upload it again or try another image."
# What Pillow's decoders raise on broken data (truncated streams, bad chunks, corrupt headers).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
_WHITE = (255, 255, 255)
# The first bytes of each format the demo decodes (ALLOWED_FORMATS); WebP is RIFF....WEBP.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")
MAX_ASPECT_RATIO = 50  # longest side / shortest side accepted
_SIXTEEN_BIT_MAX = 65535


def looks_like_image(head: bytes) -> bool:
    """Whether a file's first 12 bytes start a JPEG, PNG, GIF, WebP or BMP: by its content, whatever its name says."""
    return head.startswith(_SIGNATURES) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def file_looks_like_image(path: str | os.PathLike[str]) -> bool:
    """Whether the file's content starts like an image the demo decodes (a file that cannot be read does not)."""
    try:
        with open(path, "rb") as stream:
            return looks_like_image(stream.read(12))
    except OSError:
        return False


def load_image(
    source: str | os.PathLike[str] | bytes | BinaryIO, *, max_pixels: int, min_size: int | None = None
) -> Image.Image:
    """Decode an untrusted image into an RGB PIL image, safely and only as large as needed.

    The format is recognised from the content; the size is checked from the header before any pixel is
    decoded; only the first frame of an animation is read; EXIF orientation is applied.

    Args:
        source: a path, the file's bytes, or a binary file object (left open for its owner to close).
        max_pixels: largest ``width * height`` accepted. Pillow's decompression-bomb threshold
            (``Image.MAX_IMAGE_PIXELS``) caps it further.
        min_size: when given, the image is decoded or shrunk by an integer factor to the smallest size whose
            sides both stay >= ``min_size`` (pass twice the model's input size). Never upscales.

    Returns:
        A new RGB image, detached from the file.

    Raises:
        ImageLoadError: not one of :data:`ALLOWED_FORMATS`, too many pixels, one side more than
            :data:`MAX_ASPECT_RATIO` times the other, or damaged/truncated data.
    """
    if max_pixels < 1 or (min_size is not None and min_size < 1):
        raise ValueError(f"max_pixels and min_size must be positive, got {max_pixels=} {min_size=}")
    with _binary_stream(source) as stream, _open(stream, max_pixels) as image:
        _check_size(image.size, max_pixels)
        if min_size is not None:
            # JPEG decodes at 1/2, 1/4 or 1/8 scale while both sides stay >= min_size; a no-op for other formats.
            image.draft("RGB", (min_size, min_size))
        _decode(image)
        _apply_exif_orientation(image)
        rgb = to_rgb(image)
    return rgb if min_size is None else shrink(rgb, min_size)


def to_rgb(image: Image.Image) -> Image.Image:
    """Return a new RGB copy of ``image``, whatever its mode.

    - Transparency (RGBA, LA, PA, P or L with a transparent colour, ...) is composited on white.
    - 16-bit greyscale (``I;16``, ``I;16B``, ...) maps 0..65535 linearly onto 0..255 (value / 257, rounded).
    - 32-bit integer (``I``) and float (``F``) images have no fixed range, so their own minimum maps to 0 and
      their maximum to 255; a constant image becomes mid-grey (128).
    - Every other mode (1, L, P, CMYK, YCbCr, ...) uses Pillow's own conversion.

    Raises:
        ImageLoadError: a float image holding NaN or infinite values.
    """
    if image.mode.startswith("I;16"):
        image = _rescale_to_l(image, 0, _SIXTEEN_BIT_MAX)
    elif image.mode in ("I", "F"):
        low, high = image.getextrema()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ImageLoadError("The image holds values that are not finite numbers: upload an ordinary photo.")
        image = _rescale_to_l(image, low, high)
    if image.has_transparency_data:
        # Pillow's convert("RGB") drops alpha and shows transparent pixels in whatever colour they hold
        # (usually black); a white background is what a viewer shows and what photos of objects resemble.
        rgba = image.convert("RGBA")
        flattened = Image.new("RGB", rgba.size, _WHITE)
        flattened.paste(rgba, mask=rgba)
        return flattened
    return image.convert("RGB")


def _binary_stream(source: str | os.PathLike[str] | bytes | BinaryIO) -> contextlib.AbstractContextManager[BinaryIO]:
    """A context manager yielding a binary stream; it closes only what it opened itself."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        # Opened here, outside the image error handling, so a missing path stays a FileNotFoundError.
        return open(source, "rb")
    return contextlib.nullcontext(source)


def _open(stream: BinaryIO, max_pixels: int) -> Image.Image:
    """Read only the header, refusing formats outside ALLOWED_FORMATS and headers past Pillow's bomb limit.

    A header past Pillow's limit gets the same sentence as one past ``max_pixels`` (its size, and the limit), so a
    visitor reads one message for one rule, however large the image claims to be.
    """
    try:
        return Image.open(stream, formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as err:
        raise ImageLoadError(_UNSUPPORTED) from err
    # The warning counts too, for callers that run with warnings turned into errors.
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        size = _declared_size(stream)
        if size is not None:
            try:
                _check_size(size, max_pixels)
            except ImageLoadError as refusal:
                raise refusal from err
        limit = _megapixels(Image.MAX_IMAGE_PIXELS or 0)
        raise ImageLoadError(
            f"The image declares more pixels than the {limit}-megapixel limit: upload a smaller image."
        ) from err
    except _DECODE_ERRORS as err:
        raise ImageLoadError(_DAMAGED) from err


def _declared_size(stream: BinaryIO) -> tuple[int, int] | None:
    """The (width, height) a header declares, read by its format's Pillow plugin without Pillow's bomb check (which
    `Image.open` applies after the plugin has read the header), or None when no allowed format reads it."""
    for image_format in ALLOWED_FORMATS:
        factory, accept = Image.OPEN[image_format]
        stream.seek(0)
        prefix = stream.read(16)
        stream.seek(0)
        if accept is not None and not accept(prefix):
            continue
        # The stream is ours: closing the image leaves it open.
        with contextlib.suppress(*_DECODE_ERRORS), factory(stream, "") as image:
            return image.size
    return None


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    limit = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels)
    width, height = size
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        # Processors that resize the shorter side to ~250 px would blow a 1 x 20000 strip up to 250 x 5 million.
        raise ImageLoadError(
            f"The image is {width} x {height} pixels, one side more than {MAX_ASPECT_RATIO} times the other: "
            "crop it closer to the subject and upload it again."
        )
    if width * height > limit:
        raise ImageLoadError(
            f"The image is {width} x {height} pixels ({_megapixels(width * height)} megapixels), more than the "
            f"{_megapixels(limit)}-megapixel limit: upload a smaller image."
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:,.1f}"


def _decode(image: Image.Image) -> None:
    """Decode the pixels now, so truncated or corrupt data fails here rather than later."""
    try:
        image.load()
    except _DECODE_ERRORS as err:
        raise ImageLoadError(_DAMAGED) from err


def _apply_exif_orientation(image: Image.Image) -> None:
    """Rotate/flip ``image`` in place as its EXIF orientation says; keep it as stored if the EXIF is unreadable."""
    # Orientation is cosmetic and the EXIF block is attacker-controlled. Fuzzing Pillow 12.3's EXIF reader and
    # writer raised SyntaxError, struct.error, TypeError and AttributeError: no short list is complete, and none
    # of these should cost the user the upload.
    with contextlib.suppress(Exception):
        ImageOps.exif_transpose(image, in_place=True)


def _rescale_to_l(image: Image.Image, low: float, high: float) -> Image.Image:
    """Map ``low..high`` linearly onto 0..255 (mode L); a constant image becomes mid-grey.

    Written by hand because Pillow's convert("L") clips wide-range modes at 255 instead of scaling them.
    """
    scale = 255 / (high - low) if high > low else 0.0
    offset = -low * scale if high > low else 127.5
    # convert("L") from F truncates, so +0.5 rounds to nearest.
    rescaled = image.convert("F").point(lambda value: value * scale + offset + 0.5).convert("L")
    # A transparent wide value (PNG tRNS) names no single 8-bit level, and Pillow builds no mask for these modes:
    # those rare pixels stay opaque rather than some unrelated level turning transparent.
    rescaled.info.pop("transparency", None)
    return rescaled


def shrink(image: Image.Image, min_size: int) -> Image.Image:
    """Shrink by the largest integer factor that keeps both sides >= min_size (a box filter, cheap); never enlarges."""
    factor = min(image.width // min_size, image.height // min_size)
    return image.reduce(factor) if factor >= 2 else image
