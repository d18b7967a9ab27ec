"""A public Space that never blocks: downloads apart from inference, bounded downloads, orphans cleaned, preloads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from huggingface_hub import constants

from beit_demo import hub
from beit_demo.catalog import CATALOG, get_entry
from beit_demo.cli import main as cli
from beit_demo.errors import ModelUnavailableError
from beit_demo.testing.checkpoints import catalog_repos
from beit_demo.testing.hub_double import Fault
from tests.conftest import PHOTOS, REPO_ROOT, running_app
from tests.test_hub_faults import cache_problems

IN_MEMORY = get_entry("fashion-mnist")


def classify(client: Client, key: str) -> dict:
    scores, _, _ = client.predict(handle_file(str(PHOTOS / "chelsea.jpg")), key, 3, api_name="/classify")
    return scores


def timed_classify(client: Client, key: str) -> float:
    started = time.monotonic()
    assert len(classify(client, key)["confidences"]) == 3
    return time.monotonic() - started


@pytest.mark.app
def test_a_model_in_memory_answers_while_requests_for_others_hang_on_the_hub(tmp_path, hub_double):
    with running_app(tmp_path) as app:
        client = Client(app.url, verbose=False)
        try:
            timed_classify(client, IN_MEMORY.key)  # downloads and loads it
            normal = max(timed_classify(client, IN_MEMORY.key) for _ in range(3))
            hub_double.inject(Fault("hang"))  # from now on the Hub accepts connections and never answers
            others = [entry.key for entry in CATALOG if entry.key != IN_MEMORY.key] * 2  # 8 requests
            stuck = [threading.Thread(target=_ask_and_wait, args=(app.url, key), daemon=True) for key in others]
            for thread in stuck:
                thread.start()
            deadline = time.monotonic() + 30
            while len({request.path for request in hub_double.log()}) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)  # the downloads have started and hang
            time.sleep(1.0)
            during = [timed_classify(client, IN_MEMORY.key) for _ in range(3)]
            still_waiting = sum(thread.is_alive() for thread in stuck)
        finally:
            client.close()
            hub_double.clear_faults()
    print(f"\nin memory: {normal:.2f} s before, {max(during):.2f} s while {still_waiting} requests hang on the Hub")
    assert still_waiting == len(stuck)  # the others were waiting on the Hub all along
    assert max(during) < 5 and max(during) < normal + 2


def _ask_and_wait(url: str, key: str) -> None:
    client = Client(url, verbose=False)
    try:
        classify(client, key)
    except Exception:  # noqa: BLE001 - ends with the app at the end of the test
        pass
    finally:
        client.close()


def test_a_trickling_download_ends_with_the_sentence_within_its_deadline(hub_double):
    entry = get_entry("facemask-deit")
    weights = len(catalog_repos("tiny")[entry.repo_id]["pytorch_model.bin"])
    deadline = hub.DOWNLOAD_GRACE_S + weights / hub.MIN_DOWNLOAD_RATE
    hub_double.throttle_bytes_per_s = 4_000  # a few bytes every 50 ms: never silent long enough to time out
    started = time.monotonic()
    try:
        with pytest.raises(ModelUnavailableError) as caught:
            hub.fetch(entry.source)
    finally:
        hub_double.throttle_bytes_per_s = None
    seconds = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith(f"The Hub sent {entry.title} ({entry.repo_id}) too slowly") and "try again" in message
    assert deadline <= seconds < deadline + 3  # the small config files come first, then the weights are cut off
    assert cache_problems(Path(constants.HF_HUB_CACHE)) == []  # the partial file is gone
    assert hub.fetch(entry.source).downloaded  # and the next try starts afresh


def test_the_front_matter_preloads_exactly_the_files_the_app_downloads(hub_double):
    front_matter = (REPO_ROOT / "README.md").read_text().split("---")[1]
    listed = {}
    lines = iter(front_matter.splitlines())
    for line in lines:
        if line.startswith("preload_from_hub:"):
            for item in lines:
                if not item.startswith("  - "):
                    break
                repo_id, files = item[4:].split()
                listed[repo_id] = set(files.split(","))
    assert cli(["download", "--all"]) == 0
    fetched: dict[str, set[str]] = {}
    for request in hub_double.log():
        if request.method == "GET" and request.status == 200 and "/resolve/" in request.path:
            repo_id, _, rest = request.path.lstrip("/").partition("/resolve/")
            fetched.setdefault(repo_id, set()).add(rest.split("/", 1)[1])
    assert listed == fetched
    assert set(listed) == {entry.repo_id for entry in CATALOG}


@pytest.mark.app
def test_orphaned_partial_downloads_of_our_repos_are_removed_at_start_up(tmp_path):
    blobs = tmp_path / "app-hf-home" / "hub" / f"models--{IN_MEMORY.repo_id.replace('/', '--')}" / "blobs"
    blobs.mkdir(parents=True)
    orphan, fresh = blobs / "0123abcd.incomplete", blobs / "4567ef01.incomplete"
    orphan.write_bytes(b"half a file")
    fresh.write_bytes(b"another process is writing this one")
    an_hour_ago = time.time() - 3600
    os.utime(orphan, (an_hour_ago, an_hour_ago))
    with running_app(tmp_path):
        pass
    assert not orphan.exists() and fresh.exists()
