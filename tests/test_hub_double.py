"""The Hub double must be exact enough that the real huggingface_hub and transformers clients work against it.

Client code runs in a fresh subprocess: huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from beit_demo.catalog import CATALOG, CheckpointFormat
from beit_demo.testing import checkpoints
from beit_demo.testing.checkpoints import (
    FACE_MASK_LABELS,
    FASHION_MNIST_LABELS,
    beit_files,
    catalog_repos,
    deit_files,
    imagenet22k_style_labels,
)
from beit_demo.testing.hub_double import Fault, HubDouble, Request

REPO = "org/tiny-model"
GATED_REPO = "org/gated-model"
WEIGHTS = bytes(range(256)) * 1200  # 307,200 bytes, stored like a git-lfs file (".bin")
FILES = {
    "config.json": b'{"model_type": "beit"}\n',
    "preprocessor_config.json": b'{"size": 224}\n',
    "pytorch_model.bin": WEIGHTS,
    "README.md": b"# a model card\n",
    "sub dir/notes v2.txt": b"a file in a folder, with spaces in its path\n",
}

# Prints what the client code leaves in `result` as the last line of stdout.
_CLIENT_PRELUDE = """
import json, os, sys
result = {}
def error_name(call):
    try:
        call()
    except Exception as error:
        return type(error).__name__
    return None
"""
_CLIENT_EPILOGUE = "\nprint(json.dumps(result))\n"


@pytest.fixture
def hub() -> Iterator[HubDouble]:
    double = HubDouble()
    double.add_repo(REPO, FILES)
    double.add_repo(GATED_REPO, {"config.json": b"{}"}, gated=True)
    with double:
        yield double


def run_client(hub: HubDouble, tmp_path: Path, code: str, *, timeout: float = 120, **env: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter pointed at ``hub``, with an empty cache, and return its ``result``."""
    child_env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    child_env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        **env,
    )
    script = _CLIENT_PRELUDE + textwrap.dedent(code) + _CLIENT_EPILOGUE
    completed = subprocess.run(
        [sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def http_request(
    hub: HubDouble, method: str, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(hub.url.removeprefix("http://"), timeout=10)
    try:
        connection.request(method, path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def api_sha(hub: HubDouble, repo_id: str) -> str:
    status, _, body = http_request(hub, "GET", f"/api/models/{repo_id}/revision/main")
    assert status == 200
    return json.loads(body)["sha"]


def cache_folder(tmp_path: Path, repo_id: str) -> Path:
    return tmp_path / "hf-home" / "hub" / f"models--{repo_id.replace('/', '--')}"


# -- the real client against the double -------------------------------------------------------------------------


def test_hf_hub_download_fills_the_cache_like_the_hub(hub: HubDouble, tmp_path: Path) -> None:
    result = run_client(
        hub,
        tmp_path,
        f"""
        from huggingface_hub import hf_hub_download
        for name in ["config.json", "pytorch_model.bin", "sub dir/notes v2.txt"]:
            result[name] = hf_hub_download({REPO!r}, name)
        """,
    )
    sha = api_sha(hub, REPO)
    folder = cache_folder(tmp_path, REPO)
    for name in ["config.json", "pytorch_model.bin", "sub dir/notes v2.txt"]:
        assert result[name] == str(folder / "snapshots" / sha / name)
        assert Path(result[name]).read_bytes() == FILES[name]
    # Blob names come from the ETag: sha256 for LFS files, the git blob id otherwise, as with the real Hub.
    git_blob_id = hashlib.sha1(b"blob %d\0" % len(FILES["config.json"]) + FILES["config.json"]).hexdigest()
    assert (folder / "blobs" / git_blob_id).read_bytes() == FILES["config.json"]
    assert (folder / "blobs" / hashlib.sha256(WEIGHTS).hexdigest()).read_bytes() == WEIGHTS
    assert (folder / "refs" / "main").read_text() == sha
    assert not list(folder.rglob("*.incomplete"))
    assert hub.count("HEAD", filename="pytorch_model.bin") == 1
    assert hub.count("GET", filename="pytorch_model.bin") == 1
    assert hub.count("GET", filename="sub dir/notes v2.txt") == 1
    assert not any(request.authorized for request in hub.log())


def test_snapshot_download_lists_the_tree_and_fetches_only_allowed_files(hub: HubDouble, tmp_path: Path) -> None:
    result = run_client(
        hub,
        tmp_path,
        f"""
        from huggingface_hub import snapshot_download
        folder = snapshot_download({REPO!r}, allow_patterns=["*.json", "*.bin"])
        result["folder"] = folder
        result["files"] = sorted(os.listdir(folder))
        """,
    )
    sha = api_sha(hub, REPO)
    assert result["folder"] == str(cache_folder(tmp_path, REPO) / "snapshots" / sha)
    assert result["files"] == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    assert Path(result["folder"], "pytorch_model.bin").read_bytes() == WEIGHTS
    tree_requests = [request for request in hub.log() if "/tree/" in request.path]
    assert [(request.path, request.status) for request in tree_requests] == [(f"/api/models/{REPO}/tree/{sha}", 200)]
    assert "recursive=true" in tree_requests[0].query
    assert hub.count(filename="README.md") == 0
    assert hub.count(filename="sub dir/notes v2.txt") == 0


def test_revisions_resolve_by_branch_and_by_commit_id(hub: HubDouble, tmp_path: Path) -> None:
    old_sha = api_sha(hub, REPO)
    new_sha = hub.add_repo(REPO, {**FILES, "config.json": b'{"model_type": "beit", "v": 2}\n'})
    assert new_sha != old_sha and len(new_sha) == 40
    result = run_client(
        hub,
        tmp_path,
        f"""
        from pathlib import Path
        from huggingface_hub import hf_hub_download
        result["main"] = Path(hf_hub_download({REPO!r}, "config.json")).read_text()
        result["old"] = Path(hf_hub_download({REPO!r}, "config.json", revision={old_sha!r})).read_text()
        result["unknown"] = error_name(lambda: hf_hub_download({REPO!r}, "config.json", revision="v9"))
        """,
    )
    assert result == {
        "main": '{"model_type": "beit", "v": 2}\n',
        "old": '{"model_type": "beit"}\n',
        "unknown": "RevisionNotFoundError",
    }


def test_errors_are_classified_like_the_hubs(hub: HubDouble, tmp_path: Path) -> None:
    result = run_client(
        hub,
        tmp_path,
        f"""
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError
        missing = error_name(lambda: hf_hub_download({REPO!r}, "model.safetensors"))
        result["missing"] = missing
        try:
            hf_hub_download({REPO!r}, "model.safetensors")
        except EntryNotFoundError:
            result["missing_is_entry_not_found"] = True
        result["unknown_repo"] = error_name(lambda: hf_hub_download("org/no-such-model", "config.json"))
        result["unknown_repo_snapshot"] = error_name(lambda: snapshot_download("org/no-such-model"))
        result["gated"] = error_name(lambda: hf_hub_download({GATED_REPO!r}, "config.json"))
        """,
    )
    assert result == {
        "missing": "RemoteEntryNotFoundError",
        "missing_is_entry_not_found": True,
        "unknown_repo": "RepositoryNotFoundError",
        "unknown_repo_snapshot": "RepositoryNotFoundError",
        "gated": "GatedRepoError",
    }
    # The missing file is remembered per commit, thanks to X-Repo-Commit on the 404.
    sha = api_sha(hub, REPO)
    assert (cache_folder(tmp_path, REPO) / ".no_exist" / sha / "model.safetensors").exists()


def test_gated_repo_serves_files_only_with_a_token(hub: HubDouble, tmp_path: Path) -> None:
    result = run_client(
        hub,
        tmp_path,
        f"""
        from pathlib import Path
        from huggingface_hub import hf_hub_download
        result["content"] = Path(hf_hub_download({GATED_REPO!r}, "config.json")).read_text()
        """,
        HF_TOKEN="hf_not_a_real_token",
    )
    assert result == {"content": "{}"}
    assert hub.log() and all(request.authorized for request in hub.log())


def downloaded_sha256(hub: HubDouble, tmp_path: Path, filename: str) -> str:
    """Download ``filename`` of REPO with the real client in a fresh process; the SHA-256 of what it stored."""
    script = f"""
        import hashlib
        from pathlib import Path
        from huggingface_hub import hf_hub_download
        path = hf_hub_download({REPO!r}, {filename!r})
        result["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        """
    return run_client(hub, tmp_path, script)["sha256"]


def test_a_cut_body_is_resumed_with_a_range_request(hub: HubDouble, tmp_path: Path) -> None:
    # The client writes in 10 MiB chunks, so only a cut after the first chunk can be resumed rather than restarted.
    big = hashlib.sha256(b"seed").digest() * (24 * 1024 * 1024 // 32)
    hub.add_repo(REPO, {**FILES, "model.safetensors": big})
    hub.inject(Fault("cut_body", method="GET", path_contains="model.safetensors", times=1))
    result = {"sha256": downloaded_sha256(hub, tmp_path, "model.safetensors")}
    assert result == {"sha256": hashlib.sha256(big).hexdigest()}
    gets = [request.status for request in hub.log() if request.method == "GET" and "model.safetensors" in request.path]
    assert gets == [200, 206]
    assert not list(cache_folder(tmp_path, REPO).rglob("*.incomplete"))


def test_a_small_cut_body_is_downloaded_again(hub: HubDouble, tmp_path: Path) -> None:
    hub.inject(Fault("cut_body", method="GET", path_contains="pytorch_model.bin", times=1))
    result = {"sha256": downloaded_sha256(hub, tmp_path, "pytorch_model.bin")}
    assert result == {"sha256": hashlib.sha256(WEIGHTS).hexdigest()}
    assert hub.count("GET", filename="pytorch_model.bin") == 2


@pytest.mark.slow
def test_transformers_loads_every_catalog_repo(tmp_path: Path) -> None:
    repos = catalog_repos("tiny")
    expected = {
        spec.repo_id: spec.num_labels
        for spec in CATALOG
        if spec.source.checkpoint_format is CheckpointFormat.TRANSFORMERS
    }
    assert set(repos) == set(expected)
    with HubDouble() as double:
        shas = {repo_id: double.add_repo(repo_id, files) for repo_id, files in repos.items()}
        result = run_client(
            double,
            tmp_path,
            f"""
            from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
            for repo_id in {sorted(repos)!r}:
                config = AutoConfig.from_pretrained(repo_id)
                model = AutoModelForImageClassification.from_pretrained(repo_id)
                processor = AutoImageProcessor.from_pretrained(repo_id)
                result[repo_id] = [type(model).__name__, type(processor).__name__, len(config.id2label)]
            """,
            timeout=300,
        )
        for repo_id in repos:
            assert result[repo_id][2] == expected[repo_id]
            assert result[repo_id][0] == json.loads(repos[repo_id]["config.json"])["architectures"][0]
            assert (cache_folder(tmp_path, repo_id) / "refs" / "main").read_text() == shas[repo_id]
            for never_needed in ("README.md", "training_args.bin", ".gitattributes"):
                assert double.count(repo_id=repo_id, filename=never_needed) == 0
            assert double.count("GET", repo_id=repo_id, filename="pytorch_model.bin") == 1
        assert not any(request.authorized for request in double.log())


# -- the protocol, request by request -----------------------------------------------------------------------------


def test_head_and_get_headers_are_exact(hub: HubDouble) -> None:
    sha = api_sha(hub, REPO)
    status, headers, body = http_request(hub, "HEAD", f"/{REPO}/resolve/main/pytorch_model.bin")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(WEIGHTS))
    assert headers["X-Repo-Commit"] == sha
    assert headers["ETag"] == f'"{hashlib.sha256(WEIGHTS).hexdigest()}"'
    assert not any("xet" in name.lower() for name in headers)
    status, get_headers, body = http_request(hub, "GET", f"/{REPO}/resolve/{sha}/pytorch_model.bin")
    assert (status, body) == (200, WEIGHTS)
    assert get_headers["Content-Length"] == str(len(WEIGHTS))
    assert get_headers["ETag"] == headers["ETag"]


def test_range_requests(hub: HubDouble) -> None:
    path = f"/{REPO}/resolve/main/pytorch_model.bin"
    size = len(WEIGHTS)
    status, headers, body = http_request(hub, "GET", path, {"Range": "bytes=1000-1999"})
    assert (status, body) == (206, WEIGHTS[1000:2000])
    assert headers["Content-Range"] == f"bytes 1000-1999/{size}"
    assert headers["Content-Length"] == "1000"
    status, headers, body = http_request(hub, "GET", path, {"Range": "bytes=300000-"})
    assert (status, body, headers["Content-Range"]) == (206, WEIGHTS[300000:], f"bytes 300000-{size - 1}/{size}")
    status, _, body = http_request(hub, "GET", path, {"Range": "bytes=-10"})
    assert (status, body) == (206, WEIGHTS[-10:])
    status, headers, _ = http_request(hub, "GET", path, {"Range": f"bytes={size}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{size}")


def test_api_info_and_tree(hub: HubDouble) -> None:
    status, _, body = http_request(hub, "GET", f"/api/models/{REPO}")
    info = json.loads(body)
    assert status == 200 and info["id"] == REPO and info["sha"] == api_sha(hub, REPO)
    assert sorted(sibling["rfilename"] for sibling in info["siblings"]) == sorted(FILES)
    status, _, body = http_request(hub, "GET", f"/api/models/{REPO}/tree/main?recursive=true&expand=false")
    entries = {entry["path"]: entry for entry in json.loads(body)}
    assert entries["sub dir"]["type"] == "directory"
    assert entries["pytorch_model.bin"]["size"] == len(WEIGHTS)
    assert entries["pytorch_model.bin"]["lfs"]["oid"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert "lfs" not in entries["config.json"]
    status, _, body = http_request(hub, "GET", f"/api/models/{REPO}/tree/main")
    assert sorted(entry["path"] for entry in json.loads(body)) == sorted(
        ["config.json", "preprocessor_config.json", "pytorch_model.bin", "README.md", "sub dir"]
    )


def test_error_headers(hub: HubDouble) -> None:
    sha = api_sha(hub, REPO)
    status, headers, _ = http_request(hub, "HEAD", f"/{REPO}/resolve/main/nope.json")
    assert (status, headers["X-Error-Code"], headers["X-Repo-Commit"]) == (404, "EntryNotFound", sha)
    status, headers, _ = http_request(hub, "GET", f"/{REPO}/resolve/v9/config.json")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")
    status, headers, _ = http_request(hub, "GET", "/api/models/org/no-such-model/revision/main")
    assert (status, headers["X-Error-Code"]) == (401, "RepoNotFound")
    status, headers, _ = http_request(
        hub, "HEAD", "/org/no-such-model/resolve/main/config.json", {"Authorization": "Bearer x"}
    )
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    status, headers, _ = http_request(hub, "HEAD", f"/{GATED_REPO}/resolve/main/config.json")
    assert (status, headers["X-Error-Code"]) == (401, "GatedRepo")
    # As on the Hub, only a gated repo's files need a token, not its info.
    assert http_request(hub, "GET", f"/api/models/{GATED_REPO}")[0] == 200
    assert [request.authorized for request in hub.log()][-3:] == [True, False, False]


def test_status_faults_apply_the_given_number_of_times(hub: HubDouble) -> None:
    hub.inject(Fault("status", method="HEAD", path_contains="config.json", times=2, status=503))
    hub.inject(Fault("status", path_contains="/api/models/", status=404, error_code="RepoNotFound"))
    path = f"/{REPO}/resolve/main/config.json"
    assert [http_request(hub, "HEAD", path)[0] for _ in range(3)] == [503, 503, 200]
    assert http_request(hub, "GET", path)[0] == 200  # the HEAD fault leaves GET alone
    status, headers, _ = http_request(hub, "GET", f"/api/models/{REPO}")
    assert (status, headers["X-Error-Code"]) == (404, "RepoNotFound")
    hub.clear_faults()
    assert http_request(hub, "GET", f"/api/models/{REPO}")[0] == 200


def test_drop_closes_without_an_answer(hub: HubDouble) -> None:
    hub.inject(Fault("drop", path_contains="config.json", times=1))
    with pytest.raises(http.client.RemoteDisconnected):
        http_request(hub, "GET", f"/{REPO}/resolve/main/config.json")
    assert hub.log()[-1] == Request("GET", f"/{REPO}/resolve/main/config.json", 0, False)
    assert http_request(hub, "GET", f"/{REPO}/resolve/main/config.json")[0] == 200


def test_a_hang_does_not_block_stop_and_stop_refuses_connections() -> None:
    double = HubDouble()
    double.add_repo(REPO, FILES)
    double.start()
    double.inject(Fault("hang"))
    outcome: list[BaseException | int] = []

    def call() -> None:
        try:
            outcome.append(http_request(double, "GET", f"/api/models/{REPO}")[0])
        except (OSError, http.client.HTTPException) as error:
            outcome.append(error)

    address = ("127.0.0.1", int(double.url.rsplit(":", 1)[1]))
    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not double.log() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert double.count() == 1 and caller.is_alive()
    started = time.monotonic()
    double.stop()
    assert time.monotonic() - started < 2
    caller.join(timeout=5)
    assert not caller.is_alive() and isinstance(outcome[0], http.client.RemoteDisconnected)
    double.stop()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2)


def test_keep_alive_connections_are_closed_by_stop() -> None:
    double = HubDouble()
    double.add_repo(REPO, FILES)
    double.start()
    connection = http.client.HTTPConnection(double.url.removeprefix("http://"), timeout=5)
    connection.request("GET", f"/api/models/{REPO}")
    assert connection.getresponse().read()
    double.stop()
    with pytest.raises((OSError, http.client.HTTPException)):
        connection.request("GET", f"/api/models/{REPO}")
        connection.getresponse()
    connection.close()


def test_counting_api(hub: HubDouble) -> None:
    http_request(hub, "HEAD", f"/{REPO}/resolve/main/config.json")
    http_request(hub, "GET", f"/{REPO}/resolve/main/config.json")
    http_request(hub, "GET", f"/{REPO}/resolve/main/sub%20dir/notes%20v2.txt")
    http_request(hub, "GET", f"/api/models/{REPO}")
    http_request(hub, "GET", f"/{GATED_REPO}/resolve/main/config.json")
    assert hub.count() == 5
    assert hub.count("GET") == 4
    assert hub.count("get", repo_id=REPO) == 3
    assert hub.count(filename="config.json") == 3
    assert hub.count(repo_id=REPO, filename="config.json") == 2
    assert hub.count(filename="sub dir/notes v2.txt") == 1
    assert hub.count(repo_id=GATED_REPO) == 1
    assert [request.status for request in hub.log()] == [200, 200, 200, 200, 401]
    hub.clear_log()
    assert hub.log() == [] and hub.count() == 0


def test_commit_id_is_derived_from_the_content() -> None:
    first, second = HubDouble(), HubDouble()
    sha = first.add_repo(REPO, FILES)
    assert sha == second.add_repo(REPO, dict(reversed(FILES.items())))
    assert sha != second.add_repo(REPO, {**FILES, "config.json": b"{}"})
    assert len(sha) == 40 and int(sha, 16) >= 0
    with pytest.raises(ValueError):
        first.add_repo("no-namespace", FILES)


def test_throttle_slows_bodies_down(hub: HubDouble) -> None:
    hub.throttle_bytes_per_s = 1_000_000  # WEIGHTS is 0.3 MB: about 0.3 s
    started = time.monotonic()
    status, _, body = http_request(hub, "GET", f"/{REPO}/resolve/main/pytorch_model.bin")
    assert (status, body) == (200, WEIGHTS)
    assert time.monotonic() - started >= 0.2


@pytest.mark.slow
def test_command_line_serves_the_catalog_until_terminated(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "beit_demo.testing.hub_double", "--port", str(port)]
    repo_root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(command, cwd=repo_root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or not lines[-1].startswith("  HF_ENDPOINT="):
            line = server.stdout.readline()
            assert line, f"the server exited early: {lines}"
            lines.append(line)
        assert lines[-1].strip() == f"HF_ENDPOINT=http://127.0.0.1:{port}"
        # Checkpoints built in another process are byte-identical: the commit ids printed there match ours.
        printed = dict(line.split()[:3:2] for line in lines if " @ " in line)
        ours = HubDouble()
        for repo_id, files in catalog_repos("tiny").items():
            assert printed[repo_id] == ours.add_repo(repo_id, files)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for spec in CATALOG:
            connection.request("HEAD", f"/{spec.repo_id}/resolve/main/config.json")
            response = connection.getresponse()
            response.read()
            assert response.status == 200, spec.repo_id
        connection.close()
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0
        server.stdout.close()


# -- the checkpoints ----------------------------------------------------------------------------------------------


def test_label_sets() -> None:
    assert FACE_MASK_LABELS == ("No Mask", "Mask")
    assert FASHION_MNIST_LABELS[0] == "T - shirt / top" and FASHION_MNIST_LABELS[-1] == "Ankle boot"
    assert len(FASHION_MNIST_LABELS) == 10
    labels = imagenet22k_style_labels()
    assert len(labels) == 21841 and len(set(labels)) == 21841


def test_checkpoints_are_deterministic_and_fresh() -> None:
    files = beit_files(FACE_MASK_LABELS)
    again = beit_files(FACE_MASK_LABELS)
    assert files == again and files is not again
    files["config.json"] = b"changed"
    assert beit_files(FACE_MASK_LABELS)["config.json"] != b"changed"
    assert beit_files(FACE_MASK_LABELS, seed=1)["model.safetensors"] != again["model.safetensors"]
    # A build that bypasses the per-process cache gives the same bytes.
    assert checkpoints._beit_files(FACE_MASK_LABELS, "tiny", "safetensors", False, False, 0) == again


def _write(files: Mapping[str, bytes], folder: Path) -> Path:
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return folder


@pytest.mark.parametrize("builder", [beit_files, deit_files])
def test_bin_weights_use_transformers_4_names_and_load_completely(builder, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification

    bin_files = builder(FACE_MASK_LABELS, weights="bin", training_args=True)
    safe_files = builder(FACE_MASK_LABELS)
    assert set(bin_files) == {"config.json", "preprocessor_config.json", "pytorch_model.bin", "training_args.bin"}
    assert set(safe_files) == {"config.json", "preprocessor_config.json", "model.safetensors"}
    folder = _write(bin_files, tmp_path / "bin")
    state_dict = torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert any(".encoder.layer.0.attention.attention.query.weight" in key for key in state_dict)
    model, info = AutoModelForImageClassification.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched keys
    assert model.config.id2label == {0: "No Mask", 1: "Mask"}
    assert model.config.label2id == {"No Mask": 0, "Mask": 1}
    # The .bin and the safetensors files hold the same tensors under the same names.
    safe_state = load_file(_write(safe_files, tmp_path / "safe") / "model.safetensors")
    assert safe_state.keys() == state_dict.keys()
    assert all(torch.equal(safe_state[key], state_dict[key]) for key in state_dict)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "safe").state_dict()
    assert all(torch.equal(loaded[key], model.state_dict()[key]) for key in loaded)
    assert not torch.equal(loaded["classifier.bias"], torch.zeros_like(loaded["classifier.bias"]))


def test_preprocessors_load_like_the_real_ones(tmp_path: Path) -> None:
    from transformers import AutoImageProcessor

    legacy_beit = AutoImageProcessor.from_pretrained(
        _write(beit_files(FACE_MASK_LABELS, legacy_preprocessor=True), tmp_path / "legacy-beit")
    )
    assert type(legacy_beit).__name__.startswith("BeitImageProcessor")
    assert (legacy_beit.size["height"], legacy_beit.size["width"]) == (224, 224)
    assert not legacy_beit.do_center_crop and list(legacy_beit.image_mean) == [0.5, 0.5, 0.5]
    legacy_deit = AutoImageProcessor.from_pretrained(
        _write(deit_files(FACE_MASK_LABELS, legacy_preprocessor=True), tmp_path / "legacy-deit")
    )
    assert type(legacy_deit).__name__.startswith("DeiTImageProcessor")
    assert legacy_deit.do_center_crop and legacy_deit.crop_size["height"] == 224
    modern = AutoImageProcessor.from_pretrained(_write(beit_files(FASHION_MNIST_LABELS), tmp_path / "modern"))
    assert type(modern).__name__.startswith("BeitImageProcessor")


def test_catalog_repos_are_shaped_like_the_real_ones() -> None:
    repos = catalog_repos()
    in22k = repos["microsoft/beit-base-patch16-224-pt22k-ft22k"]
    assert set(in22k) == {
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
        "flax_model.msgpack",
        "README.md",
        ".gitattributes",
    }
    assert json.loads(in22k["preprocessor_config.json"])["size"] == 224
    assert len(json.loads(in22k["config.json"])["id2label"]) == 21841
    face_mask = repos["AkshatSurolia/BEiT-FaceMask-Finetuned"]
    assert "training_args.bin" in face_mask and "model.safetensors" not in face_mask
    assert json.loads(face_mask["preprocessor_config.json"])["feature_extractor_type"] == "BeitFeatureExtractor"
    deit_config = json.loads(repos["AkshatSurolia/DeiT-FaceMask-Finetuned"]["config.json"])
    assert deit_config["architectures"] == ["DeiTForImageClassification"]
    assert deit_config["id2label"] == {"0": "No Mask", "1": "Mask"}
    fashion = json.loads(repos["thilinadj/image_classification_tdj_fashion-mnist"]["config.json"])
    assert list(fashion["id2label"].values()) == list(FASHION_MNIST_LABELS)
    assert fashion["id2label"]["0"] == "T - shirt / top"  # the real config's spelling
    for files in repos.values():
        assert sum(len(content) for content in files.values()) < 8_000_000


def test_base_size_has_the_real_dimensions(tmp_path: Path) -> None:
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(
        _write(deit_files(FACE_MASK_LABELS, size="base", weights="bin"), tmp_path / "base")
    )
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 12, 12)
    assert 85_000_000 < sum(parameter.numel() for parameter in model.parameters()) < 87_000_000
