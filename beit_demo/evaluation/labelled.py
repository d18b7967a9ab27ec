"""Labelled images in the ImageFolder layout (one folder per class), from a folder on disk or a zip held in memory.

A zip comes from a visitor, so it is read in memory, member by member, under caps, and never extracted: a name taken
from the archive is only ever a label and a row's name, not a path. Each refusal is one sentence.
"""

from __future__ import annotations

import contextlib
import io
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from beit_demo.errors import InvalidRequestError
from beit_demo.images import file_looks_like_image, looks_like_image

ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_ARCHIVE_SIGNATURES = (b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")


@dataclass(frozen=True)
class ArchiveLimits:
    """What one uploaded zip may hold."""

    max_files: int = 2000  # members that are files
    max_bytes: int = 300_000_000  # uncompressed, all members together
    max_ratio: float = 100.0  # uncompressed / compressed size of a member (a zip bomb compresses far better)


@dataclass(frozen=True)
class LabelledImage:
    path: str  # as the report names it: "class/sub/name.jpg", relative to the top folder
    truth: str  # the class folder it lies in
    image: bytes | str  # the file's bytes (from a zip) or its path (from a folder)


@dataclass(frozen=True)
class LabelledSet:
    """The rows to evaluate, in a stable order (class, then path), and what was left out."""

    images: tuple[LabelledImage, ...]
    classes: tuple[str, ...]  # the class folders that hold at least one image, sorted
    skipped_top_level: int = 0  # files lying directly in the top folder: not rows
    skipped_not_images: int = 0  # files in the class folders that are not images by their content
    notes: list[str] = field(default_factory=list)

    def check_usable(self) -> None:
        """Raises InvalidRequestError unless there are images in at least two class folders."""
        if len(self.classes) < 2:
            found = f"found {len(self.classes)}: {', '.join(self.classes)}" if self.classes else "found none"
            raise InvalidRequestError(
                f"Evaluation needs images in at least two class folders (one folder per class); {found}."
            )


def read_folder(root: str | Path) -> LabelledSet:
    """The class folders under ``root`` (its subfolders, each recursed), files counted as images by their content.

    Raises:
        InvalidRequestError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidRequestError(f"{str(root)[:200]!r} is not a folder of class folders.")
    images, skipped_top, skipped_other = [], 0, 0
    for entry in sorted(root.iterdir()):
        if entry.is_file():
            skipped_top += 1
        elif entry.is_dir() and not entry.is_symlink():
            for path in sorted(entry.rglob("*")):
                if not path.is_file():
                    continue
                if file_looks_like_image(path):
                    images.append(LabelledImage(path.relative_to(root).as_posix(), entry.name, str(path)))
                else:
                    skipped_other += 1
    return _labelled(images, skipped_top, skipped_other)


def zip_folders(archive: str | Path | bytes, limits: ArchiveLimits = ArchiveLimits()) -> tuple[str, ...]:  # noqa: B008
    """The class folders a zip names, from its directory alone (no member is read): for the page's mapping table.

    Raises:
        InvalidRequestError: as `read_zip`, for what the directory shows.
    """
    with _checked_zip(archive, limits) as (_, members, top):
        return tuple(sorted({_parts(member, top)[0] for member in members if len(_parts(member, top)) >= 2}))


def read_zip(archive: str | Path | bytes, limits: ArchiveLimits = ArchiveLimits()) -> LabelledSet:  # noqa: B008
    """The class folders of a zip (optionally all under one top folder), read in memory within ``limits``.

    Raises:
        InvalidRequestError: not a zip, or an entry that is a link, leaves the archive ('..' or an absolute path) or
            is an archive itself, or the zip is over a cap or compressed like a zip bomb. The sentence names it.
    """
    with _checked_zip(archive, limits) as (opened, members, top):
        images, skipped_top, skipped_other, total = [], 0, 0, 0
        for member in sorted(members, key=lambda member: member.filename):
            parts = _parts(member, top)
            if len(parts) < 2:
                skipped_top += 1
                continue
            if member.compress_size and member.file_size / member.compress_size > limits.max_ratio:
                ratio = member.file_size // member.compress_size
                raise InvalidRequestError(
                    f"The archive entry {_quoted(member.filename)} is compressed {ratio} to 1, as zip bombs are: "
                    "the upload was refused."
                )
            data = _read_member(opened, member, limits.max_bytes - total)
            total += len(data)
            if data.startswith(_ARCHIVE_SIGNATURES):
                raise _nested(member.filename)
            if looks_like_image(data[:12]):
                images.append(LabelledImage("/".join(parts), parts[0], data))
            else:
                skipped_other += 1
    return _labelled(images, skipped_top, skipped_other)


@contextlib.contextmanager
def _checked_zip(archive: str | Path | bytes, limits: ArchiveLimits):
    """The open zip, its file members and their common top folder, once every name and the caps were checked."""
    try:
        opened = zipfile.ZipFile(archive if isinstance(archive, (str, Path)) else io.BytesIO(archive))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidRequestError(
            "The upload is not a readable .zip archive: zip the class folders and try again."
        ) from None
    with opened:
        members = [member for member in opened.infolist() if not member.is_dir()]
        for member in opened.infolist():
            _check_member(member)
        if len(members) > limits.max_files:
            raise InvalidRequestError(
                f"The archive holds {len(members)} files, more than the {limits.max_files} this demo reads: "
                "evaluate a smaller sample."
            )
        declared = sum(member.file_size for member in members)
        if declared > limits.max_bytes:
            raise InvalidRequestError(
                f"The archive unpacks to {_megabytes(declared)}, more than the {_megabytes(limits.max_bytes)} this "
                "demo reads: evaluate a smaller sample."
            )
        yield opened, members, _common_top_folder([member.filename for member in members])


def _parts(member: zipfile.ZipInfo, top: str | None) -> tuple[str, ...]:
    """A member's path below the common top folder, as parts."""
    return PurePosixPath(member.filename).parts[1 if top else 0 :]


def _check_member(member: zipfile.ZipInfo) -> None:
    name = member.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in PurePosixPath(name).parts:
        raise InvalidRequestError(
            f"The archive entry {_quoted(member.filename)} points outside the archive: the upload was refused."
        )
    if stat.S_ISLNK(member.external_attr >> 16):
        raise InvalidRequestError(f"The archive entry {_quoted(member.filename)} is a link: the upload was refused.")
    if not member.is_dir() and name.lower().endswith(ARCHIVE_SUFFIXES):
        raise _nested(member.filename)


def _nested(name: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"The archive entry {_quoted(name)} is an archive itself: unpack it and zip the class folders once."
    )


def _read_member(opened: zipfile.ZipFile, member: zipfile.ZipInfo, room: int) -> bytes:
    """A member's bytes, read no further than its declared size and the room left under the total cap."""
    with opened.open(member) as stream:
        data = stream.read(min(member.file_size, max(room, 0)) + 1)
    if len(data) > member.file_size or len(data) > room:  # a header that lies about the size, or past the cap
        raise InvalidRequestError(
            f"The archive entry {_quoted(member.filename)} is larger than the archive declares, or past the cap: "
            "the upload was refused."
        )
    return data


def _common_top_folder(names: list[str]) -> str | None:
    """The one folder every file lies under, when the class folders were zipped inside a folder of their own."""
    tops = {PurePosixPath(name).parts[0] for name in names}
    if len(tops) == 1 and any(len(PurePosixPath(name).parts) >= 3 for name in names):
        return tops.pop()
    return None


def _labelled(images: list[LabelledImage], skipped_top: int, skipped_other: int) -> LabelledSet:
    images.sort(key=lambda image: (image.truth, image.path))
    classes = tuple(sorted({image.truth for image in images}))
    return LabelledSet(tuple(images), classes, skipped_top, skipped_other)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size < 10e6 else f"{size / 1e6:.0f} MB"


def _quoted(name: str) -> str:
    return repr(name[:80] + ("..." if len(name) > 80 else ""))
