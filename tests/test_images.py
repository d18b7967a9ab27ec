"""Tests of beit_demo.images.load_image on the hostile-upload corpus and on purpose-built images."""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from beit_demo.images import ALLOWED_FORMATS, ImageLoadError, load_image, to_rgb
from tests.image_corpus import (
    ANIMATION_COLOURS,
    BAND_WIDTH,
    CASE_NAMES,
    DAMAGED,
    GREEN,
    MARK_SIZE,
    ORIENTATION_STORED_SIZE,
    PHOTO,
    RED,
    SIXTEEN_BIT_VALUES,
    TOO_LARGE,
    UNSUPPORTED,
    Case,
    build_corpus,
)

MAX_PIXELS = 40_000_000
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)

# The 10000 x 10000 PNG passes Pillow's warning threshold on open; these tests are about what load_image does next.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("corpus"))}


def _encoded(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def _close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


class _ReadRecorder(io.BytesIO):
    """An in-memory file that remembers the furthest offset anything has read up to."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return chunk


# --- every corpus case ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("min_size", [None, 448])
@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_case_loads_as_rgb_or_is_refused_with_a_clear_message(
    corpus: dict[str, Case], name: str, min_size: int | None
) -> None:
    case = corpus[name]
    if case.ok:
        image = load_image(case.path, max_pixels=MAX_PIXELS, min_size=min_size)
        assert image.mode == "RGB"
        assert type(image) is Image.Image  # a detached copy, not the still-open ImageFile
        assert image.width >= 1 and image.height >= 1
        return
    with pytest.raises(ImageLoadError) as caught:
        load_image(case.path, max_pixels=MAX_PIXELS, min_size=min_size)
    message = str(caught.value)
    assert case.message_contains in message
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0  # one sentence
    if case.message_contains in (UNSUPPORTED, DAMAGED):
        assert caught.value.__cause__ is not None  # the decoder's error stays attached for the logs


def test_format_list_in_message_matches_allowed_formats(corpus: dict[str, Case]) -> None:
    with pytest.raises(ImageLoadError) as caught:
        load_image(corpus["text"].path, max_pixels=MAX_PIXELS)
    for image_format in ALLOWED_FORMATS:
        assert image_format.lower() in str(caught.value).lower()


# --- size limits, checked from the header ---------------------------------------------------------------------


def test_huge_png_is_refused_before_any_pixel_data_is_read(corpus: dict[str, Case]) -> None:
    data = corpus["png_10000x10000"].path.read_bytes()
    assert len(data) < 100_000
    pixel_data_start = data.index(b"IDAT") + 4

    # The recorder does see a full decode: the real photo is read to its last byte.
    photo = _ReadRecorder(PHOTO.read_bytes())
    load_image(photo, max_pixels=MAX_PIXELS)
    assert photo.furthest == len(photo.getvalue())

    stream = _ReadRecorder(data)
    with pytest.raises(ImageLoadError) as caught:
        load_image(stream, max_pixels=MAX_PIXELS)
    assert stream.furthest <= pixel_data_start, f"read {stream.furthest} bytes of {len(data)}"
    message = str(caught.value)
    assert "10000 x 10000" in message and "100.0 megapixels" in message and "40.0-megapixel limit" in message


def test_pillow_bomb_threshold_caps_a_larger_max_pixels(corpus: dict[str, Case]) -> None:
    with pytest.raises(ImageLoadError) as caught:
        load_image(corpus["png_10000x10000"].path, max_pixels=1_000_000_000)
    assert f"{Image.MAX_IMAGE_PIXELS / 1_000_000:.1f}-megapixel limit" in str(caught.value)


def _header_claiming(width: int, height: int, image_format: str) -> bytes:
    """A small file of ``image_format`` whose header declares ``width`` x ``height`` pixels."""
    if image_format == "PNG":
        ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        chunks = [(b"IHDR", ihdr), (b"IDAT", zlib.compress(b"\0" * 10)), (b"IEND", b"")]
        framed = [
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
            for tag, data in chunks
        ]
        return b"\x89PNG\r\n\x1a\n" + b"".join(framed)
    if image_format == "GIF":
        screen, frame = struct.pack("<HHBBB", width, height, 0, 0, 0), struct.pack("<HHHHB", 0, 0, width, height, 0)
        return b"GIF89a" + screen + b"\x2c" + frame + b"\x02\x02\x44\x01\x00\x3b"
    if image_format == "BMP":
        info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
        return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + info + b"\0" * 16
    if image_format == "JPEG":
        data = bytearray(_encoded(Image.new("RGB", (8, 8)), "JPEG"))
        start = data.index(b"\xff\xc0") + 5  # the frame header: height, then width
        data[start : start + 4] = struct.pack(">HH", height, width)
        return bytes(data)
    # WebP: a still frame cannot be this large, an animation's canvas can (VP8X, ANIM, one 1 x 1 ANMF frame).
    frame = _encoded(Image.new("RGB", (1, 1)), "WEBP", lossless=True)[12:]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return tag + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2)

    canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + chunk(b"VP8X", b"\x02\0\0\0" + canvas) + chunk(b"ANIM", b"\0" * 6)
    body += chunk(b"ANMF", b"\0" * 12 + (100).to_bytes(3, "little") + b"\0" + frame)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("image_format", ALLOWED_FORMATS)
@pytest.mark.parametrize("side", [7_000, 10_000, 20_000], ids=["over-ours", "over-pillows-warning", "over-its-error"])
def test_one_sentence_for_the_pixel_limit_in_every_format_at_every_size(image_format: str, side: int) -> None:
    data = _header_claiming(side, side, image_format)
    assert len(data) < 1000
    with pytest.raises(ImageLoadError) as caught:
        load_image(data, max_pixels=MAX_PIXELS)
    megapixels = f"{side * side / 1_000_000:,.1f}"
    assert str(caught.value) == (
        f"The image is {side} x {side} pixels ({megapixels} megapixels), more than the 40.0-megapixel limit: "
        "upload a smaller image."
    )


def test_max_pixels_boundary() -> None:
    data = _encoded(Image.new("L", (1000, 1000), 7), "PNG")
    assert load_image(data, max_pixels=1_000_000).size == (1000, 1000)
    with pytest.raises(ImageLoadError, match="1000 x 1000 pixels"):
        load_image(data, max_pixels=999_999)


@pytest.mark.parametrize("size", [(1100, 1000), (1500, 1500)], ids=["warning-range", "error-range"])
def test_lowered_bomb_threshold_is_honoured(monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    # 1.1 MP is past Pillow's warning threshold (MAX_IMAGE_PIXELS), 2.25 MP past its error threshold (twice that).
    data = _encoded(Image.new("L", size), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    with pytest.raises(ImageLoadError, match="1.0-megapixel limit"):
        load_image(data, max_pixels=MAX_PIXELS)


def test_bomb_warning_raised_as_error_still_gives_an_image_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encoded(Image.new("L", (1100, 1000)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)
    # Set here, not with a mark: the module's "ignore" mark would take precedence over a test-level one.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(ImageLoadError, match=TOO_LARGE) as caught:
            load_image(data, max_pixels=MAX_PIXELS)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombWarning)


def test_disabled_bomb_threshold_leaves_max_pixels_in_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encoded(Image.new("L", (300, 200)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert load_image(data, max_pixels=60_000).size == (300, 200)
    with pytest.raises(ImageLoadError, match="300 x 200"):
        load_image(data, max_pixels=59_999)


def test_gif_bomb_is_tiny_and_refused(corpus: dict[str, Case]) -> None:
    assert corpus["gif_bomb"].path.stat().st_size < 100
    with pytest.raises(ImageLoadError, match=TOO_LARGE) as caught:
        load_image(corpus["gif_bomb"].path, max_pixels=MAX_PIXELS)
    assert isinstance(caught.value.__cause__, Image.DecompressionBombError)


# --- broken and foreign files -----------------------------------------------------------------------------------


def test_truncated_jpeg_is_refused_with_the_decoder_error_chained(corpus: dict[str, Case]) -> None:
    with pytest.raises(ImageLoadError, match=DAMAGED) as caught:
        load_image(corpus["truncated_jpeg"].path, max_pixels=MAX_PIXELS)
    assert isinstance(caught.value.__cause__, OSError)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


@pytest.mark.parametrize("name", ["tiff_as_jpg", "pdf_as_jpg", "html_as_png", "svg_as_png"])
def test_format_is_decided_by_content_not_name(corpus: dict[str, Case], name: str, tmp_path: Path) -> None:
    assert corpus[name].path.suffix in (".jpg", ".png")
    with pytest.raises(ImageLoadError, match=UNSUPPORTED):
        load_image(corpus[name].path, max_pixels=MAX_PIXELS)
    # ...and a real image under a misleading name loads.
    disguised = tmp_path / "notes.txt"
    disguised.write_bytes(PHOTO.read_bytes())
    assert load_image(disguised, max_pixels=MAX_PIXELS).size == (451, 300)


# --- modes ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "left", "right"),
    [
        ("mode_P_transparency", WHITE, RED),  # transparent palette entry is black: must not show
        ("mode_RGBA", WHITE, (255, 127, 127)),  # red at alpha 0, then red at alpha 128 over white
        ("mode_LA", WHITE, BLACK),
        ("mode_1", BLACK, WHITE),
        ("mode_L", BLACK, (200, 200, 200)),
        ("mode_P", RED, GREEN),
    ],
)
def test_modes_convert_to_the_right_colours(
    corpus: dict[str, Case], name: str, left: tuple[int, int, int], right: tuple[int, int, int]
) -> None:
    image = load_image(corpus[name].path, max_pixels=MAX_PIXELS)
    assert _close(image.getpixel((2, 2)), left, 1)
    assert _close(image.getpixel((image.width - 3, 2)), right, 1)


def test_cmyk_jpeg_converts_cyan_to_cyan(corpus: dict[str, Case]) -> None:
    image = load_image(corpus["cmyk_jpeg"].path, max_pixels=MAX_PIXELS)
    assert _close(image.getpixel((16, 16)), (0, 255, 255), 3)


def test_sixteen_bit_png_is_scaled_not_clipped(corpus: dict[str, Case]) -> None:
    image = load_image(corpus["mode_I16"].path, max_pixels=MAX_PIXELS)
    levels = [image.getpixel((band * BAND_WIDTH + 2, 4)) for band in range(len(SIXTEEN_BIT_VALUES))]
    assert levels == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_big_endian_sixteen_bit_is_scaled() -> None:
    image = Image.new("I;16B", (2, 1))
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 514)  # 514 / 257 = 2
    assert [to_rgb(image).getpixel((x, 0)) for x in range(2)] == [(255, 255, 255), (2, 2, 2)]


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I", [-70_000, 0, 70_000], [0, 128, 255]),
        ("F", [0.25, 0.5, 0.75], [0, 128, 255]),
        ("I", [5, 5, 5], [128, 128, 128]),  # constant: no division by zero
        ("F", [-2.5, -2.5, -2.5], [128, 128, 128]),
    ],
)
def test_wide_modes_are_stretched_over_their_own_range(mode: str, values: list[float], expected: list[int]) -> None:
    image = Image.new(mode, (len(values), 1))
    for x, value in enumerate(values):
        image.putpixel((x, 0), value)
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert [rgb.getpixel((x, 0)) for x in range(len(values))] == [(level,) * 3 for level in expected]


def test_float_image_with_nan_is_refused() -> None:
    image = Image.new("F", (2, 1), math.nan)
    with pytest.raises(ImageLoadError, match="not finite"):
        to_rgb(image)


def test_ycbcr_uses_pillows_conversion() -> None:
    image = Image.new("RGB", (4, 4), (10, 200, 30)).convert("YCbCr")
    assert _close(to_rgb(image).getpixel((1, 1)), (10, 200, 30), 2)


def test_animated_gif_gives_its_first_frame(corpus: dict[str, Case]) -> None:
    image = load_image(corpus["animated_gif"].path, max_pixels=MAX_PIXELS)
    assert image.getpixel((8, 8)) == ANIMATION_COLOURS[0]


# --- EXIF orientation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "displayed_size", "mark_corner"),
    [
        (3, ORIENTATION_STORED_SIZE, "bottom-right"),  # rotate 180
        (6, ORIENTATION_STORED_SIZE[::-1], "top-right"),  # rotate 90 clockwise
        (8, ORIENTATION_STORED_SIZE[::-1], "bottom-left"),  # rotate 90 counter-clockwise
    ],
)
def test_exif_orientation_puts_the_marked_corner_where_a_viewer_shows_it(
    corpus: dict[str, Case], orientation: int, displayed_size: tuple[int, int], mark_corner: str
) -> None:
    image = load_image(corpus[f"exif_orientation_{orientation}"].path, max_pixels=MAX_PIXELS)
    assert image.size == displayed_size
    width, height = image.size
    inset = MARK_SIZE // 2
    corners = {
        "top-left": (inset, inset),
        "top-right": (width - 1 - inset, inset),
        "bottom-left": (inset, height - 1 - inset),
        "bottom-right": (width - 1 - inset, height - 1 - inset),
    }
    for corner, point in corners.items():
        red, _, blue = image.getpixel(point)
        is_mark = red > 200 and blue < 60
        assert is_mark == (corner == mark_corner), f"{corner} at {point}: {image.getpixel(point)}"


def test_exif_orientation_with_min_size_keeps_both_sides(corpus: dict[str, Case]) -> None:
    image = load_image(corpus["exif_orientation_6"].path, max_pixels=MAX_PIXELS, min_size=16)
    assert image.size == (16, 32)  # drafted at 1/2 from 64 x 32, then turned upright


@pytest.mark.parametrize("name", ["corrupt_exif", "corrupt_exif_png"])
def test_corrupt_exif_falls_back_to_the_stored_image(corpus: dict[str, Case], name: str) -> None:
    image = load_image(corpus[name].path, max_pixels=MAX_PIXELS)
    assert image.size == ORIENTATION_STORED_SIZE


# --- decoding only as large as needed -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_format", "size", "min_size", "expected"),
    [
        ("JPEG", (1600, 1200), 100, (200, 150)),  # draft at 1/8; reduce alone would give 134 x 100
        ("JPEG", (4000, 3000), 100, (167, 125)),  # draft stops at 1/8 (500 x 375), then reduce(3)
        ("PNG", (1600, 1200), 100, (134, 100)),  # reduce(12), rounding up
        ("WEBP", (900, 300), 100, (300, 100)),  # reduce(3)
        ("PNG", (150, 120), 100, (150, 120)),  # already within a factor of 2
        ("PNG", (40, 30), 100, (40, 30)),  # never upscaled
    ],
)
def test_min_size_shrinks_by_an_integer_factor_and_keeps_both_sides(
    image_format: str, size: tuple[int, int], min_size: int, expected: tuple[int, int]
) -> None:
    data = _encoded(Image.new("RGB", size, (90, 140, 40)), image_format)
    image = load_image(data, max_pixels=MAX_PIXELS, min_size=min_size)
    assert image.size == expected
    assert min(image.size) >= min(min_size, *size)
    assert _close(image.getpixel((image.width // 2, image.height // 2)), (90, 140, 40), 4)


def test_real_photo_is_not_resized_below_or_above_min_size() -> None:
    assert load_image(PHOTO, max_pixels=MAX_PIXELS, min_size=448).size == (451, 300)
    assert load_image(PHOTO, max_pixels=MAX_PIXELS, min_size=112).size == (226, 150)


# --- sources and resources ------------------------------------------------------------------------------------


def test_every_kind_of_source_gives_the_same_pixels() -> None:
    data = PHOTO.read_bytes()
    reference = load_image(data, max_pixels=MAX_PIXELS).tobytes()
    with PHOTO.open("rb") as stream:
        assert load_image(stream, max_pixels=MAX_PIXELS).tobytes() == reference
        assert not stream.closed  # the caller's file stays the caller's to close
    assert load_image(str(PHOTO), max_pixels=MAX_PIXELS).tobytes() == reference
    assert load_image(PHOTO, max_pixels=MAX_PIXELS).tobytes() == reference


def test_no_file_is_left_open(corpus: dict[str, Case]) -> None:
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_descriptors()
    for case in corpus.values():
        with contextlib.suppress(ImageLoadError):
            load_image(case.path, max_pixels=MAX_PIXELS)
    assert open_descriptors() == before


def test_a_missing_path_is_not_reported_as_a_bad_image(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "absent.png", max_pixels=MAX_PIXELS)


@pytest.mark.parametrize(("max_pixels", "min_size"), [(0, None), (1000, 0)])
def test_nonsense_limits_are_a_programming_error(max_pixels: int, min_size: int | None) -> None:
    with pytest.raises(ValueError) as caught:
        load_image(PHOTO, max_pixels=max_pixels, min_size=min_size)
    assert type(caught.value) is ValueError


def test_hostile_name_became_a_safe_file_in_the_corpus_directory(corpus: dict[str, Case]) -> None:
    path = corpus["hostile_name"].path
    assert path.parent == corpus["photo"].path.parent
    assert path.name.startswith("..") and len(path.name) >= 200 and "/" not in path.name
    assert load_image(path, max_pixels=MAX_PIXELS).size == (24, 24)
