"""Evaluate: models really trained here, on a labelled folder whose right answers (and planted label errors) are known.

Tiny models trained on the colour task of `tests/explain_cases.py` (BEiTs and DeiTs, each trained independently and
kept in pytest's cache), and a BEiT with its weights drawn anew (a model near chance), are served by the Hub double
and evaluated through the service, the command line and the app, on class folders of held-out scenes ("red",
"green", "blue") in which a few images were filed under the wrong colour on purpose. The label-error finder is judged
on three independent sets (backgrounds, upload sizes, models, seeds), and must find the planted errors in each.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from beit_demo.cli import main
from beit_demo.config import Settings
from beit_demo.errors import InvalidRequestError
from beit_demo.evaluation.figures import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CALIBRATION_BINS, OTHER
from beit_demo.evaluation.labelled import ArchiveLimits, read_folder, read_zip, zip_folders
from beit_demo.service import DemoService
from tests.conftest import HUB
from tests.explain_cases import CASES, cached_model, scene, untrained

CASE = {case.name: case for case in CASES}
BEIT_CASE, DEIT_CASE = CASE["beit-a"], CASE["deit-a"]
MODELS = {"tests/colour-beit": BEIT_CASE, "tests/colour-deit": DEIT_CASE, "tests/colour-random": None}
# Independent evaluation sets: (the trained models, the case whose scenes fill the folders, the scenes' seed)
SETS = {
    "noise": (("beit-a", "deit-a"), "deit-a", 77),
    "stripes": (("beit-c", "deit-c"), "deit-c", 78),
    "clutter": (("beit-e", "deit-e"), "deit-e", 79),
}
FOLDERS = ("red", "green", "blue")
PER_FOLDER = 12
# (the colour a scene really shows, the folder it is filed under): the planted label errors
PLANTED = (("red", "green"), ("green", "blue"), ("blue", "red"))


def model_files(loaded) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        loaded.model.save_pretrained(folder)
        loaded.processor.save_pretrained(folder)
        files = {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}
    files["README.md"] = b"---\nlicense: mit\ntags:\n- image-classification\n---\n# A colour model trained in a test\n"
    return files


@pytest.fixture(scope="session")
def colour_models(request) -> tuple[str, ...]:
    """The three models of the main set, served by the Hub double under MODELS' ids."""
    cache = request.config.cache.mkdir("explain-models")
    for repo_id, case in MODELS.items():
        loaded = cached_model(case, cache) if case else untrained(BEIT_CASE, seed=2024)
        HUB.add_repo(repo_id, model_files(loaded))
    return tuple(MODELS)


def write_scenes(root: Path, names: dict[str, str] | None = None, case=DEIT_CASE, seed: int = 77) -> list[str]:
    """Class folders of held-out scenes under ``root`` (folder names via ``names``); returns the planted paths."""
    rng = np.random.default_rng(seed)
    wanted = {colour: PER_FOLDER for colour in FOLDERS}
    planted_left = list(PLANTED)
    planted = []
    while any(wanted.values()) or planted_left:
        image, label, _ = scene(case, rng, present=True)
        colour = FOLDERS[label - 1]
        filed = colour
        if planted_left and planted_left[0][0] == colour:
            filed = planted_left.pop(0)[1]
        elif wanted[colour]:
            wanted[colour] -= 1
        else:
            continue
        folder = root / (names or {}).get(filed, filed)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"scene-{len(list(folder.iterdir())):03d}.png"
        image.save(path)
        if filed != colour:
            planted.append(path.relative_to(root).as_posix())
    return planted


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("scenes")
    return root, write_scenes(root)


def run(folder: Path, models, by_hand=None):
    service = DemoService(Settings())
    evaluation = service.evaluate(read_folder(folder), models, by_hand, 2)
    list(evaluation.rows())
    return evaluation.report()


@pytest.fixture(scope="module")
def report(colour_models, scenes):
    return run(scenes[0], colour_models).data


def folder_of(label: str, mapping: dict[str, list[str]]) -> str:
    return next((folder for folder, labels in mapping.items() if label in labels), OTHER)


def test_the_trained_models_are_right_far_more_often_than_the_redrawn_one(report):
    accuracy = {key: figures["accuracy"] for key, figures in report["models"].items()}
    assert accuracy["tests/colour-beit"] > 0.8 and accuracy["tests/colour-deit"] > 0.8
    assert accuracy["tests/colour-random"] < 0.6
    assert report["images"] == 3 * PER_FOLDER + len(PLANTED) and report["classes"] == sorted(FOLDERS)


def test_every_figure_equals_scikit_learn_and_scipy_on_the_reports_own_rows(report):
    classes = report["classes"]
    correct_by_model = {}
    for key, figures in report["models"].items():
        mapping = report["mapping"][key]
        rows = [row for row in report["rows"] if key in row["predictions"]]
        truth = [row["truth"] for row in rows]
        predicted = [folder_of(row["predictions"][key]["label"], mapping) for row in rows]
        correct = np.array([row["predictions"][key]["correct"] for row in rows], dtype=bool)
        correct_by_model[key] = correct
        assert correct.tolist() == [t == p for t, p in zip(truth, predicted, strict=True)]
        assert figures["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        assert figures["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=classes, average="macro"))
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, predicted, labels=classes, zero_division=0
        )
        for number, folder in enumerate(classes):
            assert figures["per_class"][folder] == pytest.approx(
                {
                    "precision": precision[number],
                    "recall": recall[number],
                    "f1": f1[number],
                    "support": support[number],
                }
            )
        expected = confusion_matrix(truth, predicted, labels=[*classes, OTHER])[: len(classes)]
        assert figures["confusion"]["matrix"] == expected.tolist()
        interval = bootstrap(
            (correct.astype(float),),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval
        if correct.min() != correct.max():
            assert figures["accuracy_ci95"] == pytest.approx([interval.low, interval.high])
        assert figures["accuracy_ci95"][0] <= figures["accuracy"] <= figures["accuracy_ci95"][1]
        confidence = np.array([row["predictions"][key]["probability"] for row in rows])
        assert figures["ece"] == pytest.approx(loop_ece(confidence, correct))
        assert figures["top_k_accuracy"] >= figures["accuracy"]
    for pair in report["pairs"]:
        a, b = correct_by_model[pair["a"]], correct_by_model[pair["b"]]
        a_only, b_only = int(np.sum(a & ~b)), int(np.sum(b & ~a))
        assert (pair["a_only_right"], pair["b_only_right"]) == (a_only, b_only)
        expected_p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
        assert pair["mcnemar_p"] == pytest.approx(expected_p)
    trained_vs_random = next(pair for pair in report["pairs"] if pair["b"] == "tests/colour-random")
    assert trained_vs_random["mcnemar_p"] < 0.01


def loop_ece(confidence: np.ndarray, correct: np.ndarray) -> float:
    """Expected calibration error, bin by bin as its definition reads (15 equal-width bins, the last one closed)."""
    total = 0.0
    for number in range(CALIBRATION_BINS):
        low, high = number / CALIBRATION_BINS, (number + 1) / CALIBRATION_BINS
        inside = (confidence >= low) & ((confidence < high) | (number == CALIBRATION_BINS - 1))
        if inside.any():
            total += inside.sum() / len(confidence) * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def test_the_top_k_accuracy_counts_the_truth_among_the_k_most_likely(report, scenes, colour_models):
    service = DemoService(Settings())
    root = scenes[0]
    files = [(row["path"], str(root / row["path"])) for row in report["rows"]]
    for key in colour_models:
        mapping = report["mapping"][key]
        results = list(service.classify_files(files, key, 2))
        hits = [
            any(label in mapping[row["truth"]] for label in result.scores)
            for row, result in zip(report["rows"], results, strict=True)
        ]
        assert report["models"][key]["top_k_accuracy"] == pytest.approx(np.mean(hits))


@pytest.mark.parametrize("name", list(SETS))
def test_the_planted_label_errors_lead_the_suspect_list_on_each_independent_set(name, request, tmp_path):
    trained, scenes_of, seed = SETS[name]
    cache = request.config.cache.mkdir("explain-models")
    models = []
    for case_name in trained:
        models.append(f"tests/{name}-{case_name}")
        HUB.add_repo(models[-1], model_files(cached_model(CASE[case_name], cache)))
    models.append(f"tests/{name}-random")  # a model near chance must neither make nor hide a suspect
    HUB.add_repo(models[-1], model_files(untrained(CASE[trained[0]], seed=seed)))
    planted = set(write_scenes(tmp_path, case=CASE[scenes_of], seed=seed))
    suspects = run(tmp_path, models).data["suspect_labels"]
    assert len(planted) == len(PLANTED)
    assert set(suspects[: len(planted)]) == planted
    assert len(suspects) <= len(planted) + 2  # a short list, not every mistake of the weak model


def test_a_map_gives_the_same_figures_as_renamed_folders(colour_models, report, tmp_path):
    names = {"red": "rouge", "green": "vert", "blue": "bleu"}
    write_scenes(tmp_path, names)
    mapped = run(tmp_path, colour_models, {new: (old,) for old, new in names.items()}).data
    rename = {new: old for old, new in names.items()}
    for key, figures in report["models"].items():
        other = mapped["models"][key]
        assert other["accuracy"] == figures["accuracy"] and other["macro_f1"] == figures["macro_f1"]
        assert {rename[folder]: values for folder, values in other["per_class"].items()} == figures["per_class"]
    assert [rename[path.split("/")[0]] for path in mapped["suspect_labels"]] == [
        path.split("/")[0] for path in report["suspect_labels"]
    ]


def test_the_command_line_exit_codes(colour_models, scenes, tmp_path, capsys):
    root = scenes[0]
    output = tmp_path / "report.json"
    assert main(["evaluate", str(root), "--model", colour_models[0], "--top-k", "2", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and colour_models[0] in out
    assert json.loads(output.read_text())["images"] == 3 * PER_FOLDER + len(PLANTED)

    damaged = tmp_path / "damaged"
    shutil.copytree(root, damaged)
    (damaged / "red" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)  # starts like a JPEG
    assert main(["evaluate", str(damaged), "--model", colour_models[0]]) == 1
    assert "could not be evaluated" in capsys.readouterr().err

    one_folder = tmp_path / "one"
    shutil.copytree(root / "red", one_folder / "red")
    unnamed = tmp_path / "unnamed"
    for folder in ("x", "y"):
        shutil.copytree(root / "red", unnamed / folder)
    for argv, fragment in [
        (["evaluate", str(root), "--model", "resnet50"], "Unknown model"),
        (["evaluate", str(one_folder), "--model", colour_models[0]], "at least two class folders"),
        (["evaluate", str(unnamed), "--model", colour_models[0]], "has no label for any of the folders"),
        (["evaluate", str(root), "--model", colour_models[0], "--map", "purple=red"], "holds no images"),
        (["evaluate", str(root), "--model", colour_models[0], "--map", "red=crimson"], "No chosen model"),
    ]:
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        assert fragment in capsys.readouterr().err


def test_the_ray_engine_gives_the_local_engines_report(colour_models, scenes, tmp_path):
    local, ray = tmp_path / "local.json", tmp_path / "ray.json"
    common = ["evaluate", str(scenes[0]), "--model", colour_models[0], "--model", colour_models[1], "--top-k", "2"]
    assert main([*common, "--output", str(local)]) == 0
    assert main([*common, "--output", str(ray), "--engine", "ray"]) == 0
    assert without_rates(json.loads(ray.read_text())) == without_rates(json.loads(local.read_text()))


def without_rates(report: dict) -> dict:
    """The report without the images-per-second figures (timings differ from run to run), its numbers rounded to
    5 decimals (the workers' thread count may move the last digits of a probability)."""
    for figures in report["models"].values():
        assert figures.pop("images_per_s") > 0
    return rounded(report)


def rounded(value):
    if isinstance(value, float):
        return round(value, 5)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def zipped(members: dict[str, bytes], *, links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16  # a symbolic link
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


PNG = (Path(__file__).parent / "data" / "fashion-mnist").glob("*.png").__next__().read_bytes()


@pytest.mark.parametrize(
    ("archive", "limits", "fragment"),
    [
        pytest.param(
            zipped({"../evil/a.png": PNG, "b/c.png": PNG}), ArchiveLimits(), "outside the archive", id="traversal"
        ),
        pytest.param(
            zipped({"/etc/a.png": PNG, "b/c.png": PNG}), ArchiveLimits(), "outside the archive", id="absolute"
        ),
        pytest.param(zipped({"a/b.png": PNG}, links=("a/link.png",)), ArchiveLimits(), "is a link", id="link"),
        pytest.param(
            zipped({"a/b.png": PNG, "a/inner.zip": zipped({"x/y.png": PNG})}),
            ArchiveLimits(),
            "archive itself",
            id="nested",
        ),
        pytest.param(
            zipped({"a/b.png": PNG, "a/c.bin": zipped({"x/y.png": PNG})}),
            ArchiveLimits(),
            "archive itself",
            id="nested_by_content",
        ),
        pytest.param(zipped({"a/bomb.png": b"\0" * 5_000_000}), ArchiveLimits(), "zip bombs", id="bomb"),
        pytest.param(
            zipped({f"a/{n}.png": PNG for n in range(12)}), ArchiveLimits(max_files=10), "12 files", id="too_many"
        ),
        pytest.param(
            zipped({"a/b.png": PNG * 50, "c/d.png": PNG * 50}),
            ArchiveLimits(max_bytes=len(PNG) * 60),
            "unpacks to",
            id="too_big",
        ),
        pytest.param(b"PK\x03\x04 not really a zip", ArchiveLimits(), "not a readable .zip", id="not_a_zip"),
    ],
)
def test_a_hostile_archive_is_refused_with_a_sentence_and_nothing_is_written(
    archive, limits, fragment, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = set(Path(tempfile.gettempdir()).iterdir())
    with pytest.raises(InvalidRequestError) as caught:
        read_zip(archive, limits)
    message = str(caught.value)
    assert fragment in message and message.endswith(".") and message.count(". ") == 0
    assert list(tmp_path.iterdir()) == [] and set(Path(tempfile.gettempdir()).iterdir()) <= before


def test_a_zip_of_class_folders_inside_a_top_folder_reads_as_the_folder_does(scenes):
    root = scenes[0]
    members = {
        f"photos/{path.relative_to(root).as_posix()}": path.read_bytes() for path in sorted(root.rglob("*.png"))
    }
    members["photos/notes.txt"] = b"not a row"
    members["photos/red/notes.txt"] = b"not an image"
    labelled = read_zip(zipped(members))
    from_folder = read_folder(root)
    assert [(image.path, image.truth) for image in labelled.images] == [
        (image.path, image.truth) for image in from_folder.images
    ]
    assert (labelled.skipped_top_level, labelled.skipped_not_images) == (1, 1)
    assert zip_folders(zipped(members)) == labelled.classes  # the page's table, from the zip's directory alone


def zip_of_folder(root: Path) -> bytes:
    return zipped({path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.png"))})


@pytest.mark.app
def test_evaluate_over_http_equals_the_command_line(colour_models, scenes, tmp_path):
    from gradio_client import Client, handle_file

    from tests.conftest import running_app

    archive = tmp_path / "scenes.zip"
    archive.write_bytes(zip_of_folder(scenes[0]))
    hostile = tmp_path / "hostile.zip"
    hostile.write_bytes(zipped({"../outside.png": PNG, "a/b.png": PNG}))
    output = tmp_path / "cli.json"
    models = list(colour_models[:2])
    assert main(["evaluate", str(scenes[0]), *(f"--model={model}" for model in models), "--output", str(output)]) == 0
    with running_app(tmp_path) as app:
        client = Client(app.url, verbose=False)
        try:
            table, summary, report_path = client.predict(handle_file(str(archive)), models, api_name="/evaluate")
            with pytest.raises(Exception, match="points outside the archive"):
                client.predict(handle_file(str(hostile)), models, api_name="/evaluate")
            again = client.predict(handle_file(str(archive)), models, api_name="/evaluate")  # still serving
        finally:
            client.close()
    over_http = json.loads(Path(report_path).read_text())
    assert without_rates(over_http) == without_rates(json.loads(output.read_text()))
    assert [row[0] for row in table["data"]] == models and "39 images" in summary
    assert json.loads(Path(again[2]).read_text())["images"] == over_http["images"]
    assert not (tmp_path.parent / "outside.png").exists()
