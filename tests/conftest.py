"""Shared fixtures: a Hub double for the whole session, and private caches for every test.

huggingface_hub reads ``HF_ENDPOINT`` once, at import, so the double starts here, before anything
imports huggingface_hub, and its address goes into the environment first.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from beit_demo.testing.hub_double import HubDouble  # stdlib only: safe before huggingface_hub is imported

HUB = HubDouble().start()
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="beit-demo-tests-"))
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)
os.environ["HF_ENDPOINT"] = HUB.url
os.environ["HF_HOME"] = str(_SESSION_HOME / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_HOME / "hf-home" / "hub")
os.environ["GRADIO_TEMP_DIR"] = str(_SESSION_HOME / "gradio")
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)

import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402

from beit_demo.catalog import CATALOG, CheckpointFormat, ModelSource, get_entry  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "tests" / "data"  # every file a test reads is in the repo (credits: README)
PHOTOS = DATA / "photos"


def _serve_catalog() -> None:
    from beit_demo.testing.checkpoints import catalog_repos
    from beit_demo.testing.timm_checkpoints import timm_beit_files

    for repo_id, files in catalog_repos("tiny").items():
        HUB.add_repo(repo_id, files)
    timm_spec = next(spec for spec in CATALOG if spec.source.checkpoint_format is CheckpointFormat.TIMM)
    HUB.add_repo(timm_spec.repo_id, timm_beit_files(size="tiny"))


_serve_catalog()


def source(key: str) -> ModelSource:
    """The model source of the catalog entry ``key``."""
    return get_entry(key).source


def loaded_keys(registry) -> list[str]:  # a ModelRegistry
    """Catalog keys of the models ``registry`` holds in memory, least recently used first."""
    keys = {entry.source: entry.key for entry in CATALOG}
    return [keys[loaded] for loaded in registry.loaded_sources()]


def catalog_states(registry) -> dict:  # a ModelRegistry
    """Catalog key -> the registry's `ModelStatus` of that model."""
    return {
        entry.key: status for entry, status in zip(CATALOG, registry.status(e.source for e in CATALOG), strict=True)
    }


@pytest.fixture(autouse=True)
def private_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty Hub cache and Gradio temp dir, and a Hub double with no faults."""
    hf_home = tmp_path / "hf-home"
    monkeypatch.setenv("HF_HOME", str(hf_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    HUB.clear_faults()
    HUB.clear_log()
    return hf_home


@pytest.fixture
def hub_double() -> HubDouble:
    """The session's Hub double, serving tiny checkpoints under every catalog repo id."""
    return HUB


@dataclass(frozen=True)
class RunningApp:
    """An app process started by `running_app`."""

    url: str  # ends with "/"
    pid: int
    log_path: Path


@contextmanager
def running_app(tmp_path: Path, **env: str) -> Iterator[RunningApp]:
    """Run `python app.py` in a fresh process on 127.0.0.1 and yield it; stop it afterwards.

    The app gets its own empty Hub cache under ``tmp_path`` and the session's Hub double as its Hub,
    unless ``env`` says otherwise.
    """
    from beit_demo.testing.app_process import APP_COMMAND, serve

    environment = {
        **os.environ,
        "HF_ENDPOINT": HUB.url,
        "HF_HOME": str(tmp_path / "app-hf-home"),
        "GRADIO_TEMP_DIR": str(tmp_path / "app-gradio"),
        **env,
    }
    environment.pop("HF_HUB_CACHE", None)
    log_path = tmp_path / f"app-{len(list(tmp_path.glob('app-*.log')))}.log"
    with serve(APP_COMMAND, environment, log_path) as server:
        yield RunningApp(server.url, server.pid, log_path)


def call_api(app_url: str, api_name: str, data: list, timeout: float = 60) -> str:
    """Call an endpoint the way a hand-written client would (no gradio_client); returns the raw event stream."""
    import http.client
    import json
    from urllib.parse import urlsplit

    address = urlsplit(app_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=timeout)
    try:
        body = json.dumps({"data": data})
        connection.request("POST", f"/gradio_api/call/{api_name}", body, {"Content-Type": "application/json"})
        event_id = json.loads(connection.getresponse().read())["event_id"]
        connection.request("GET", f"/gradio_api/call/{api_name}/{event_id}")
        return connection.getresponse().read().decode()
    finally:
        connection.close()
