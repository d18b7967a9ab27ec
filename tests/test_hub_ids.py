"""Typed Hub ids: any image classifier of transformers' mapping loads, pinned to a commit; nothing unsafe does.

Every repo here is built by the test (random weights, tiny sizes) and served by the Hub double, which records each
request: "no weights requested" and "no Hub request at all" are read from its log.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from beit_demo.catalog import get_entry
from beit_demo.config import Settings
from beit_demo.errors import DemoError, InvalidRequestError, ModelLoadError, ModelUnavailableError, UnknownModelError
from beit_demo.hub_ids import parse_hub_id
from beit_demo.service import DemoService
from beit_demo.testing import hub_models
from beit_demo.ui import texts
from tests.conftest import HUB, PHOTOS

OWNER = "tests-hub-ids"
PHOTO = PHOTOS / "coffee.jpg"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def family_repo(family: str) -> str:
    return f"{OWNER}/tiny-{family}"


@pytest.fixture(scope="module", autouse=True)
def served_repos() -> dict[str, str]:
    """Repo id -> its commit, for the five families and the repos to refuse."""
    commits = {
        family_repo(family): HUB.add_repo(family_repo(family), hub_models.family_files(family))
        for family in hub_models.FAMILIES
    }
    commits[f"{OWNER}/text-classifier"] = HUB.add_repo(f"{OWNER}/text-classifier", hub_models.text_classifier_files())
    commits[f"{OWNER}/remote-code"] = HUB.add_repo(f"{OWNER}/remote-code", hub_models.remote_code_files())
    commits[f"{OWNER}/gated"] = HUB.add_repo(f"{OWNER}/gated", hub_models.family_files("vit"), gated=True)
    return commits


def service(**settings) -> DemoService:
    return DemoService(Settings(**settings))


def weight_requests(repo_id: str) -> int:
    return sum(HUB.count(repo_id=repo_id, filename=name) for name in WEIGHT_FILES)


def snapshot_folder(svc: DemoService, entry) -> Path:  # a CatalogEntry
    from beit_demo import hub

    return hub.fetch(entry.source).directory


def reference_probabilities(folder: Path, picture) -> dict[str, float]:  # a PIL image
    """What plain transformers (no speed-ups, no batching) says the model gives the picture."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from beit_demo.models.loading import default_processor

    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    if (folder / "preprocessor_config.json").is_file():
        processor = AutoImageProcessor.from_pretrained(folder)
    else:
        processor = default_processor(model.config)
    with torch.inference_mode():
        logits = model(**processor(images=[picture], return_tensors="pt")).logits[0]
    probabilities = logits.softmax(-1).tolist()
    return {model.config.id2label[index]: value for index, value in enumerate(probabilities)}


@pytest.mark.parametrize("family", hub_models.FAMILIES)
def test_each_family_classifies_a_real_photo_with_its_own_labels_as_transformers_does(family, served_repos):
    svc = service()
    repo_id = family_repo(family)
    labels = hub_models.FAMILY_LABELS[family]
    result = svc.classify(str(PHOTO), repo_id, top_k=len(labels))

    assert set(result.scores) == set(labels)
    assert result.entry.source.revision == served_repos[repo_id]  # pinned to the commit, not "main"
    assert result.entry.hub.has_preprocessor is (family not in hub_models.WITHOUT_PREPROCESSOR)
    expected = reference_probabilities(
        snapshot_folder(svc, result.entry), svc.decode(str(PHOTO), result.entry.input_size)
    )
    for label, probability in expected.items():
        assert result.scores[label] == pytest.approx(probability, abs=1e-4)
    with svc.registry.use(result.entry.source) as loaded:
        attention = loaded.model.config._attn_implementation
    # The fastest attention each family has: SDPA for the transformers, none to choose for the convolutional ones.
    assert attention == ("sdpa" if family in ("vit", "swin") else "eager")


def test_the_card_says_what_the_files_say_and_that_it_is_not_from_our_catalog(served_repos):
    svc = service()
    convnext = svc.entry(family_repo("convnext"))
    card = texts.model_card(convnext)
    assert "Not from our catalog" in card
    assert "ConvNextForImageClassification" in card
    assert "4 (oak leaf, maple leaf, birch leaf, pine needle)" in card
    assert "mit (from its model card)" in card
    assert served_repos[family_repo("convnext")][:12] in card
    assert f"/{family_repo('convnext')}/tree/{served_repos[family_repo('convnext')]}" in card
    assert "convnext family's default" in card  # it has no preprocessor_config.json
    assert "from its preprocessor_config.json" in texts.model_card(svc.entry(family_repo("vit")))
    assert "Not from our catalog" not in texts.model_card(get_entry("beit-in22k"))


@pytest.mark.parametrize(
    ("repo", "sentence", "config_fetched"),
    [
        ("text-classifier", "BertForSequenceClassification', not an image classifier", True),
        ("remote-code", "needs its own Python code to load (auto_map", True),
        ("gated", "is gated on the Hub", False),
    ],
)
def test_a_repo_that_is_not_a_safe_image_classifier_is_refused_before_any_weight(repo, sentence, config_fetched):
    repo_id = f"{OWNER}/{repo}"
    with pytest.raises(ModelUnavailableError, match=re.escape(sentence)) as refused:
        service().classify(str(PHOTO), repo_id)
    assert str(refused.value).count(". ") == 0 and str(refused.value).endswith(".")
    assert weight_requests(repo_id) == 0
    assert HUB.count("GET", repo_id=repo_id, filename="config.json") == (1 if config_fetched else 0)
    assert not any(request.authorized for request in HUB.log())  # never a token


def test_a_repo_over_the_size_cap_is_refused_from_its_listing_before_any_file():
    repo_id = family_repo("vit")
    with pytest.raises(ModelUnavailableError, match="more than this demo loads from the Hub"):
        service(max_model_bytes=10_000).classify(str(PHOTO), repo_id)
    assert HUB.count(repo_id=repo_id, filename="config.json") == 0
    assert weight_requests(repo_id) == 0


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (lambda config: config.update(id2label={"0": "a", "2": "b"}), "numbers its classes with gaps"),
        (lambda config: config.update(id2label={"0": "x" * 500}), "longer than 120 characters"),
        (lambda config: config.update(id2label={str(i): f"c{i}" for i in range(40_000)}), "40,000 classes"),
        (lambda config: config.update(id2label={"0": "bell\x07"}), "not printable"),
        (lambda config: config.update(image_size=100_000), "asks for images of"),
        (lambda config: config.pop("model_type"), "not an image classifier"),
    ],
)
def test_a_config_with_odd_labels_or_sizes_is_refused_before_any_weight(change, sentence):
    files = hub_models.family_files("vit", seed=3)
    config = json.loads(files["config.json"])
    change(config)
    files["config.json"] = json.dumps(config).encode()
    repo_id = f"{OWNER}/odd-config"
    HUB.add_repo(repo_id, files)
    with pytest.raises(ModelUnavailableError, match=sentence):
        service().entry(repo_id)
    assert weight_requests(repo_id) == 0


HOSTILE_IDS = [  # the URL of the Hub double among them: if it were fetched, the double's log would show it
    "", " ", "..", "../..", "../../etc/passwd", "/tmp", "/etc/passwd", "./models/x", "~/models", "owner/../../etc",
    "owner/name/extra", "owner//name", "/owner/name", "owner/name/", "C:\\Windows\\System32", "\\\\server\\share",
    "file:///etc/passwd", "http://127.0.0.1:8000/x", f"{HUB.url}/owner/name", "hf://owner/name",
    "owner/name\x00", "owner\x00/name", "owner/na\nme", "owner/name\n", " owner/name", "owner/name ", "owner /name",
    "m\u0456crosoft/beit", "owner\uff0fname", "owner/name\u200b", "\u00f3wner/name", "a" * 300, "o/" + "n" * 97,
    "owner/name@", "owner/name@../../x", "owner/name@main@x", "owner/name@refs//pr", "owner/name@-bad",
    "owner/-name", "owner/name.", "owner/name--x", "owner/name.git", "owner/na..me", "owner/name@main;rm -rf /",
    "$(id)/name", "owner/name?x=1", "owner/name#x", "%2e%2e/%2e%2e", None, 42, ["owner/name"],
]  # fmt: skip


def test_hostile_ids_are_refused_with_a_sentence_without_a_hub_request_or_a_file_touched(
    private_caches, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    svc = service()
    assert len(HOSTILE_IDS) >= 30
    for hostile in HOSTILE_IDS:
        with pytest.raises((InvalidRequestError, UnknownModelError)) as refused:
            svc.classify(str(PHOTO), hostile)
        message = str(refused.value)
        assert message.endswith(".") and message.isprintable(), repr(hostile)
    assert HUB.log() == []
    assert sorted(tmp_path.rglob("*")) == before  # no cache folder made, nothing written
    assert svc.classify(str(PHOTO), family_repo("vit")).scores  # and the service still answers


def test_a_local_folder_named_like_a_hub_id_is_never_loaded(tmp_path, monkeypatch):
    """transformers loads any existing folder given as a model id: the demo only ever asks the Hub."""
    from transformers import AutoModelForImageClassification

    monkeypatch.chdir(tmp_path)
    (tmp_path / "decoy").mkdir()
    model = AutoModelForImageClassification.from_config(hub_models._config("vit"))
    model.save_pretrained(tmp_path / "decoy" / "model")
    with pytest.raises(ModelUnavailableError, match="was not found on the Hub"):
        service().classify(str(PHOTO), "decoy/model")
    assert HUB.count(repo_id="decoy/model") >= 1  # the Hub was asked, and said no


def test_a_pickle_that_would_run_code_is_never_unpickled_unsafely(tmp_path):
    marker = tmp_path / "code-ran"
    repo_id = f"{OWNER}/pickle-bomb"
    HUB.add_repo(repo_id, hub_models.pickle_bomb_files(marker))
    svc = service()
    with pytest.raises(ModelLoadError, match=r"could not be loaded \(UnpicklingError\)"):
        svc.classify(str(PHOTO), repo_id)
    assert HUB.count("GET", repo_id=repo_id, filename="pytorch_model.bin") == 1  # it was fetched, and refused
    assert not marker.exists()
    assert svc.classify(str(PHOTO), "beit-in22k").scores  # the service still answers


def test_the_revision_is_resolved_to_a_commit_once_and_that_commit_is_used_from_then_on():
    repo_id = f"{OWNER}/moving"
    first = HUB.add_repo(repo_id, hub_models.family_files("vit", seed=1))
    svc = service()
    assert svc.entry(repo_id).source.revision == first
    second = HUB.add_repo(repo_id, hub_models.family_files("vit", seed=2))  # main moves on
    HUB.clear_log()
    result = svc.classify(str(PHOTO), repo_id)
    assert result.entry.source.revision == first
    resolved = [request.path for request in HUB.log() if "/resolve/" in request.path]
    assert resolved and all(f"/resolve/{first}/" in path for path in resolved)
    assert svc.entry(f"{repo_id}@{second}").source.revision == second  # asked for by commit: that one
    with pytest.raises(ModelUnavailableError, match="has no revision 'v9'.*check the name after the @"):
        svc.entry(f"{repo_id}@v9")


def test_typed_models_have_their_own_small_bound_and_never_push_catalog_models_out():
    svc = service(max_models=1, max_hub_models=2)
    svc.classify(str(PHOTO), "beit-in22k")
    for family in ("vit", "resnet", "swin"):
        svc.classify(str(PHOTO), family_repo(family))
    loaded = {source.repo_id for source in svc.registry.loaded_sources()}
    assert loaded == {get_entry("beit-in22k").repo_id, family_repo("resnet"), family_repo("swin")}  # vit went first

    resnet, swin = svc.entry(family_repo("resnet")), svc.entry(family_repo("swin"))
    busy = pytest.raises(ModelUnavailableError, match="models from the Hub right now")
    with svc.registry.use(resnet.source), svc.registry.use(swin.source), busy:  # two visitors are using both
        svc.classify(str(PHOTO), family_repo("vit"))
    assert svc.classify(str(PHOTO), family_repo("vit")).scores  # once one is free, it makes room


def test_a_catalog_repo_typed_as_a_hub_id_is_the_catalog_model_and_asks_the_hub_nothing():
    svc = service()
    assert svc.entry("AkshatSurolia/BEiT-FaceMask-Finetuned") == get_entry("facemask-beit")
    assert HUB.log() == []


def test_typed_ids_can_be_switched_off():
    with pytest.raises(UnknownModelError, match="Valid models: beit-in22k"):
        service(hub_models=False).entry(family_repo("vit"))
    assert HUB.log() == []


def test_explain_works_for_a_typed_vit_and_says_why_not_for_a_convnext():
    svc = service()
    explained = svc.explain(str(PHOTO), family_repo("vit"))
    assert explained.label in hub_models.FAMILY_LABELS["vit"]
    assert np.isfinite(explained.relevance).all() and explained.relevance.max() > 0
    with pytest.raises(InvalidRequestError, match="ViT-style models"):
        svc.explain(str(PHOTO), family_repo("convnext"))


def test_compare_puts_a_typed_model_beside_a_catalog_model():
    svc = service()
    *_, final = svc.compare(str(PHOTO), ["beit-in22k", family_repo("resnet")], top_k=2)
    assert [entry.key for entry in final.entries] == ["beit-in22k", family_repo("resnet")]
    assert set(final.outcomes[family_repo("resnet")].classification.scores) <= set(hub_models.FAMILY_LABELS["resnet"])
    assert final.outcomes["beit-in22k"].classification is not None
    with pytest.raises(InvalidRequestError, match="at most 2 models from the Hub"):
        next(svc.compare(str(PHOTO), [family_repo(family) for family in ("vit", "resnet", "swin")]))


def test_parse_hub_id_keeps_the_revision_and_accepts_the_hubs_names():
    assert parse_hub_id("google/vit-base-patch16-224").revision is None
    assert parse_hub_id("owner/name@refs/pr/1").revision == "refs/pr/1"
    assert str(parse_hub_id("My_Org/model.v2@v1.0")) == "My_Org/model.v2@v1.0"
    with pytest.raises(DemoError):
        parse_hub_id("owner/name@" + "a" * 101)


def test_with_the_hub_switched_off_a_typed_id_gets_a_sentence_and_no_request(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelUnavailableError, match=r"switched off here \(HF_HUB_OFFLINE=1\)"):
        service().entry(f"{OWNER}/never-typed-before")
    assert HUB.log() == []
