"""Recall and stray boxes of the BlazeFace models on composed crowd photos, with and without the quarter search.

    python tools/face_detector_eval.py [--photos 20] [--seed 0]

Each composed photo is 1000 x 667 px: a real photo (tests/data/photos) as the background, with 3 to 5 faces pasted
at random places, 100 to 260 px wide, cut from the face-mask scenes around their hand-checked boxes
(tests/data/face-mask/faces.json). A face counts as found when a box overlaps it by an IoU of 0.3 or more; any other
box is a stray (some backgrounds hold real faces: the astronaut's). Also prints the boxes found in the scenes and the
photos.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from beit_demo.inference.faces import crop_box  # noqa: E402
from beit_demo.models.face_detector import FULL_RANGE, SHORT_RANGE, FaceDetector  # noqa: E402

DATA = REPO_ROOT / "tests" / "data"
KNOWN_FACES = {
    name: boxes
    for name, boxes in json.loads((DATA / "face-mask" / "faces.json").read_text()).items()
    if name != "about"
}
SIZE = (1000, 667)


def iou(a, b) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def compose(rng: random.Random, faces: list[Image.Image], backgrounds: list[Image.Image]):
    """One crowd photo and the boxes of its faces."""
    photo = rng.choice(backgrounds).resize(SIZE)
    wanted = rng.randint(3, 5)
    truth: list[tuple[float, float, float, float]] = []
    pasted: list[tuple[int, int, int, int]] = []
    for _ in range(500):
        if len(truth) == wanted:
            break
        width = rng.randint(100, 260)
        outer = round(width * 1.5)  # crop_box grows a face box by a quarter on each side
        x, y = rng.randint(0, SIZE[0] - outer), rng.randint(0, SIZE[1] - outer)
        square = (x, y, x + outer, y + outer)
        if any(iou(square, other) > 0 for other in pasted):
            continue
        photo.paste(rng.choice(faces).resize((outer, outer)), (x, y))
        pasted.append(square)
        truth.append((x + width / 4, y + width / 4, x + width * 1.25, y + width * 1.25))
    return photo, truth


def score(detector: FaceDetector, photos, quarters: bool) -> tuple[int, int, int]:
    """(faces found, faces in all, stray boxes)."""
    found = total = stray = 0
    for photo, truth in photos:
        boxes = [face.box for face in detector.detect(photo, quarters=quarters)]
        total += len(truth)
        unmatched = list(truth)
        for box in boxes:
            hit = next((face for face in unmatched if iou(box, face) >= 0.3), None)
            if hit is None:
                stray += 1
            else:
                unmatched.remove(hit)
                found += 1
    return found, total, stray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    scenes = {name: Image.open(DATA / "face-mask" / name).convert("RGB") for name in KNOWN_FACES}
    faces = [
        scenes[name].crop(crop_box(box, *scenes[name].size)) for name, boxes in KNOWN_FACES.items() for box in boxes
    ]
    backgrounds = [Image.open(path).convert("RGB") for path in sorted((DATA / "photos").glob("*.jpg"))]
    rng = random.Random(args.seed)
    photos = [compose(rng, faces, backgrounds) for _ in range(args.photos)]
    for model in (SHORT_RANGE, FULL_RANGE):
        detector = FaceDetector(model)
        for quarters in (False, True):
            found, total, stray = score(detector, photos, quarters)
            print(f"{model.filename}, quarters {'on' if quarters else 'off'}: {found}/{total} faces, {stray} stray")
        for path in [*(DATA / "face-mask" / name for name in KNOWN_FACES), *sorted((DATA / "photos").glob("*.jpg"))]:
            boxes = detector.detect(Image.open(path).convert("RGB"))
            print(f"  {path.name}: {len(boxes)} boxes, scores {[round(face.score, 2) for face in boxes]}")


if __name__ == "__main__":
    main()
