"""Downloads through the real huggingface_hub client, against the Hub double."""

import pytest

from beit_demo import hub
from beit_demo.catalog import CATALOG, CheckpointFormat, get_entry
from beit_demo.models.registry import ModelRegistry
from beit_demo.testing.checkpoints import catalog_repos

TRANSFORMERS_SPECS = [spec for spec in CATALOG if spec.source.checkpoint_format is CheckpointFormat.TRANSFORMERS]
NEEDED = {"config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin"}


def requested_files(hub_double, repo_id: str) -> set[str]:
    """File names the client asked the double for in ``repo_id`` (any revision)."""
    prefix = f"/{repo_id}/resolve/"
    paths = (r.path.split("?")[0] for r in hub_double.log())
    return {path[len(prefix) :].split("/", 1)[1] for path in paths if path.startswith(prefix)}


@pytest.mark.parametrize("spec", TRANSFORMERS_SPECS, ids=lambda spec: spec.key)
def test_fetch_asks_only_for_the_files_a_model_needs(hub_double, spec):
    fetched = hub.fetch(spec.source)
    assert fetched.downloaded and fetched.bytes_downloaded > 0
    requested = requested_files(hub_double, spec.repo_id)
    assert {"config.json", "preprocessor_config.json"} <= requested <= NEEDED
    assert {path.name for path in fetched.directory.iterdir()} <= NEEDED


def test_the_timm_repo_fetches_its_config_and_safetensors_only(hub_double):
    spec = get_entry("beit-in1k-timm")
    fetched = hub.fetch(spec.source)
    assert requested_files(hub_double, spec.repo_id) == {"config.json", "model.safetensors"}
    assert {path.name for path in fetched.directory.iterdir()} == {"config.json", "model.safetensors"}


def test_a_bin_only_repo_is_fetched_as_bin_and_never_its_training_args(hub_double):
    spec = get_entry("facemask-beit")
    fetched = hub.fetch(spec.source)
    assert (fetched.directory / "pytorch_model.bin").is_file()
    assert not (fetched.directory / "model.safetensors").exists()
    assert hub_double.count(repo_id=spec.repo_id, filename="training_args.bin") == 0


def test_the_imagenet_22k_repo_loads_from_its_bin_and_its_flax_weights_are_never_requested(hub_double):
    spec = get_entry("beit-in22k")
    served = catalog_repos("tiny")[spec.repo_id]
    assert {"pytorch_model.bin", "flax_model.msgpack"} <= set(served) and "model.safetensors" not in served
    with ModelRegistry().use(spec.source) as loaded:
        assert len(loaded.labels) == spec.num_labels
    requested = requested_files(hub_double, spec.repo_id)
    assert {"config.json", "preprocessor_config.json", "pytorch_model.bin"} <= requested <= NEEDED
    assert hub_double.count(repo_id=spec.repo_id, filename="flax_model.msgpack") == 0


def test_second_fetch_comes_from_the_cache_without_any_request(hub_double):
    spec = get_entry("facemask-deit")
    first = hub.fetch(spec.source)
    hub_double.clear_log()
    second = hub.fetch(spec.source)
    assert hub_double.log() == []
    assert (second.downloaded, second.bytes_downloaded) == (False, 0)
    assert second.directory == first.directory
    assert hub.cached_size_bytes(spec.source) == first.bytes_downloaded


def test_progress_reaches_one():
    seen = []
    hub.fetch(get_entry("fashion-mnist").source, lambda fraction, text: seen.append((fraction, text)))
    assert seen, "no progress was reported"
    assert seen[-1][0] == pytest.approx(1.0)
    assert all(0.0 <= fraction <= 1.0 for fraction, _ in seen)
    assert any("pytorch_model.bin" in text for _, text in seen)


def test_uncached_model_while_offline_is_one_clear_sentence(hub_double, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    spec = get_entry("facemask-beit")
    with pytest.raises(hub.ModelUnavailableError) as caught:
        hub.fetch(spec.source)
    message = str(caught.value)
    assert spec.title in message and spec.repo_id in message
    assert f"python -m beit_demo download {spec.key}" in message
    assert "\n" not in message
    assert hub_double.log() == []
