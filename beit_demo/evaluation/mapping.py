"""Folder names to a model's labels: matched automatically, set by hand, checked.

A folder matches a label when their normalised names are equal (case, `_`, `-`, `/` and spaces ignored), or the
folder's equals one of the label's comma-separated synonyms: ImageNet's labels read "tabby, tabby cat". By hand, a
folder may map to several labels ("dog" to every dog breed a model knows): ``--map dog="beagle|basset, basset hound"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from beit_demo.errors import InvalidRequestError

FolderLabels = dict[str, tuple[str, ...]]  # folder -> the model's labels it stands for (empty: none)
MAX_SUGGESTIONS = 50


def normalise(name: str) -> str:
    """A name as matching compares it: case folded, `_`, `-` and `/` as spaces, runs of spaces as one."""
    return " ".join(re.sub(r"[_\-/]+", " ", name).casefold().split())


def synonyms(label: str) -> set[str]:
    """A label's names: the whole label and each of its comma-separated parts, normalised."""
    return {normalise(label), *(normalise(part) for part in label.split(",") if part.strip())}


def parse_map_options(options: Iterable[str]) -> FolderLabels:
    """``FOLDER=LABEL[|LABEL...]`` options (the command line's ``--map``, the page's table) as folder -> labels.

    Raises:
        InvalidRequestError: an option without "=", or with no folder or no label; a folder given twice.
    """
    mapping: FolderLabels = {}
    for option in options:
        folder, equals, labels = option.partition("=")
        names = tuple(label.strip() for label in labels.split("|") if label.strip())
        if not equals or not folder.strip() or not names:
            raise InvalidRequestError(
                f"A mapping reads FOLDER=LABEL or FOLDER=LABEL|LABEL...; {option[:120]!r} is not one."
            )
        if folder.strip() in mapping:
            raise InvalidRequestError(f"The folder {folder.strip()!r} is mapped twice: give each folder one mapping.")
        mapping[folder.strip()] = names
    return mapping


def map_folders(folders: Sequence[str], labels: Sequence[str], by_hand: Mapping[str, Sequence[str]]) -> FolderLabels:
    """Each folder's labels for one model: those set by hand that the model has, else the automatic match.

    A folder set by hand to labels the model does not have (another chosen model's labels) falls back to the automatic
    match, which may be none: the folder is then one the model cannot name.

    Raises:
        InvalidRequestError: one of the model's labels stands for two folders.
    """
    known = set(labels)
    by_name: dict[str, list[str]] = {}
    for label in labels:
        for name in synonyms(label):
            by_name.setdefault(name, []).append(label)
    mapping: FolderLabels = {}
    for folder in folders:
        chosen = tuple(label for label in by_hand.get(folder, ()) if label in known)
        mapping[folder] = chosen or tuple(dict.fromkeys(by_name.get(normalise(folder), ())))
    claimed: dict[str, str] = {}
    for folder, names in mapping.items():
        for label in names:
            if label in claimed:
                raise InvalidRequestError(
                    f"The label {label!r} stands for two folders, {claimed[label]!r} and {folder!r}: map it to one."
                )
            claimed[label] = folder
    return mapping


def check_by_hand(by_hand: Mapping[str, Sequence[str]], folders: Sequence[str], labels: Iterable[str]) -> None:
    """A hand-made mapping names folders that hold images and labels that some chosen model has.

    Raises:
        InvalidRequestError: a folder without images, or a label no chosen model has (a typo, most likely).
    """
    for folder in by_hand:
        if folder not in folders:
            raise InvalidRequestError(
                f"The mapping names the folder {folder!r}, which holds no images; the folders are: "
                f"{', '.join(folders)}."
            )
    known = set(labels)
    for folder, names in by_hand.items():
        unknown = [name for name in names if name not in known]
        if unknown:
            raise InvalidRequestError(
                f"No chosen model has the label {unknown[0]!r} (mapped from {folder!r}): copy it as the model lists "
                "it, or look it up with the suggestions."
            )


def suggest(word: str, labels: Iterable[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """The labels that contain ``word`` as a whole word ("dog": "hotdog" no, "sled dog, sledge dog" yes)."""
    wanted = normalise(word)
    if not wanted:
        return []
    pattern = re.compile(rf"(^|[ ,]){re.escape(wanted)}($|[ ,])")
    return [label for label in labels if pattern.search(normalise(label))][:limit]
