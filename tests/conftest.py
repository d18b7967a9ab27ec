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

from beit_demo.catalog import CATALOG, CheckpointFormat  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_IMAGES = REPO_ROOT.parent / "shared" / "images"
PHOTOS = SHARED_IMAGES / "photos"


def _serve_catalog() -> None:
    from beit_demo.testing.checkpoints import catalog_repos
    from beit_demo.testing.timm_checkpoints import timm_beit_files

    for repo_id, files in catalog_repos("tiny").items():
        HUB.add_repo(repo_id, files)
    timm_spec = next(spec for spec in CATALOG if spec.checkpoint_format is CheckpointFormat.TIMM)
    HUB.add_repo(timm_spec.repo_id, timm_beit_files(size="tiny"))


_serve_catalog()


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    environment = {
        **os.environ,
        "HF_ENDPOINT": HUB.url,
        "PORT": str(port),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "HF_HOME": str(tmp_path / "app-hf-home"),
        "GRADIO_TEMP_DIR": str(tmp_path / "app-gradio"),
        **env,
    }
    environment.pop("HF_HUB_CACHE", None)
    log_path = tmp_path / f"app-{port}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=environment, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not answer in 60 s:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield RunningApp(url, process.pid, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
