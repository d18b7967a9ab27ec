"""Loaded models, kept in memory and shared between requests.

The registry downloads (through `beit_demo.hub`) and loads each model once, even when many requests ask
for it at the same moment, keeps at most ``max_models`` of them (least recently used goes first), and
never frees a model that a request is still using. It is keyed by `ModelSource`, so a catalog model and a
model from anywhere else share it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from beit_demo import hub
from beit_demo.catalog import ModelSource, entry_for
from beit_demo.errors import ModelLoadError, ModelUnavailableError
from beit_demo.hub import ProgressCallback
from beit_demo.memory import return_freed_memory
from beit_demo.models.loaded import LoadedModel
from beit_demo.models.loading import load_model


class ModelState(StrEnum):
    """Where a model is, as the status panel shows it."""

    NOT_DOWNLOADED = "not downloaded"
    ON_DISK = "on disk"
    LOADING = "downloading / loading"
    IN_MEMORY = "in memory"


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of one model's state."""

    source: ModelSource
    state: ModelState
    disk_bytes: int
    progress: float | None  # fraction done while loading
    progress_text: str
    users: int  # requests using it right now


@dataclass
class _Slot:
    """One model the registry knows about: loading, or loaded."""

    done: threading.Event = field(default_factory=threading.Event)
    loaded: LoadedModel | None = None
    error: BaseException | None = None
    users: int = 0
    progress: float = 0.0
    progress_text: str = "Waiting to start"

    def report(self, fraction: float, text: str) -> None:
        self.progress, self.progress_text = fraction, text


Loader = Callable[[ModelSource, str, ProgressCallback], LoadedModel]


class ModelRegistry:
    """A bounded, thread-safe LRU of loaded models with single-flight loading.

    Args:
        max_models: most models kept loaded while idle. Models in use are never freed, so the count can
            exceed this while requests hold more models than that; the extra ones go when released.
        precision: passed to the loader.
        loader: loads one model; `load_model` unless a test substitutes a counting wrapper.
        max_downloads: most models downloading at once (a small pool of their own: requests for models in memory
            or on disk never wait on them).
        max_hub_models: most models from outside the catalog (typed by visitors) loading or loaded at once, a bound
            of their own: visitors cannot fill the memory with models of their choice, nor push catalog models out.
    """

    def __init__(
        self,
        max_models: int = 3,
        precision: str = "fp32",
        loader: Loader = load_model,
        max_downloads: int = 2,
        max_hub_models: int = 2,
    ):
        if min(max_models, max_downloads, max_hub_models) < 1:
            raise ValueError("max_models, max_downloads and max_hub_models must be at least 1")
        self.max_models = max_models
        self.max_hub_models = max_hub_models
        self.precision = precision
        self._loader = loader
        # Downloads run at most this many at once, whatever the number of requests waiting on them; a model already
        # in the Hub cache loads without waiting for them.
        self._downloads = threading.BoundedSemaphore(max_downloads)
        self._lock = threading.Lock()
        self._slots: OrderedDict[ModelSource, _Slot] = OrderedDict()  # oldest use first

    @contextmanager
    def use(self, source: ModelSource, progress: ProgressCallback | None = None) -> Iterator[LoadedModel]:
        """Borrow the loaded model ``source`` for the duration of a ``with`` block, loading it if needed.

        While this request waits for a download that another request started, ``progress`` still gets
        that download's progress.

        Raises:
            ModelUnavailableError / ModelLoadError: the model cannot be fetched or loaded (every waiter gets
                the same error; nothing broken is kept, so the next request tries again).
        """
        slot, leader = self._claim(source)
        try:
            if leader:
                self._load_into(slot, source, progress)
            else:
                self._wait_for(slot, progress)
            if slot.error is not None:
                raise slot.error
            yield slot.loaded
        finally:
            self._release(slot)

    def _claim(self, source: ModelSource) -> tuple[_Slot, bool]:
        """The slot of ``source``, made if new; True when this request is to load it.

        Raises:
            ModelUnavailableError: ``source`` is from outside the catalog and max_hub_models of those are in use.
        """
        evicted = 0
        try:
            with self._lock:
                slot = self._slots.get(source)
                leader = slot is None
                if leader and entry_for(source) is None:
                    evicted = self._make_room_for_hub_model(source)
                if leader:
                    slot = self._slots[source] = _Slot()
                self._slots.move_to_end(source)
                slot.users += 1
                return slot, leader
        finally:
            if evicted:
                return_freed_memory()

    def _make_room_for_hub_model(self, source: ModelSource) -> int:
        """Free idle models from outside the catalog until another fits under max_hub_models. Caller holds the lock.

        Raises:
            ModelUnavailableError: all of them are in use or loading.
        """
        hub_sources = [known for known in self._slots if entry_for(known) is None]  # loading ones count here
        evicted = self._drop_idle(hub_sources, keep=self.max_hub_models - 1)
        if len(hub_sources) - evicted >= self.max_hub_models:
            raise ModelUnavailableError(
                f"Visitors are using {len(hub_sources)} models from the Hub right now, the most this demo holds at "
                f"once; try {source.repo_id} again in a minute, or pick a model from the catalog."
            )
        return evicted

    def _load_into(self, slot: _Slot, source: ModelSource, progress: ProgressCallback | None) -> None:
        def report(fraction: float, text: str) -> None:
            slot.report(fraction, text)
            if progress is not None:
                progress(fraction, text)

        try:
            started = time.perf_counter()
            fetched = None
            if hub.cached_directory(source) is None:
                with self._downloads:
                    fetched = hub.fetch(source, report)  # the loader then finds the files in the cache
            loaded = self._loader(source, self.precision, report)
            if fetched is not None and fetched.downloaded:  # say so, with the download in the time
                loaded.downloaded, loaded.load_seconds = True, time.perf_counter() - started
            slot.loaded = loaded
        except BaseException as err:
            slot.error = err
            with self._lock:  # forget the failure so the next request retries from scratch
                if self._slots.get(source) is slot:
                    del self._slots[source]
        finally:
            slot.done.set()

    @staticmethod
    def _wait_for(slot: _Slot, progress: ProgressCallback | None) -> None:
        while not slot.done.wait(timeout=0.25):
            if progress is not None:
                progress(slot.progress, slot.progress_text)

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.users -= 1
            evicted = self._evict_idle()
        if evicted:
            return_freed_memory()  # now, not at some later collection

    def _evict_idle(self) -> int:
        """Drop least recently used idle models until at most max_models are loaded. Caller holds the lock.

        Models still loading do not count: a burst of requests for models that wait on the Hub must not push the
        models in memory out (they are counted, and the bound kept, once they have arrived). Catalog models and models
        from outside it are bounded apart (max_models, max_hub_models).
        """
        loaded = [source for source, slot in self._slots.items() if slot.loaded is not None]
        catalog = [source for source in loaded if entry_for(source) is not None]
        others = [source for source in loaded if entry_for(source) is None]
        return self._drop_idle(catalog, self.max_models) + self._drop_idle(others, self.max_hub_models)

    def _drop_idle(self, sources: list[ModelSource], keep: int) -> int:
        """Forget idle loaded models among ``sources`` (least recently used first) until at most ``keep`` of them
        are left, or no idle one is; returns how many went. Caller holds the lock."""
        dropped = 0
        for source in sources:
            if len(sources) - dropped <= keep:
                break
            slot = self._slots[source]
            if slot.users == 0 and slot.loaded is not None:
                del self._slots[source]
                dropped += 1
        return dropped

    def loaded_sources(self) -> list[ModelSource]:
        """The models in memory, least recently used first."""
        with self._lock:
            return [source for source, slot in self._slots.items() if slot.loaded is not None]

    def status(self, sources: Iterable[ModelSource]) -> list[ModelStatus]:
        """The state of each of ``sources``, in their order."""
        with self._lock:
            slots = dict(self._slots)
        statuses = []
        for source in sources:
            slot = slots.get(source)
            disk_bytes = hub.cached_size_bytes(source)
            if slot is not None and slot.loaded is not None:
                state, progress = ModelState.IN_MEMORY, None
            elif slot is not None:
                state, progress = ModelState.LOADING, slot.progress
            else:
                state, progress = (ModelState.ON_DISK if disk_bytes else ModelState.NOT_DOWNLOADED), None
            text = slot.progress_text if state is ModelState.LOADING else ""
            users = slot.users if slot is not None else 0
            statuses.append(ModelStatus(source, state, disk_bytes, progress, text, users))
        return statuses

    def preload(self, sources: Iterable[ModelSource]) -> threading.Thread:
        """Load ``sources`` one after another in a background thread; failures are left for the request that asks."""
        sources = tuple(sources)

        def run() -> None:
            for source in sources:
                try:
                    with self.use(source):
                        pass
                except (ModelUnavailableError, ModelLoadError):
                    continue  # the UI reports it when someone picks the model

        thread = threading.Thread(target=run, name="beit-demo-preload", daemon=True)
        thread.start()
        return thread
