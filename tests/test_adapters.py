"""The Fashion-MNIST input adapter: product photos back into tiles, real tiles untouched, odd inputs handled."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from PIL import Image, ImageOps

from beit_demo.config import Settings
from beit_demo.inference.adapters import TILE, fashion_mnist_look
from beit_demo.service import DemoService
from beit_demo.ui.texts import status_line
from tests.conftest import DATA, PHOTOS


def look(picture: Image.Image) -> Image.Image:
    return fashion_mnist_look(picture).image


TILES = sorted((DATA / "fashion-mnist").glob("*.png"))  # 6 real tiles of each of the 10 classes


def grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def product_photo(tile: Image.Image, rng: random.Random) -> Image.Image:
    """What a shop shows: the garment dark on a light backdrop, large, off-centre, JPEG-compressed."""
    scale = rng.choice([6, 8, 10, 14])
    garment = ImageOps.invert(tile.convert("L")).resize((TILE * scale, TILE * scale), Image.Resampling.BICUBIC)
    width, height = TILE * scale * 2 + rng.randint(0, 200), TILE * scale + rng.randint(100, 400)
    canvas = Image.new("L", (width, height), rng.randint(215, 250))  # white to light grey
    canvas.paste(garment, (rng.randint(0, width - garment.width), rng.randint(0, height - garment.height)))
    buffer = io.BytesIO()
    canvas.convert("RGB").save(buffer, "JPEG", quality=80)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_the_tiles_cover_every_class():
    assert {path.name.split("_")[0] for path in TILES} == {str(index) for index in range(10)}


def test_product_photos_come_back_close_to_their_tile():
    rng = random.Random(0)
    errors = {}
    for path in TILES:
        tile = Image.open(path).convert("L")
        adapted = look(product_photo(tile, rng))
        assert adapted.size == (TILE, TILE)
        errors[path.name] = float(np.abs(grey(adapted) - grey(tile)).mean())
    close = [name for name, error in errors.items() if error <= 0.1]
    assert len(close) >= 0.9 * len(TILES), sorted(errors.items(), key=lambda item: -item[1])[:6]


def test_without_the_adapter_a_product_photo_is_nothing_like_its_tile():
    """The control: the photo as it is, shrunk to 28 x 28, is far from the tile (so the test above means something)."""
    rng = random.Random(0)
    errors = []
    for path in TILES:
        tile = Image.open(path).convert("L")
        shrunk = product_photo(tile, rng).resize((TILE, TILE), Image.Resampling.BOX)
        errors.append(float(np.abs(grey(shrunk) - grey(tile)).mean()))
    assert sum(error <= 0.1 for error in errors) == 0


@pytest.mark.parametrize("path", TILES[::6], ids=lambda path: path.stem)
def test_a_real_tile_passes_through_unchanged(path):
    tile = Image.open(path)
    assert np.array_equal(np.asarray(look(tile.convert("RGB")).convert("L")), np.asarray(tile.convert("L")))


def test_a_white_garment_on_black_needs_no_negation():
    tile = Image.open(TILES[0]).convert("L")
    big = Image.new("L", (400, 300), 0)
    big.paste(tile.resize((224, 224), Image.Resampling.BICUBIC), (20, 40))
    assert np.abs(grey(look(big.convert("RGB"))) - grey(tile)).mean() <= 0.1


@pytest.mark.parametrize(
    "picture",
    [
        pytest.param(Image.new("RGB", (500, 400), "white"), id="blank"),
        pytest.param(Image.new("RGB", (300, 300), (200, 30, 30)), id="one_colour"),
        pytest.param(Image.new("RGB", (1, 1), "black"), id="one_pixel"),
    ],
)
def test_a_picture_with_nothing_on_it_becomes_a_black_tile(picture):
    adapted = look(picture)
    assert adapted.size == (TILE, TILE) and grey(adapted).max() == 0


def test_a_tiny_picture_with_a_garment_becomes_a_tile():
    tiny = Image.new("L", (6, 4), 255)
    tiny.putpixel((2, 1), 0)
    tiny.putpixel((3, 1), 0)  # a dark garment two pixels wide, one high
    adapted = grey(look(tiny.convert("RGB")))
    assert adapted.shape == (TILE, TILE)
    assert adapted[7:21].min() == 1 and adapted[:7].max() == adapted[21:].max() == 0  # 28 x 14, centred


def test_a_huge_picture_becomes_a_tile():
    tile = Image.open(TILES[-1]).convert("L")
    huge = Image.new("L", (8000, 6000), 240)
    huge.paste(ImageOps.invert(tile).resize((3000, 3000)), (4000, 2000))
    assert np.abs(grey(look(huge.convert("RGB"))) - grey(tile)).mean() <= 0.1


def test_the_model_sees_the_adapted_photo_and_the_status_line_says_so():
    service = DemoService(Settings())
    rng = random.Random(1)
    tile = Image.open(TILES[14]).convert("L")
    buffer = io.BytesIO()
    product_photo(tile, rng).save(buffer, "PNG")
    adapted = service.classify(buffer.getvalue(), "fashion-mnist", 3)
    as_is = service.classify(buffer.getvalue(), "fashion-mnist", 3, adapt=False)
    assert adapted.adapter == "fashion-mnist" and "photo adapted to the Fashion-MNIST look" in status_line(adapted)
    assert as_is.adapter == "" and "adapted" not in status_line(as_is)
    # The model's 224 x 224 view is the tile, enlarged: close to the tile at 28 x 28, unlike the unadapted view.
    assert np.abs(grey(adapted.model_input.resize((TILE, TILE), Image.Resampling.BOX)) - grey(tile)).mean() <= 0.1
    assert np.abs(grey(as_is.model_input.resize((TILE, TILE), Image.Resampling.BOX)) - grey(tile)).mean() > 0.3


def test_models_without_an_adapter_see_the_photo_as_it_is():
    service = DemoService(Settings())
    result = service.classify(str(PHOTOS / "chelsea.jpg"), "beit-in22k", 3)
    assert result.adapter == ""


def test_the_adapter_says_which_part_of_the_photo_the_tile_shows():
    tile = Image.open(TILES[20]).convert("L")  # a garment reaching the tile's edges
    photo = Image.new("L", (900, 500), 240)
    photo.paste(ImageOps.invert(tile).resize((280, 280)), (500, 120))
    adapted = fashion_mnist_look(photo.convert("RGB"))
    rows, columns = np.nonzero(np.asarray(tile) > 0)
    garment = (
        500 + columns.min() * 10,
        120 + rows.min() * 10,
        500 + (columns.max() + 1) * 10,
        120 + (rows.max() + 1) * 10,
    )
    assert all(abs(found - expected) <= 12 for found, expected in zip(adapted.source_box, garment, strict=True))
    # Values over the whole tile come back over that part of the photo only.
    back = adapted.back_onto(np.ones((TILE, TILE), dtype=np.float32), photo.size)
    x0, y0, x1, y1 = (round(value) for value in adapted.source_box)
    assert (
        back.shape == (500, 900)
        and back[y0:y1, x0:x1].min() > 0.99
        and back.sum() == pytest.approx((x1 - x0) * (y1 - y0))
    )
