"""Hub faults injected in the Hub double: one sentence for the user, nothing partial left, and a retry that works.

Every fault goes through the real huggingface_hub client and the real `ModelRegistry`. Slow faults are made fast
in-process by the `fast_retries` fixture: huggingface_hub's backoff sleeps are recorded instead of slept, and its
timeouts are lowered to 1 s. The real worst-case waits with the shipped defaults (58 s on a HEAD, 65 s on a GET)
were measured by hand; docs/security.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import constants, file_download
from huggingface_hub.utils import _http

from beit_demo import hub
from beit_demo.catalog import CatalogEntry, ModelSource, get_entry
from beit_demo.models.registry import ModelRegistry, ModelState
from beit_demo.testing.hub_double import Fault
from tests.conftest import catalog_states, loaded_keys

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC = get_entry("facemask-deit")  # tiny, and .bin only: the client first asks for model.safetensors and gets a 404
FAST_TIMEOUT_S = 1.0
# huggingface_hub's backoff before the 6 retries of a failed HEAD: 1 + 2 + 4 + 8 + 8 s.
HEAD_BACKOFF_S = 23


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make huggingface_hub's retries instant (the sleeps it asks for are recorded) and its timeouts 1 s."""
    asked: list[float] = []
    no_sleep = SimpleNamespace(sleep=asked.append)
    monkeypatch.setattr(_http, "time", no_sleep)  # backoff between retried requests
    monkeypatch.setattr(file_download, "time", no_sleep)  # the pause before resuming a broken download
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", FAST_TIMEOUT_S)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", FAST_TIMEOUT_S)
    # `hub.fetch` copies HF_HUB_ETAG_TIMEOUT here (see hub._bound_metadata_retries); restore it afterwards.
    monkeypatch.setattr(file_download, "_ETAG_RETRY_TIMEOUT", file_download._ETAG_RETRY_TIMEOUT)
    return asked


def _content_ids(content: bytes) -> set[str]:
    """The names the Hub cache may give a blob with this content: its sha256 (LFS) or its git blob id."""
    git_blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
    return {hashlib.sha256(content).hexdigest(), git_blob}


def cache_problems(cache: Path) -> list[str]:
    """Everything partial in a Hub cache folder; an empty list when it holds only whole files.

    Partial means: a temporary download left behind, a snapshot link to a missing blob, a blob no snapshot names,
    or a blob whose content does not match its name (its hash): a cut download cannot pass that last check.
    """
    problems = [f"temporary download left behind: {path}" for path in cache.rglob("*.incomplete")]
    for repo in cache.glob("models--*"):
        linked = set()
        for link in (repo / "snapshots").rglob("*"):
            if link.is_symlink() and not link.exists():
                problems.append(f"snapshot link to a missing blob: {link}")
            elif link.is_symlink():
                linked.add(link.resolve())
        for blob in (repo / "blobs").glob("*"):
            if blob.resolve() not in linked:
                problems.append(f"blob that no snapshot names: {blob}")
            elif blob.name not in _content_ids(blob.read_bytes()):
                problems.append(f"blob whose content does not match its name: {blob}")
    return problems


def assert_one_sentence(message: str, spec: CatalogEntry, *fragments: str) -> None:
    """The message names the model, says what happened and what to do, in one sentence."""
    assert spec.title in message and spec.repo_id in message, message
    assert "\n" not in message and message.endswith(".") and ". " not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def model_state(registry: ModelRegistry, spec: CatalogEntry) -> ModelState:
    return catalog_states(registry)[spec.key].state


@dataclass(frozen=True)
class FaultCase:
    """A fault and what the user must read when it happens."""

    name: str
    faults: tuple[Fault, ...]
    says: str  # what went wrong, as the message puts it
    action: str  # what to do, as the message puts it
    slow: bool = False  # waits for timeouts (1 s each here)


FAULT_CASES = (
    FaultCase(
        "repo_not_found",
        (Fault("status", status=401, error_code="RepoNotFound"),),
        "was not found on the Hub",
        "pick another model",
    ),
    FaultCase(
        "gated_401",
        (Fault("status", path_contains="/resolve/", status=401, error_code="GatedRepo"),),
        "is gated on the Hub",
        "pick another model",
    ),
    FaultCase(
        "revision_not_found",
        (Fault("status", status=404, error_code="RevisionNotFound"),),
        "has no revision 'main' on the Hub",
        "pick another model",
    ),
    FaultCase(
        "500_on_head",
        (Fault("status", method="HEAD", status=500),),
        "the Hub answered with an error (HTTP 500)",
        "try again in a few minutes",
    ),
    FaultCase(  # the config files arrive, then the weights fail: not "the repo has no weights"
        "500_on_head_of_the_weights",
        (Fault("status", method="HEAD", path_contains="pytorch_model.bin", status=500),),
        "the Hub answered with an error (HTTP 500)",
        "try again in a few minutes",
    ),
    FaultCase(
        "500_on_get",
        (Fault("status", method="GET", status=500),),
        "The Hub answered with an error (HTTP 500) while sending",
        "try again in a minute",
    ),
    FaultCase(
        "500_on_get_of_the_weights",
        (Fault("status", method="GET", path_contains="pytorch_model.bin", status=500),),
        "The Hub answered with an error (HTTP 500) while sending",
        "try again in a minute",
    ),
    FaultCase(
        "connection_dropped_on_head",
        (Fault("drop", method="HEAD"),),
        "The connection to the Hub broke",
        "try again in a minute",
    ),
    FaultCase(
        "connection_dropped_on_get",
        (Fault("drop", method="GET"),),
        "The connection to the Hub broke",
        "try again in a minute",
    ),
    FaultCase(
        "body_cut_every_time",
        (Fault("cut_body", method="GET", path_contains="pytorch_model.bin"),),
        "The connection to the Hub broke",
        "try again in a minute",
    ),
    FaultCase(
        "no_answer_to_head",
        (Fault("hang", method="HEAD"),),
        "the Hub did not answer in time",
        "try again in a few minutes",
        slow=True,
    ),
    FaultCase(
        "no_answer_to_get_of_the_weights",
        (Fault("hang", method="GET", path_contains="pytorch_model.bin"),),
        "The Hub stopped sending",
        "try again in a minute",
        slow=True,
    ),
)


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.name, marks=[pytest.mark.slow] if case.slow else []) for case in FAULT_CASES]
)
def test_a_hub_fault_gives_one_sentence_leaves_nothing_partial_and_a_retry_succeeds(hub_double, fast_retries, case):
    registry = ModelRegistry(max_models=1)
    for fault in case.faults:
        hub_double.inject(fault)
    started = time.monotonic()
    with pytest.raises(hub.ModelUnavailableError) as caught, registry.use(SPEC.source):
        pass
    waited = time.monotonic() - started

    assert_one_sentence(str(caught.value), SPEC, case.says, case.action)
    # With 1 s timeouts and no backoff: at most 7 HEADs or 6 GETs time out, plus the request handling.
    assert waited < 7 * FAST_TIMEOUT_S + 5, f"the visitor waited {waited:.1f} s"
    assert sum(fast_retries) <= HEAD_BACKOFF_S, fast_retries  # the backoff the shipped defaults would add
    assert cache_problems(Path(constants.HF_HUB_CACHE)) == []
    assert hub.cached_directory(SPEC.source) is None
    assert model_state(registry, SPEC) is ModelState.NOT_DOWNLOADED and loaded_keys(registry) == []
    assert not any(request.authorized for request in hub_double.log())

    hub_double.clear_faults()
    with registry.use(SPEC.source) as loaded:
        assert loaded.downloaded and loaded.labels == ("No Mask", "Mask")
    assert hub.cached_directory(SPEC.source) is not None
    assert cache_problems(Path(constants.HF_HUB_CACHE)) == []


def test_a_failing_head_is_retried_with_the_backoff_the_documented_bound_counts(hub_double, fast_retries):
    hub_double.inject(Fault("status", method="HEAD", status=503))
    with pytest.raises(hub.ModelUnavailableError):
        hub.fetch(SPEC.source)
    assert fast_retries == [1, 2, 4, 8, 8] and sum(fast_retries) == HEAD_BACKOFF_S
    assert hub_double.count("HEAD") == 7  # the first HEAD, then 6 retries
    # Each retry got the lowered HF_HUB_ETAG_TIMEOUT, not huggingface_hub's own 60 s (see hub._bound_metadata_retries).
    assert file_download._ETAG_RETRY_TIMEOUT == FAST_TIMEOUT_S


def test_a_refused_connection_gives_one_sentence_and_a_retry_succeeds_once_the_hub_is_back(
    hub_double, fast_retries, monkeypatch
):
    with socket.socket() as sock:  # a port nobody listens on: connections to it are refused
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    working_template = constants.HUGGINGFACE_CO_URL_TEMPLATE
    refused_template = working_template.replace(hub_double.url, f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", refused_template)
    registry = ModelRegistry(max_models=1)

    with pytest.raises(hub.ModelUnavailableError) as caught, registry.use(SPEC.source):
        pass
    assert_one_sentence(str(caught.value), SPEC, "the Hub cannot be reached", "try again in a few minutes")
    assert hub_double.log() == []
    assert cache_problems(Path(constants.HF_HUB_CACHE)) == [] and hub.cached_directory(SPEC.source) is None
    assert model_state(registry, SPEC) is ModelState.NOT_DOWNLOADED

    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", working_template)
    with registry.use(SPEC.source) as loaded:
        assert loaded.downloaded


def test_offline_mode_gives_one_sentence_with_the_command_and_a_retry_succeeds_online(hub_double, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    registry = ModelRegistry(max_models=1)
    with pytest.raises(hub.ModelUnavailableError) as caught, registry.use(SPEC.source):
        pass
    assert_one_sentence(str(caught.value), SPEC, "HF_HUB_OFFLINE=1", f"python -m beit_demo download {SPEC.key}")
    assert hub_double.log() == []
    assert model_state(registry, SPEC) is ModelState.NOT_DOWNLOADED

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with registry.use(SPEC.source) as loaded:
        assert loaded.downloaded


def test_a_body_cut_once_is_resumed_from_where_it_stopped(hub_double, fast_retries):
    """huggingface_hub writes a download in 10 MiB chunks and resumes after the last whole one (a smaller file is
    fetched again from the start). The real weights are 100+ MB; this repo's are 21 MB, in the catalog's layout."""
    big = ModelSource("tests-hub-faults/big-weights")  # a model from outside the catalog
    weights = os.urandom(21 * 1024 * 1024)
    hub_double.add_repo(
        big.repo_id, {"config.json": b"{}", "preprocessor_config.json": b"{}", "pytorch_model.bin": weights}
    )
    hub_double.inject(Fault("cut_body", method="GET", path_contains="pytorch_model.bin", times=1))

    fetched = hub.fetch(big)
    weights_gets = [r.status for r in hub_double.log() if r.method == "GET" and r.path.endswith("pytorch_model.bin")]
    assert weights_gets == [200, 206]  # cut half-way, then only the rest, asked for with a Range header
    assert fast_retries == [1]  # the pause before resuming
    assert (fetched.directory / "pytorch_model.bin").read_bytes() == weights
    assert cache_problems(Path(constants.HF_HUB_CACHE)) == []
    assert hub.cached_directory(big) == fetched.directory


def test_the_file_list_and_the_model_info_are_never_needed(hub_double):
    hub_double.inject(Fault("status", path_contains="/api/", status=500))
    fetched = hub.fetch(SPEC.source)
    assert fetched.downloaded and hub.cached_directory(SPEC.source) == fetched.directory
    assert not any(request.path.startswith("/api/") for request in hub_double.log())


# Run in a child process whose Hub cache cannot hold the weights. Its stdout is one JSON report.
_DISK_FULL_CHILD = """
import json, os, resource, signal, subprocess, sys
from pathlib import Path

mechanism, key = sys.argv[1], sys.argv[2]
cache = Path(os.environ["HF_HUB_CACHE"])
cache.mkdir(parents=True, exist_ok=True)
if mechanism == "tmpfs":  # a real ENOSPC: 96 KiB hold the configs but not the 200 KB weights
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(cache)], check=True)
else:  # a real EFBIG from the kernel for any write past 64 KiB in one file
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process instead of failing the write
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))

from beit_demo import hub
from beit_demo.catalog import get_entry
from tests.test_hub_faults import cache_problems

spec = get_entry(key)
report = {}
try:
    hub.fetch(spec.source)
except hub.ModelUnavailableError as err:
    report["message"], report["errno"] = str(err), getattr(err.__cause__, "errno", None)
report["problems_after_fault"] = cache_problems(cache)
report["cached_after_fault"] = hub.cached_directory(spec.source) is not None
if mechanism == "tmpfs":  # space is freed
    subprocess.run(["mount", "-o", "remount,size=16m", str(cache)], check=True)
else:
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
report["retry_downloaded"] = hub.fetch(spec.source).downloaded
report["problems_after_retry"] = cache_problems(cache)
print(json.dumps(report))
"""


def _can_mount_a_private_tmpfs(directory: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    directory.mkdir(parents=True, exist_ok=True)
    probe = ["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", str(directory)]
    return subprocess.run(probe, capture_output=True).returncode == 0


def test_a_full_disk_while_writing_gives_one_sentence_and_leaves_nothing_partial(hub_double, tmp_path):
    """A real failed write, not a patched one.

    Where this process may mount (root, as in CI here), the child gets its own mount namespace (`unshare`, so the
    mount vanishes with it) and a 96 KiB tmpfs as its Hub cache: the kernel answers ENOSPC. Elsewhere the child
    lowers its own RLIMIT_FSIZE, and the kernel answers EFBIG to the same write. Both are a disk that cannot take
    the weights; the message and the cleanup must be the same.
    """
    cache = tmp_path / "small-disk"
    tmpfs = _can_mount_a_private_tmpfs(cache)
    mechanism = "tmpfs" if tmpfs else "rlimit"
    prefix = ["unshare", "--mount", "--propagation", "private"] if tmpfs else []
    environment = {**os.environ, "HF_HUB_CACHE": str(cache), "PYTHONDONTWRITEBYTECODE": "1"}
    child = subprocess.run(
        [*prefix, sys.executable, "-c", _DISK_FULL_CHILD, mechanism, SPEC.key],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"disk full simulated with {mechanism}: errno {report['errno']}")

    assert report["errno"] == (28 if tmpfs else 27)  # ENOSPC / EFBIG
    assert_one_sentence(report["message"], SPEC, "ran out of disk space", "pick a model that is already downloaded")
    assert report["problems_after_fault"] == [] and not report["cached_after_fault"]
    assert report["retry_downloaded"] and report["problems_after_retry"] == []
