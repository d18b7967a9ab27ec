"""Fetching checkpoints into the standard Hugging Face cache.

Only the files a model needs are downloaded (config, preprocessor config, one weights file), with
huggingface_hub's own cache, so a model fetched here is shared with every other tool on the machine.
The cache is consulted first: a model that is already on disk loads without touching the network,
which keeps the demo working when the Hub is down.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, file_download, hf_hub_download, try_to_load_from_cache
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from tqdm.auto import tqdm

from beit_demo.catalog import CheckpointFormat, ModelSource, describe, download_command, entry_for
from beit_demo.errors import ModelUnavailableError

# A progress callback receives (fraction done in [0, 1], a short description).
ProgressCallback = Callable[[float, str], None]

# Weights in order of preference: safetensors cannot run code when loaded; some catalog repos ship only
# the pickle-based .bin, which transformers loads with `weights_only=True` on torch >= 2.6.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PREPROCESSOR_CONFIG = "preprocessor_config.json"
_REQUIRED_FILES = {
    CheckpointFormat.TRANSFORMERS: ("config.json",),
    CheckpointFormat.TIMM: ("config.json",),
}
# Fetched when the repo has them; without one, the loader uses the family's default preprocessing (and says so).
_OPTIONAL_FILES = {
    CheckpointFormat.TRANSFORMERS: (PREPROCESSOR_CONFIG,),
    CheckpointFormat.TIMM: (),
}
_TIMM_WEIGHT_FILES = ("model.safetensors",)


@dataclass(frozen=True)
class FetchedModel:
    """Where a model's files are on disk."""

    directory: Path  # the cache snapshot folder holding the files
    downloaded: bool  # False when everything came from the cache
    bytes_downloaded: int


def _download_hint(source: ModelSource) -> str:
    return f"run `{download_command(source)}` on a machine that can reach the Hub"


def _cached_path(source: ModelSource, filename: str) -> Path | None | object:
    """The cached file, None if unknown to the cache, or a sentinel if the cache knows it does not exist."""
    found = try_to_load_from_cache(source.repo_id, filename, revision=source.revision)
    return Path(found) if isinstance(found, str) else found


def _weight_files(source: ModelSource) -> tuple[str, ...]:
    return _TIMM_WEIGHT_FILES if source.checkpoint_format is CheckpointFormat.TIMM else WEIGHT_FILES


def cached_directory(source: ModelSource) -> Path | None:
    """The snapshot folder if every file the model needs is in the cache, else None. Never touches the network."""
    directory = None
    for filename in _REQUIRED_FILES[source.checkpoint_format]:
        path = _cached_path(source, filename)
        if not isinstance(path, Path):
            return None
        directory = path.parent
    for filename in _OPTIONAL_FILES[source.checkpoint_format]:
        if _cached_path(source, filename) is None:  # neither cached nor known to be missing
            return None
    for filename in _weight_files(source):
        if isinstance(path := _cached_path(source, filename), Path):
            return directory if path.parent == directory else None
    return None


def cached_size_bytes(source: ModelSource) -> int:
    """Bytes the model's needed files take in the cache (0 if not fully cached)."""
    directory = cached_directory(source)
    if directory is None:
        return 0
    names = (*_REQUIRED_FILES[source.checkpoint_format], *_OPTIONAL_FILES[source.checkpoint_format])
    names += _weight_files(source)
    return sum((directory / name).stat().st_size for name in names if (directory / name).exists())


class _ProgressBar(tqdm):
    """A silent tqdm that forwards byte counts to a callback (huggingface_hub accepts any tqdm class)."""

    report: Callable[[int, int | None], None] = staticmethod(lambda done, total: None)

    def __init__(self, *args, **kwargs):
        kwargs["disable"] = False
        kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 - closed in close()
        super().__init__(*args, **kwargs)

    def update(self, n=1):
        result = super().update(n)
        type(self).report(self.n, self.total)
        return result

    def close(self):
        super().close()
        self.fp.close()


# A file must arrive at this rate once its first bytes have (after a grace period for small files); a Hub that keeps
# trickling a byte now and then never trips the read timeout, and would otherwise hold a visitor for hours.
MIN_DOWNLOAD_RATE = 1_000_000  # bytes per second
DOWNLOAD_GRACE_S = 5.0
# At start-up, `.incomplete` files older than this are orphans of a process that was killed mid-download.
ORPHAN_AGE_S = 600.0


class _TooSlowError(Exception):
    """A file arrives more slowly than MIN_DOWNLOAD_RATE: raised from the progress bar, inside the download."""

    def __init__(self, filename: str, done: int, seconds: float):
        super().__init__(f"{filename}: {done} bytes in {seconds:.0f} s")
        self.rate = done / max(seconds, 1e-9)


class _Downloader:
    """Downloads one model's files, reporting the progress of each as its bytes arrive."""

    def __init__(self, source: ModelSource, progress: ProgressCallback | None):
        self.source = source
        self.progress = progress
        self.bytes_downloaded = 0

    def _bar_class(self, filename: str) -> type[tqdm]:
        first_bytes: list[float] = []  # when the first bytes of this file arrived

        def report(done: int, total: int | None) -> None:
            now = time.monotonic()
            if not first_bytes:
                first_bytes.append(now)
            elif total and now - first_bytes[0] > DOWNLOAD_GRACE_S + total / MIN_DOWNLOAD_RATE:
                raise _TooSlowError(filename, done, now - first_bytes[0])
            if self.progress is not None and total:
                self.progress(min(done / total, 1.0), f"Downloading {describe(self.source)}: {filename}")

        return type("_FileProgressBar", (_ProgressBar,), {"report": staticmethod(report)})

    def download(self, filename: str) -> Path:
        path = hf_hub_download(
            self.source.repo_id,
            filename,
            revision=self.source.revision,
            token=False,  # never send a token for a model a visitor picked
            tqdm_class=self._bar_class(filename),
        )
        self.bytes_downloaded += Path(path).stat().st_size
        return Path(path)

    def download_optional(self, filename: str) -> None:
        with contextlib.suppress(RemoteEntryNotFoundError):  # the cache now remembers that the repo lacks it
            self.download(filename)

    def download_weights(self) -> Path:
        candidates = _weight_files(self.source)
        for filename in candidates:
            try:
                return self.download(filename)
            except RemoteEntryNotFoundError:  # the Hub says the repo lacks it (not: the Hub cannot be reached)
                continue
        raise ModelUnavailableError(
            f"{describe(self.source)} has none of the weight files this demo can load ({', '.join(candidates)})."
        )


def fetch(source: ModelSource, progress: ProgressCallback | None = None) -> FetchedModel:
    """Make sure the files ``source`` needs are in the Hub cache and return where they are.

    Args:
        source: the model's repo, revision and file layout.
        progress: called with (fraction, description) while bytes arrive.

    Raises:
        ModelUnavailableError: the model is not cached and cannot be downloaded; the message names the model
            and says what to do.
    """
    directory = cached_directory(source)
    if directory is not None:
        return FetchedModel(directory, downloaded=False, bytes_downloaded=0)
    _bound_waits()
    downloader = _Downloader(source, progress)
    try:
        for filename in _REQUIRED_FILES[source.checkpoint_format]:
            directory = downloader.download(filename).parent
        for filename in _OPTIONAL_FILES[source.checkpoint_format]:
            downloader.download_optional(filename)
        weights = downloader.download_weights()
    except ModelUnavailableError:
        raise
    except _TooSlowError as err:  # cut short by us: huggingface_hub left its partial file to resume
        remove_partial_downloads(source)
        raise ModelUnavailableError(_explain(source, err)) from err
    except Exception as err:  # every way the Hub or the disk can fail becomes one actionable sentence
        raise ModelUnavailableError(_explain(source, err)) from err
    if weights.parent != directory:
        raise ModelUnavailableError(
            f"{describe(source)} changed on the Hub while it was downloading; please try again in a moment."
        )
    return FetchedModel(directory, downloaded=True, bytes_downloaded=downloader.bytes_downloaded)


@dataclass(frozen=True)
class RepoInfo:
    """What the Hub says about a repo at one revision, asked without a token."""

    commit: str  # the 40-hex commit the revision points at now
    gated: bool  # its files need an access token
    file_sizes: dict[str, int]  # path -> bytes, from the repo listing
    license: str  # from its model card's front matter; "" when it states none


def repo_info(repo_id: str, revision: str | None) -> RepoInfo:
    """Ask the Hub about ``repo_id`` at ``revision`` (None: the default branch), never sending a token.

    Raises:
        ModelUnavailableError: the repo or revision is missing, private, or the Hub cannot be reached.
    """
    source = ModelSource(repo_id, revision or "main")
    if hub_constants.is_offline_mode():
        raise ModelUnavailableError(
            f"The Hub is switched off here (HF_HUB_OFFLINE=1), so {repo_id} cannot be looked up; pick a catalog model."
        )
    try:
        info = HfApi().model_info(
            repo_id, revision=revision, files_metadata=True, token=False, timeout=hub_constants.HF_HUB_ETAG_TIMEOUT
        )
    except Exception as err:
        raise ModelUnavailableError(_explain(source, err)) from err
    if not isinstance(info.sha, str) or re.fullmatch(r"[0-9a-f]{40}", info.sha) is None:
        raise ModelUnavailableError(f"The Hub gave no commit for {repo_id}; please try again in a minute.")
    sizes = {sibling.rfilename: int(sibling.size or 0) for sibling in info.siblings or ()}
    license_ = getattr(info.card_data, "license", None) if info.card_data is not None else None
    if isinstance(license_, list):
        license_ = ", ".join(str(item) for item in license_)
    return RepoInfo(info.sha, bool(info.gated), sizes, str(license_ or "")[:80])


def config_text(source: ModelSource) -> str:
    """``config.json`` of ``source``, fetched alone (into the Hub cache) and read as text.

    Raises:
        ModelUnavailableError: it cannot be fetched, or is not UTF-8 text.
    """
    _bound_waits()
    try:
        path = _Downloader(source, None).download("config.json")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ModelUnavailableError(f"{describe(source)}'s config.json is not text; pick another model.") from err
    except Exception as err:
        raise ModelUnavailableError(_explain(source, err)) from err


def remove_partial_downloads(source: ModelSource, older_than_s: float = 0.0) -> int:
    """Delete the ``.incomplete`` files that huggingface_hub left in ``source``'s cache folder; returns how many.

    Args:
        older_than_s: only files not written to for this long (at start-up: orphans of a killed process, not
            another process's download in progress).
    """
    blobs = Path(hub_constants.HF_HUB_CACHE) / file_download.repo_folder_name(
        repo_id=source.repo_id, repo_type="model"
    )
    removed = 0
    for partial in (blobs / "blobs").glob("*.incomplete"):
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if time.time() - partial.stat().st_mtime >= older_than_s:
                partial.unlink()
                removed += 1
    return removed


def _bound_waits() -> None:
    """Settings of huggingface_hub, read at call time, that let a slow or silent Hub hold a visitor for minutes."""
    # When a HEAD fails and the file is not cached, huggingface_hub 2.4 retries it 5 times with a hard-coded 60 s
    # timeout each (`_ETAG_RETRY_TIMEOUT`), whatever HF_HUB_ETAG_TIMEOUT says: a Hub that accepts connections but
    # never answers kept a visitor waiting 393 s (measured). Read at call time, so tests can lower the timeout.
    file_download._ETAG_RETRY_TIMEOUT = hub_constants.HF_HUB_ETAG_TIMEOUT
    # A body is read in 10 MB chunks, and the progress bar (where MIN_DOWNLOAD_RATE is enforced) hears of nothing
    # until one is complete: a Hub trickling a byte now and then would never reach it. Each read as it arrives, then.
    hub_constants.DOWNLOAD_CHUNK_SIZE = None


# Errors a full disk raises: no space, over quota, or over the process's file-size limit (RLIMIT_FSIZE).
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _explain(source: ModelSource, err: Exception) -> str:
    """One sentence for the user: which model, what went wrong, what to do."""
    name = describe(source)
    if isinstance(err, _TooSlowError):
        return (
            f"The Hub sent {name} too slowly ({err.rate / 1000:.1f} KB/s; this demo waits for "
            f"{MIN_DOWNLOAD_RATE / 1000:.0f} KB/s); please try again in a minute."
        )
    if isinstance(err, GatedRepoError):
        return f"{name} is gated on the Hub and this demo does not send access tokens; pick another model."
    if isinstance(err, RepositoryNotFoundError):
        return f"{name} was not found on the Hub (it may have been renamed or made private); pick another model."
    if isinstance(err, RevisionNotFoundError):
        why = "the demo's catalog needs updating" if entry_for(source) else "check the name after the @"
        return f"{name} has no revision {source.revision!r} on the Hub ({why}); pick another model."
    if isinstance(err, LocalEntryNotFoundError):
        if hub_constants.is_offline_mode():
            return (
                f"{name} is not downloaded yet and the Hub is switched off here (HF_HUB_OFFLINE=1): "
                f"{_download_hint(source)}."
            )
        # Raised when the Hub cannot be reached, or keeps failing, and the file is not cached.
        reason = _what_the_hub_did(err.__cause__)
        return f"{name} is not downloaded yet and the Hub {reason}; please try again in a few minutes."
    if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
        return (
            f"The server ran out of disk space while downloading {name}; pick a model that is already downloaded, "
            "or try again later."
        )
    if isinstance(err, HfHubHTTPError):
        return f"The Hub {_what_the_hub_did(err)} while sending {name}; please try again in a minute."
    if isinstance(err, httpx2.TimeoutException):
        return f"The Hub stopped sending {name}; please try again in a minute."
    if isinstance(err, httpx2.TransportError):
        return f"The connection to the Hub broke while downloading {name}; please try again in a minute."
    return f"Downloading {name} failed ({_short(err)}); please try again in a minute, or {_download_hint(source)}."


def _what_the_hub_did(err: BaseException | None) -> str:
    """What went wrong, as the end of "the Hub ...": the status it answered, or that it did not answer."""
    response = getattr(err, "response", None)
    if isinstance(err, HfHubHTTPError) and response is not None:
        return f"answered with an error (HTTP {response.status_code})"
    if isinstance(err, httpx2.TimeoutException):
        return "did not answer in time"
    return "cannot be reached"


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 120 else text[:117] + "..."
