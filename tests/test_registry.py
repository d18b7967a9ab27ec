"""The model registry: download -> load -> classify, single flight, bounded LRU, no broken entries."""

import subprocess
import sys
import textwrap
import threading

import pytest
from PIL import Image

from beit_demo.catalog import CATALOG, get_entry
from beit_demo.errors import ModelUnavailableError
from beit_demo.inference.classify import classify
from beit_demo.models.loaded import unique_labels
from beit_demo.models.loading import load_model
from beit_demo.models.registry import ModelRegistry, ModelState
from beit_demo.testing.hub_double import Fault, HubDouble
from tests.conftest import PHOTOS, REPO_ROOT, catalog_states, loaded_keys, source


class CountingLoader:
    """The real loader, counting how often it runs."""

    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def __call__(self, model_source, precision, progress):
        with self._lock:
            self.calls.append(model_source)
        return load_model(model_source, precision, progress)


def photo(name: str = "chelsea.jpg") -> Image.Image:
    return Image.open(PHOTOS / name).convert("RGB")


@pytest.mark.parametrize("spec", CATALOG, ids=lambda spec: spec.key)
def test_every_catalog_model_downloads_loads_and_classifies(spec):
    registry = ModelRegistry(max_models=2)
    with registry.use(spec.source) as loaded:
        assert loaded.downloaded
        assert len(loaded.labels) == spec.num_labels
        prediction = classify(loaded, [photo()], top_k=5)[0]
    assert len(prediction.scores) == min(5, spec.num_labels)
    assert set(prediction.scores) <= set(loaded.labels)
    values = list(prediction.scores.values())
    assert values == sorted(values, reverse=True)
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values)
    assert sum(values) <= 1.0 + 1e-6


def test_labels_come_from_the_checkpoint_config():
    with ModelRegistry().use(source("facemask-deit")) as loaded:
        assert loaded.labels == ("No Mask", "Mask")
    with ModelRegistry().use(source("fashion-mnist")) as loaded:
        assert loaded.labels[0] == "T - shirt / top" and loaded.labels[9] == "Ankle boot"


def test_eight_simultaneous_requests_cause_one_download_and_one_load(hub_double):
    loader = CountingLoader()
    registry = ModelRegistry(loader=loader)
    spec = get_entry("facemask-beit")
    start = threading.Barrier(8)
    models, errors = [], []

    def request():
        start.wait()
        try:
            with registry.use(spec.source) as loaded:
                models.append(loaded)
        except Exception as err:  # collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(models) == 8 and len({id(m) for m in models}) == 1
    assert loader.calls == [spec.source]
    assert hub_double.count("GET", repo_id=spec.repo_id, filename="pytorch_model.bin") == 1
    assert hub_double.count("GET", repo_id=spec.repo_id, filename="config.json") == 1


def test_least_recently_used_idle_model_is_freed_first():
    registry = ModelRegistry(max_models=2)
    for key in ("facemask-beit", "facemask-deit"):
        with registry.use(source(key)):
            pass
    with registry.use(source("facemask-beit")):  # now the most recently used
        pass
    with registry.use(source("fashion-mnist")):
        pass
    assert loaded_keys(registry) == ["facemask-beit", "fashion-mnist"]


def test_a_model_in_use_is_not_freed():
    registry = ModelRegistry(max_models=1)
    with registry.use(source("facemask-deit")) as held:
        with registry.use(source("fashion-mnist")):
            assert set(loaded_keys(registry)) == {"facemask-deit", "fashion-mnist"}
        assert "facemask-deit" in loaded_keys(registry)
        prediction = classify(held, [photo()], top_k=2)[0]  # still usable
        assert set(prediction.scores) == {"No Mask", "Mask"}
    assert loaded_keys(registry) == ["facemask-deit"]  # the idle one went when the bound was enforced


def test_a_failed_load_keeps_no_entry_and_a_retry_succeeds(hub_double):
    loader = CountingLoader()
    registry = ModelRegistry(loader=loader)
    hub_double.inject(Fault("status", status=404, error_code="RepoNotFound", path_contains="FaceMask"))
    with pytest.raises(ModelUnavailableError, match="was not found on the Hub"), registry.use(source("facemask-beit")):
        pass
    assert loaded_keys(registry) == []
    assert catalog_states(registry)["facemask-beit"].state is ModelState.NOT_DOWNLOADED
    hub_double.clear_faults()
    with registry.use(source("facemask-beit")) as loaded:
        assert loaded.labels == ("No Mask", "Mask")
    # The first try failed in the download, which the registry runs in its pool before the loader; the retry loads.
    assert loader.calls == [source("facemask-beit")]


def test_status_follows_a_model_from_the_hub_to_memory():
    registry = ModelRegistry(max_models=1)
    states = lambda: catalog_states(registry)  # noqa: E731
    assert states()["facemask-deit"].state is ModelState.NOT_DOWNLOADED
    with registry.use(source("facemask-deit")):
        assert states()["facemask-deit"].state is ModelState.IN_MEMORY
        assert states()["facemask-deit"].users == 1
    with registry.use(source("fashion-mnist")):
        pass
    on_disk = states()["facemask-deit"]
    assert on_disk.state is ModelState.ON_DISK and on_disk.disk_bytes > 0


def test_a_cached_model_loads_and_classifies_with_the_hub_gone(tmp_path, hub_double):
    """Two fresh processes: one fills the cache, the other runs with nothing listening at HF_ENDPOINT."""
    script = textwrap.dedent(
        f"""
        import sys
        from PIL import Image
        from beit_demo.catalog import get_entry
        from beit_demo.models.registry import ModelRegistry
        from beit_demo.inference.classify import classify
        with ModelRegistry().use(get_entry("facemask-deit").source) as loaded:
            scores = classify(loaded, [Image.open({str(PHOTOS / "chelsea.jpg")!r}).convert("RGB")], 2)[0].scores
            print(loaded.downloaded, sorted(scores))
        """
    )
    dead = HubDouble().start()
    dead_url = dead.url
    dead.stop()  # nothing listens there any more: connections are refused
    outputs = []
    for endpoint in (hub_double.url, dead_url):
        env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "PATH": "/usr/bin:/bin"}
        env.pop("HF_HUB_CACHE", None)
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(done.stdout.strip().splitlines()[-1])
    assert outputs == ["True ['Mask', 'No Mask']", "False ['Mask', 'No Mask']"]


def test_loading_a_bin_only_checkpoint_asks_the_hub_for_nothing_more(hub_double):
    """Models load from the cache folder, not by repo id: transformers then makes no Hub calls of its own
    (loading a .bin-only repo by id starts a safetensors-conversion thread that asks the Hub for more)."""
    with ModelRegistry().use(source("facemask-beit")):
        pass
    threading.Event().wait(1.0)  # the conversion thread, if started, asks within milliseconds
    paths = [request.path for request in hub_double.log()]
    assert paths and all("/resolve/" in path for path in paths), paths


def test_classes_sharing_a_name_stay_apart():
    labels = unique_labels({0: "tench", 1: "crane", 2: "crane"}, 4)
    assert labels == ("tench", "crane (class 1)", "crane (class 2)", "LABEL_3")


def test_the_imagenet_1k_cranes_both_show_up():
    with ModelRegistry().use(source("beit-in1k-timm")) as loaded:
        assert len(set(loaded.labels)) == 1000
        assert {"crane (class 134)", "crane (class 517)"} <= set(loaded.labels)
