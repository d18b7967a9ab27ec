"""The catalog is data: check it is complete, consistent and honest."""

import re
from urllib.parse import urlsplit

import pytest

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY, HUB_URL, CheckpointFormat, get_entry
from beit_demo.errors import UnknownModelError
from beit_demo.ui.shared import EXAMPLES_DIR

EXPECTED_REPOS = {
    "microsoft/beit-base-patch16-224-pt22k-ft22k",
    "timm/beit_base_patch16_224.in22k_ft_in22k_in1k",
    "AkshatSurolia/BEiT-FaceMask-Finetuned",
    "AkshatSurolia/DeiT-FaceMask-Finetuned",
    "thilinadj/image_classification_tdj_fashion-mnist",
}
CC0_OR_PUBLIC_DOMAIN = {
    "chelsea.jpg",
    "coffee.jpg",
    "astronaut.jpg",
    "rocket.jpg",
    "horse.jpg",
    "astronaut_face.jpg",  # crops of astronaut.jpg made by this project
    "astronaut_face_mask.jpg",
}


def test_the_five_seed_checkpoints_are_there_once():
    assert {spec.repo_id for spec in CATALOG} == EXPECTED_REPOS
    assert len({spec.key for spec in CATALOG}) == len({spec.title for spec in CATALOG}) == len(CATALOG) == 5


def test_default_is_the_imagenet22k_beit():
    assert get_entry(DEFAULT_MODEL_KEY).repo_id == "microsoft/beit-base-patch16-224-pt22k-ft22k"


def test_revisions_are_main_or_a_full_commit_id():
    for spec in CATALOG:
        assert spec.source.revision == "main" or re.fullmatch(r"[0-9a-f]{40}", spec.source.revision), spec.key


def test_only_the_timm_checkpoint_is_in_timm_format():
    formats = {spec.repo_id: spec.source.checkpoint_format for spec in CATALOG}
    assert formats.pop("timm/beit_base_patch16_224.in22k_ft_in22k_in1k") is CheckpointFormat.TIMM
    assert set(formats.values()) == {CheckpointFormat.TRANSFORMERS}


def test_reported_accuracies_match_the_model_cards():
    reported = {spec.repo_id: [(m.name, m.value) for m in spec.metrics] for spec in CATALOG}
    assert reported["AkshatSurolia/BEiT-FaceMask-Finetuned"] == [("eval accuracy", 0.975)]
    assert reported["AkshatSurolia/DeiT-FaceMask-Finetuned"] == [("eval accuracy", 0.9894)]
    assert all(m.source for spec in CATALOG for m in spec.metrics)


def test_label_counts():
    assert {spec.key: spec.num_labels for spec in CATALOG} == {
        "beit-in22k": 21841,
        "beit-in1k-timm": 1000,
        "facemask-beit": 2,
        "facemask-deit": 2,
        "fashion-mnist": 10,
    }


def test_every_example_exists_and_the_first_ones_are_free_photos():
    for spec in CATALOG:
        assert spec.examples, spec.key
        for name in spec.examples:
            assert (EXAMPLES_DIR / name).is_file(), name
    photo_models = [spec for spec in CATALOG if spec.key != "fashion-mnist"]  # its examples are MIT-licensed tiles
    assert all(set(spec.examples) <= CC0_OR_PUBLIC_DOMAIN for spec in photo_models)


def test_hub_links():
    # A link for visitors to follow (the Hub's own pages, whatever HF_ENDPOINT says), never fetched by the tests.
    link = urlsplit(get_entry("facemask-deit").source.hub_url)
    assert (link.scheme, link.netloc) == ("https", urlsplit(HUB_URL).netloc)
    assert link.path == "/AkshatSurolia/DeiT-FaceMask-Finetuned"


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(UnknownModelError) as caught:
        get_entry("resnet")
    message = str(caught.value)
    assert "'resnet'" in message
    assert all(spec.key in message for spec in CATALOG)
