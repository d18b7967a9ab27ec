"""Many images: `DemoService.classify_files`, `python -m beit_demo classify` (local and Ray engines), and
/classify_batch over HTTP."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from beit_demo.bulk.files import find_images
from beit_demo.catalog import CATALOG, get_entry
from beit_demo.cli import main
from beit_demo.config import Settings
from beit_demo.images import file_looks_like_image
from beit_demo.service import DemoService
from beit_demo.testing.checkpoints import FASHION_MNIST_LABELS
from tests.conftest import PHOTOS

MODEL = "fashion-mnist"
LABELS = set(FASHION_MNIST_LABELS)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Good photos (one without an extension that says so), a damaged JPEG, a PNG named .txt, and a text file."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    shutil.copy(PHOTOS / "coffee.jpg", root / "coffee.jpg")
    shutil.copy(PHOTOS / "horse.jpg", root / "sub" / "horse.dat")  # an image by its content, whatever its name
    with Image.open(PHOTOS / "rocket.jpg") as rocket:
        rocket.convert("RGB").resize((120, 90)).save(root / "sub" / "rocket.txt", format="PNG")
    (root / "broken.jpg").write_bytes((PHOTOS / "chelsea.jpg").read_bytes()[:3000])  # cut short
    (root / "notes.txt").write_text("not an image\n")
    return root


GOOD = {"coffee.jpg", "horse.dat", "rocket.txt"}


def test_folders_are_recursed_and_images_recognised_by_their_content(folder):
    found = find_images([str(folder)])
    assert {path.name for path in found.files} == GOOD | {"broken.jpg"}
    assert found.skipped == 1 and found.missing == ()
    assert not file_looks_like_image(folder / "notes.txt") and file_looks_like_image(folder / "sub" / "rocket.txt")
    named = find_images([str(folder / "notes.txt"), str(folder / "nowhere")])
    assert [path.name for path in named.files] == ["notes.txt"]  # named on the command line: taken as it is
    assert named.missing == (str(folder / "nowhere"),)


def test_classify_files_runs_batched_passes_and_a_bad_file_does_not_stop_the_batch(folder):
    service = DemoService(Settings(max_batch=2))
    files = [(path.name, str(path)) for path in find_images([str(folder)]).files] * 2  # 8 files, 6 of them good
    with service.registry.use(get_entry(MODEL).source) as loaded:
        passes = []
        hook = loaded.model.register_forward_hook(
            lambda module, args, kwargs, output: passes.append(output.logits.shape[0]), with_kwargs=True
        )
    try:
        results = list(service.classify_files(files, MODEL, top_k=3))
    finally:
        hook.remove()
    assert [result.name for result in results] == [name for name, _ in files]
    assert passes == [1, 2, 1, 2]  # 2 files per chunk, the damaged one left out of its pass
    for result in results:
        if result.name == "broken.jpg":
            assert result.scores == {} and "damaged or incomplete" in result.error
        else:
            assert len(result.scores) == 3 and set(result.scores) <= LABELS and not result.error
    single = service.classify(str(folder / "coffee.jpg"), MODEL, 3).scores
    batched = next(result for result in results if result.name == "coffee.jpg").scores
    assert list(batched) == list(single)
    assert all(batched[label] == pytest.approx(single[label], abs=1e-5) for label in single)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames), list(reader)


def test_the_cli_writes_a_csv_with_an_error_per_failed_row_and_exits_1(folder, tmp_path, capsys):
    output = tmp_path / "out.csv"
    assert main(["classify", str(folder), "--model", MODEL, "--top-k", "3", "--output", str(output)]) == 1
    header, rows = read_csv(output)
    assert header == ["path", "label", "probability", "top_k", "error"]
    by_name = {Path(row["path"]).name: row for row in rows}
    assert set(by_name) == GOOD | {"broken.jpg"}
    for name in GOOD:
        row = by_name[name]
        top_k = json.loads(row["top_k"])
        assert row["label"] in LABELS and row["error"] == ""
        assert len(top_k) == 3 and top_k[0]["label"] == row["label"]
        assert float(row["probability"]) == pytest.approx(top_k[0]["probability"], rel=1e-6)
        assert top_k[0]["probability"] >= top_k[1]["probability"] >= top_k[2]["probability"]
    broken = by_name["broken.jpg"]
    assert broken["label"] == broken["probability"] == "" and json.loads(broken["top_k"]) == []
    assert "damaged or incomplete" in broken["error"]
    err = capsys.readouterr().err
    assert "100%" in err and "4/4" in err  # the progress bar, on stderr
    assert "1 of 4 files could not be classified" in err and "Skipping 1 files" in err


def test_the_cli_writes_jsonl_and_exits_0_when_every_file_was_classified(folder, tmp_path):
    output = tmp_path / "out.jsonl"
    good = [str(folder / "coffee.jpg"), str(folder / "sub")]
    assert main(["classify", *good, "--model", MODEL, "--output", str(output)]) == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert {Path(row["path"]).name for row in rows} == GOOD
    assert all(row["error"] == "" and len(row["top_k"]) == 5 and row["label"] in LABELS for row in rows)
    assert all(row["probability"] == row["top_k"][0]["probability"] for row in rows)


def test_the_cli_writes_csv_to_stdout_by_default(folder, capsys):
    assert main(["classify", str(folder / "coffee.jpg"), "--model", MODEL, "--top-k", "1"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and rows[0]["label"] in LABELS


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "resnet50"], "Valid models: " + ", ".join(entry.key for entry in CATALOG)),
        (["--model", "../../etc"], "a Hub id is owner/name"),
        (["--model", MODEL, "--output", "out.txt"], "--output must end in .csv or .jsonl"),
        (["--model", MODEL, "--top-k", "0"], "--top-k must be from 1 to 20"),
        (["--model", MODEL, "--engine", "spark"], "invalid choice: 'spark'"),
        ([], "the following arguments are required: --model"),
    ],
)
def test_bad_usage_exits_2_with_a_message(folder, capsys, hub_double, arguments, message):
    with pytest.raises(SystemExit) as exited:
        main(["classify", str(folder), *arguments])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert hub_double.log() == []  # refused before anything was asked of the Hub


def test_a_path_that_does_not_exist_is_bad_usage(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["classify", str(tmp_path / "nowhere"), "--model", MODEL])
    assert exited.value.code == 2 and "no such file or folder" in capsys.readouterr().err


def test_the_ray_engine_gives_the_local_engines_labels_and_probabilities(folder, tmp_path):
    local, ray = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    common = ["classify", str(folder), "--model", MODEL, "--top-k", "4", "--batch-size", "2"]
    assert main([*common, "--output", str(local)]) == 1
    assert main([*common, "--output", str(ray), "--engine", "ray"]) == 1
    local_rows = [json.loads(line) for line in local.read_text().splitlines()]
    ray_rows = [json.loads(line) for line in ray.read_text().splitlines()]
    assert [row["path"] for row in ray_rows] == [row["path"] for row in local_rows]  # same files, same order
    for ours, theirs in zip(local_rows, ray_rows, strict=True):
        assert theirs["error"] == ours["error"]
        assert [item["label"] for item in theirs["top_k"]] == [item["label"] for item in ours["top_k"]]
        for mine, other in zip(ours["top_k"], theirs["top_k"], strict=True):
            assert other["probability"] == pytest.approx(mine["probability"], abs=1e-4)


def test_classify_files_of_a_typed_hub_model(hub_double, folder):
    from beit_demo.testing import hub_models

    repo = "tests-bulk/tiny-resnet"
    hub_double.add_repo(repo, hub_models.family_files("resnet"))
    results = list(DemoService(Settings()).classify_files([("coffee", str(folder / "coffee.jpg"))], repo, 2))
    assert set(results[0].scores) <= set(hub_models.FAMILY_LABELS["resnet"]) and len(results[0].scores) == 2
