"""The catalog's models: where each one is, loading ahead of use, cleaning up after a killed download."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from beit_demo import hub
from beit_demo.catalog import CATALOG, CatalogEntry, get_entry
from beit_demo.hub import ProgressCallback
from beit_demo.models.registry import ModelStatus
from beit_demo.service.core import ServiceCore, WeightsOrigin


@dataclass(frozen=True)
class CatalogStatus:
    """Where one catalog model is (disk, memory, downloading)."""

    entry: CatalogEntry
    status: ModelStatus


def prepare(core: ServiceCore, model_key: str, progress: ProgressCallback | None = None) -> WeightsOrigin:
    """Download and load a catalog model ahead of use; says where its weights came from.

    Raises:
        DemoError: a bad key, or a model that cannot be fetched or loaded.
    """
    entry = core.entry(model_key)
    with core.borrow(entry, progress) as (_, origin):
        return origin


def model_status(core: ServiceCore) -> list[CatalogStatus]:
    """Where every catalog model is, in catalog order."""
    statuses = core.registry.status(entry.source for entry in CATALOG)
    return [CatalogStatus(entry, status) for entry, status in zip(CATALOG, statuses, strict=True)]


def remove_orphaned_downloads() -> int:
    """Delete the partial files that a process killed mid-download left in the catalog models' cache folders."""
    return sum(hub.remove_partial_downloads(entry.source, hub.ORPHAN_AGE_S) for entry in CATALOG)


def preload(core: ServiceCore, model_keys: Sequence[str]) -> threading.Thread:
    """Load catalog models in the background, one after another (failures wait for a request to report them)."""
    return core.registry.preload(get_entry(key).source for key in model_keys)
