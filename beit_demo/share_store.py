"""The share store: results a visitor shared as a link, kept apart from Gradio's upload cache and bounded.

A share is a folder ``<id>/`` holding ``share.json`` (what the page shows, as data) and the pictures it names,
re-encoded here at most `MAX_SIDE` px a side (a photo's EXIF, GPS included, is not kept). A share is written
under ``.incoming/`` and renamed into place, so a reader sees a whole share or none. The store keeps at most
``max_bytes`` and drops a share ``max_age_s`` after it was last opened; over the size cap the least recently
opened go first. A link's id is checked against `SHARE_ID` before any file is touched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from beit_demo.errors import InvalidRequestError

MAX_SIDE = 1024  # a stored picture's longest side
MAX_TEXT_BYTES = 4_000_000  # a stored text file (an evaluation's report) at most
SHARE_ID = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,40}\.(jpg|png|json|csv)")  # a file inside a share, named by the app
_RECORD = "share.json"
_INCOMING = ".incoming"


class InvalidShareId(InvalidRequestError):
    """A link's id that no share can have (refused before any file access)."""


@dataclass(frozen=True)
class StoredShare:
    """A share read back: its record and the files it names, each checked to lie inside the share's folder."""

    share_id: str
    record: dict
    files: dict[str, Path]  # name in the record -> file


def check_share_id(share_id: object) -> str:
    """``share_id`` when it has the shape of one, else `InvalidShareId` (nothing touched)."""
    if not isinstance(share_id, str) or not SHARE_ID.fullmatch(share_id):
        raise InvalidShareId("This share link is not valid; the model and settings are restored.")
    return share_id


class ShareStore:
    """Shares on disk under one folder, within a size cap and an age cap (since last opened)."""

    def __init__(self, folder: Path, max_bytes: int, max_age_s: float, clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._index: dict[str, tuple[int, float]] | None = None  # id -> (bytes, last opened), read on first use

    # -- writing ------------------------------------------------------------------------------------------------

    def save(self, record: dict, pictures: dict[str, Image.Image], texts: dict[str, str] | None = None) -> str:
        """Store a share and return its id. ``pictures`` and ``texts`` are named by the app (``photo.jpg``...);
        ``record`` must be JSON. The store is pruned to its caps afterwards."""
        names = [*pictures, *(texts or {})]
        if bad := [name for name in names if not _NAME.fullmatch(name) or name == _RECORD]:
            raise ValueError(f"not a share file name: {bad}")
        with self._lock:
            self._entries()  # read the store (and clear what a stop left in .incoming) before writing into it
        share_id = secrets.token_urlsafe(16)
        incoming = self.folder / _INCOMING / share_id
        incoming.mkdir(parents=True)
        try:
            for name, picture in pictures.items():
                _write_picture(picture, incoming / name)
            for name, text in (texts or {}).items():
                data = text.encode("utf-8")
                if len(data) > MAX_TEXT_BYTES:
                    raise InvalidRequestError("This result is too large to share as a link.")
                (incoming / name).write_bytes(data)
            stored = {**record, "files": names, "created": self._clock()}
            (incoming / _RECORD).write_text(json.dumps(stored), encoding="utf-8")
            size = sum(path.stat().st_size for path in incoming.iterdir())
            os.replace(incoming, self.folder / share_id)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        with self._lock:
            self._entries()[share_id] = (size, self._clock())
            self._prune()
        return share_id

    # -- reading ------------------------------------------------------------------------------------------------

    def open(self, share_id: str) -> StoredShare | None:
        """The share, or None when it is unknown or expired. Opening it makes it the most recently opened.

        Raises:
            InvalidShareId: ``share_id`` has not the shape of one (checked before any file access).
        """
        check_share_id(share_id)
        with self._lock:
            entries = self._entries()
            if share_id not in entries:
                return None
            size, opened = entries[share_id]
            if self._clock() - opened > self.max_age_s:
                self._remove(share_id)
                return None
            entries[share_id] = (size, self._clock())
        folder = self.folder / share_id
        try:
            os.utime(folder / _RECORD)  # the last opening, for the index read after a restart
            record = json.loads((folder / _RECORD).read_text(encoding="utf-8"))
            files = {name: folder / name for name in record.pop("files") if _NAME.fullmatch(name)}
            if not all(path.is_file() and not path.is_symlink() for path in files.values()):
                return None
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        return StoredShare(share_id, record, files)

    def has(self, share_id: str) -> bool:
        """Whether the store holds ``share_id`` (and it has not expired), without opening it."""
        with self._lock:
            entry = self._entries().get(share_id)
            return entry is not None and self._clock() - entry[1] <= self.max_age_s

    def usage(self) -> tuple[int, int]:
        """How many shares the store holds, and their bytes."""
        with self._lock:
            entries = self._entries()
            return len(entries), sum(size for size, _ in entries.values())

    # -- the caps -----------------------------------------------------------------------------------------------

    def prune(self) -> None:
        """Drop expired shares, then the least recently opened ones while over the size cap."""
        with self._lock:
            self._prune()

    def _prune(self) -> None:
        entries = self._entries()
        now = self._clock()
        for share_id in [key for key, (_, opened) in entries.items() if now - opened > self.max_age_s]:
            self._remove(share_id)
        total = sum(size for size, _ in entries.values())
        for share_id in sorted(entries, key=lambda key: entries[key][1]):
            if total <= self.max_bytes:
                break
            total -= entries[share_id][0]
            self._remove(share_id)

    def _remove(self, share_id: str) -> None:
        self._entries().pop(share_id, None)
        shutil.rmtree(self.folder / share_id, ignore_errors=True)

    def _entries(self) -> dict[str, tuple[int, float]]:
        """The index, read from disk once: every share folder, with its size and last opening (the record's time).

        A share's last opening is kept in memory; after a restart it counts from the record's modification time,
        which opening a share renews."""
        if self._index is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.folder / _INCOMING, ignore_errors=True)  # halves of shares cut by a stop
            self._index = {}
            for folder in self.folder.iterdir():
                record = folder / _RECORD
                if SHARE_ID.fullmatch(folder.name) and folder.is_dir() and record.is_file():
                    size = sum(path.stat().st_size for path in folder.iterdir())
                    self._index[folder.name] = (size, record.stat().st_mtime)
        return self._index


def _write_picture(picture: Image.Image, path: Path) -> None:
    """Re-encode a picture (RGB, at most MAX_SIDE px a side): JPEG for photos, PNG for drawings."""
    copy = picture.convert("RGB")
    copy.thumbnail((MAX_SIDE, MAX_SIDE))
    if path.suffix == ".png":
        copy.save(path, format="PNG", optimize=False)
    else:
        copy.save(path, format="JPEG", quality=88)


class ShareRate:
    """At most ``per_minute`` shares per visitor in any minute; visitors idle for a minute are forgotten."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self.per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._times: dict[str, deque[float]] = {}

    def take(self, visitor: str) -> None:
        """Count one share for ``visitor``, or raise `InvalidRequestError` when its minute is full."""
        now = self._clock()
        with self._lock:
            for key in [key for key, times in self._times.items() if now - times[-1] >= 60]:
                del self._times[key]
            times = self._times.setdefault(visitor, deque())
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= self.per_minute:
                raise InvalidRequestError(
                    f"You shared {self.per_minute} results in the last minute; wait a moment and share again."
                )
            times.append(now)
