"""`python -m beit_demo download`: fetching models ahead of time."""

import pytest

from beit_demo.catalog import CATALOG, get_entry
from beit_demo.cli import main
from beit_demo.hub import cached_directory


def test_download_then_already_cached(capsys, hub_double):
    spec = get_entry("facemask-deit")
    assert main(["download", spec.key]) == 0
    assert capsys.readouterr().out.startswith(f"ok {spec.key}: downloaded")
    assert cached_directory(spec.source) is not None
    hub_double.clear_log()
    assert main(["download", spec.key]) == 0
    assert "already cached" in capsys.readouterr().out
    assert hub_double.log() == []


def test_download_all_fetches_every_catalog_model(capsys):
    assert main(["download", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(f"ok {spec.key}: downloaded" in out for spec in CATALOG)
    assert all(cached_directory(spec.source) is not None for spec in CATALOG)


def test_an_unknown_key_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["download", "resnet50"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "resnet50" in err and all(spec.key in err for spec in CATALOG)


def test_a_failed_download_exits_non_zero_with_the_sentence(capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert main(["download", "fashion-mnist"]) == 1
    assert "FAILED fashion-mnist: " in capsys.readouterr().err


def test_download_takes_a_hub_id_too(capsys, hub_double):
    from beit_demo.testing import hub_models

    repo = "tests-cli/tiny-swin"
    commit = hub_double.add_repo(repo, hub_models.family_files("swin"))
    assert main(["download", repo]) == 0
    assert capsys.readouterr().out.startswith(f"ok {repo}: downloaded")
    assert hub_double.count("GET", repo_id=repo, filename="model.safetensors") == 1
    assert all(f"/resolve/{commit}/" in request.path for request in hub_double.log() if "/resolve/" in request.path)
    with pytest.raises(SystemExit) as caught:
        main(["download", "owner/../name"])
    assert caught.value.code == 2 and "a Hub id is owner/name" in capsys.readouterr().err
