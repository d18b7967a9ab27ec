"""Finding the images to classify: files named on the command line, and folders, recursed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from beit_demo.images import file_looks_like_image


@dataclass(frozen=True)
class FoundImages:
    """The files to classify, in a stable order, and what was left out."""

    files: tuple[Path, ...]
    skipped: int  # files inside the folders that are not images by their content
    missing: tuple[str, ...]  # paths given that do not exist


def find_images(paths: list[str]) -> FoundImages:
    """Files given by name are taken as they are (one that is not an image gets its error row); folders are recursed
    in name order, keeping the files whose content is an image. Each file is listed once."""
    files: dict[Path, None] = {}
    skipped = 0
    missing = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            for candidate in sorted(path.rglob("*")):
                if not candidate.is_file():
                    continue
                if file_looks_like_image(candidate):
                    files[candidate] = None
                else:
                    skipped += 1
        elif path.is_file():
            files[path] = None
        else:
            missing.append(given)
    return FoundImages(tuple(files), skipped, tuple(missing))
