"""A corpus of awkward and hostile upload files, for the image loader's tests and the app tests.

``build_corpus(directory)`` writes every file and says, for each, whether the demo should accept it and, if not,
a fragment the user-facing message must contain. The expectations hold for any ``max_pixels`` between 1 megapixel
and Pillow's decompression-bomb threshold (about 89 megapixels), with or without ``min_size``.

The module-level constants describe what the accepted files show, so tests can check pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PHOTO = Path(__file__).resolve().parent / "data" / "photos" / "chelsea.jpg"

UNSUPPORTED = "not a supported image"
DAMAGED = "damaged or incomplete"
TOO_THIN = "times the other"
TOO_LARGE = "megapixel limit"

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
ANIMATION_COLOURS = (RED, GREEN, BLUE)  # frame order of the animated GIF
# EXIF cases: stored (not displayed) size, with a RED square of MARK_SIZE px in the stored top-left corner, rest BLUE.
ORIENTATION_STORED_SIZE = (64, 32)
MARK_SIZE = 16
SIXTEEN_BIT_VALUES = (0, 32768, 65535)  # mode_I16: three vertical bands, left to right
BAND_WIDTH = 8
HOSTILE_NAME = "../" * 3 + "x" * 287 + ".png"  # 300 characters, the name a client could send


@dataclass(frozen=True)
class Case:
    """One corpus file and what loading it should give."""

    name: str
    path: Path
    ok: bool
    message_contains: str | None = None  # for ok=False: a fragment the user-facing message must contain


@dataclass(frozen=True)
class _Spec:
    name: str
    filename: str
    content: Callable[[], bytes]
    message_contains: str | None = None  # None: the file must load


def build_corpus(directory: Path) -> list[Case]:
    """Write every corpus file into ``directory`` (created if needed) and return the cases, in a stable order."""
    directory.mkdir(parents=True, exist_ok=True)
    cases = []
    for spec in _SPECS:
        path = directory / spec.filename
        path.write_bytes(spec.content())
        cases.append(Case(spec.name, path, ok=spec.message_contains is None, message_contains=spec.message_contains))
    return cases


def safe_filename(name: str, max_length: int = 240) -> str:
    """Turn a client-supplied name into one file name: separators become ``_``, the suffix survives truncation."""
    flat = name.replace("/", "_").replace("\\", "_").replace("\0", "_")
    suffix = Path(flat).suffix
    return flat[: max_length - len(suffix)] + suffix if len(flat) > max_length else flat


def _encode(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _huge_png() -> bytes:
    """A valid, all-black 10000 x 10000 one-bit PNG of about 12 KB.

    Written chunk by chunk because building it with Pillow would first allocate the 100-megapixel image.
    """
    width = height = 10_000
    row = b"\0" * (1 + width // 8)  # filter byte "None", then 1250 bytes of packed bits
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels) + _png_chunk(b"IEND", b"")


def _gif_bomb() -> bytes:
    """A 35-byte GIF whose logical screen is 65535 x 65535 (4.3 gigapixels) holding one 1 x 1 frame."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b";"


def _minimal_pdf() -> bytes:
    """A one-page PDF with a correct cross-reference table."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n%s\nendobj\n" % (number, content)
    xref = b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    xref += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(body))
    return body + xref + trailer


def _two_halves(mode: str, left: object, right: object, size: tuple[int, int] = (32, 16)) -> Image.Image:
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def _palette_with_transparency() -> bytes:
    """Left half palette index 0 (black, marked transparent by tRNS), right half index 1 (red)."""
    image = _two_halves("P", 0, 1)
    image.putpalette([0, 0, 0, *RED])
    return _encode(image, "PNG", transparency=0)


def _sixteen_bit() -> bytes:
    image = Image.new("I;16", (BAND_WIDTH * len(SIXTEEN_BIT_VALUES), 8))
    for band, value in enumerate(SIXTEEN_BIT_VALUES):
        # Pasted as an image: Pillow 12.3 writes 0 when a bare int >= 32768 is pasted into an I;16 image.
        image.paste(Image.new("I;16", (BAND_WIDTH, 8), value), (band * BAND_WIDTH, 0))
    return _encode(image, "PNG")


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ANIMATION_COLOURS]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def _oriented_jpeg(orientation: int) -> bytes:
    image = Image.new("RGB", ORIENTATION_STORED_SIZE, BLUE)
    image.paste(RED, (0, 0, MARK_SIZE, MARK_SIZE))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    return _encode(image, "JPEG", quality=95, exif=exif)


def _corrupt_exif(image_format: str) -> bytes:
    """An EXIF block with no TIFF structure inside. Pillow shrugs it off in JPEG, but raises SyntaxError in PNG."""
    image = Image.new("RGB", ORIENTATION_STORED_SIZE, BLUE)
    return _encode(image, image_format, exif=b"Exif\0\0" + b"\xde\xad\xbe\xef" * 8)


def _truncated_photo() -> bytes:
    data = PHOTO.read_bytes()
    return data[: len(data) * 2 // 3]


_SPECS: tuple[_Spec, ...] = (
    _Spec("zero_bytes", "zero_bytes.jpg", lambda: b"", UNSUPPORTED),
    _Spec("text", "notes.png", lambda: b"These are not pixels.\n" * 20, UNSUPPORTED),
    _Spec("html_as_png", "page.png", lambda: b"<!DOCTYPE html><html><body><img src=x></body></html>", UNSUPPORTED),
    _Spec(
        "svg_as_png",
        "drawing.png",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
        UNSUPPORTED,
    ),
    _Spec("pdf", "document.pdf", _minimal_pdf, UNSUPPORTED),
    _Spec("pdf_as_jpg", "document.jpg", _minimal_pdf, UNSUPPORTED),
    _Spec("tiff_as_jpg", "scan.jpg", lambda: _encode(Image.new("RGB", (16, 16), RED), "TIFF"), UNSUPPORTED),
    _Spec("truncated_jpeg", "truncated.jpg", _truncated_photo, DAMAGED),
    _Spec("png_10000x10000", "huge.png", _huge_png, TOO_LARGE),
    _Spec("gif_bomb", "bomb.gif", _gif_bomb, TOO_LARGE),
    _Spec("cmyk_jpeg", "cmyk.jpg", lambda: _encode(Image.new("CMYK", (32, 32), (255, 0, 0, 0)), "JPEG", quality=95)),
    _Spec("mode_1", "mode_1.bmp", lambda: _encode(_two_halves("1", 0, 1), "BMP")),
    _Spec("mode_L", "mode_L.png", lambda: _encode(_two_halves("L", 0, 200), "PNG")),
    _Spec("mode_LA", "mode_LA.png", lambda: _encode(_two_halves("LA", (0, 0), (0, 255)), "PNG")),
    _Spec("mode_P", "mode_P.bmp", lambda: _encode(_two_halves("RGB", RED, GREEN).quantize(4), "BMP")),
    _Spec("mode_P_transparency", "mode_P_transparency.png", _palette_with_transparency),
    _Spec(
        "mode_RGBA",
        "mode_RGBA.webp",
        lambda: _encode(_two_halves("RGBA", (*RED, 0), (*RED, 128)), "WEBP", lossless=True),
    ),
    _Spec("mode_I16", "mode_I16.png", _sixteen_bit),
    # 32-bit integer and float pixels only travel in formats outside ALLOWED_FORMATS (here TIFF); the loader's
    # conversion of modes I and F is tested on in-memory images.
    _Spec("mode_I", "mode_I.png", lambda: _encode(Image.new("I", (8, 8), 100_000), "TIFF"), UNSUPPORTED),
    _Spec("mode_F", "mode_F.png", lambda: _encode(Image.new("F", (8, 8), 0.5), "TIFF"), UNSUPPORTED),
    _Spec("animated_gif", "animated.gif", _animated_gif),
    _Spec("exif_orientation_3", "orientation_3.jpg", lambda: _oriented_jpeg(3)),
    _Spec("exif_orientation_6", "orientation_6.jpg", lambda: _oriented_jpeg(6)),
    _Spec("exif_orientation_8", "orientation_8.jpg", lambda: _oriented_jpeg(8)),
    _Spec("corrupt_exif", "corrupt_exif.jpg", lambda: _corrupt_exif("JPEG")),
    _Spec("corrupt_exif_png", "corrupt_exif.png", lambda: _corrupt_exif("PNG")),
    _Spec("one_by_one", "one_by_one.png", lambda: _encode(Image.new("RGB", (1, 1), GREEN), "PNG")),
    _Spec("one_by_20000", "one_by_20000.png", lambda: _encode(Image.new("L", (1, 20_000), 90), "PNG"), TOO_THIN),
    _Spec("panorama_40_to_1", "panorama.png", lambda: _encode(Image.new("L", (4000, 100), 90), "PNG")),
    _Spec("hostile_name", safe_filename(HOSTILE_NAME), lambda: _encode(Image.new("RGB", (24, 24), GREEN), "PNG")),
    _Spec("photo", "chelsea.jpg", PHOTO.read_bytes),
)

CASE_NAMES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
