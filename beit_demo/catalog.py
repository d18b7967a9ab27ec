"""The models the demo offers: plain data, no loading code.

A `ModelSource` says where a checkpoint comes from (repo, revision, file layout, task): it is what the Hub cache
and the registry are keyed by, and a model from outside the catalog is one too. A `CatalogEntry` adds the card:
what the model recognises, what input it expects, what accuracy its own model card reports (and where that number
comes from), and the examples that suit it, so the UI can show an honest card next to every prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from beit_demo.errors import UnknownModelError

HUB_URL = "https://huggingface.co"


class CheckpointFormat(StrEnum):
    """How the files of a Hub repo are laid out."""

    TRANSFORMERS = "transformers"  # config.json + preprocessor_config.json + weights, loaded by transformers
    TIMM = "timm"  # timm's config.json (architecture, pretrained_cfg) + model.safetensors with timm's names


class Task(StrEnum):
    """What a model does with an image."""

    IMAGE_CLASSIFICATION = "image-classification"


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: the key of the Hub cache and of the registry. No card text."""

    repo_id: str
    revision: str = "main"  # "main" unless a commit id has been verified against the Hub
    checkpoint_format: CheckpointFormat = CheckpointFormat.TRANSFORMERS
    task: Task = Task.IMAGE_CLASSIFICATION

    @property
    def hub_url(self) -> str:
        return f"{HUB_URL}/{self.repo_id}"


@dataclass(frozen=True)
class Metric:
    """A number a model card reports, with where it comes from."""

    name: str
    value: float
    source: str


@dataclass(frozen=True)
class HubDetails:
    """What the card of a model from outside the catalog says beyond a catalog card: where exactly it came from."""

    requested_revision: str  # as typed after "@"; "" for the default branch
    commit: str  # the commit that revision pointed at when first asked, used from then on
    model_type: str  # transformers' family name ("vit", "convnext", ...)
    license: str  # from its model card's front matter; "" when it states none
    has_preprocessor: bool  # False: the family's default preprocessing is used
    weights_file: str
    download_bytes: int  # config, preprocessor config and weights
    labels_preview: tuple[str, ...]  # its first few class names


@dataclass(frozen=True)
class CatalogEntry:
    """One catalog model: its source and the card the UI shows beside it."""

    key: str  # short, stable id used in URLs, the API and BEIT_DEMO_PRELOAD
    title: str  # what the dropdown shows
    source: ModelSource
    architecture: str
    recognises: str  # one sentence for the model card
    expected_input: str  # what kind of image gives meaningful results
    num_labels: int
    license: str
    label_space: str = ""  # models with the same label space can be compared label for label
    input_size: int = 224  # side of the square the model sees, after its processor resizes/crops
    metrics: tuple[Metric, ...] = ()
    examples: tuple[str, ...] = ()  # file names under examples/, best first
    classifies_faces: bool = False  # trained on face crops: the demo finds the faces in a photo first
    input_adapter: str = ""  # names the step that makes a photo look like the training data (inference/adapters.py)
    hub: HubDetails | None = None  # set for a model typed by a visitor: not from our catalog

    @property
    def from_catalog(self) -> bool:
        return self.hub is None

    @property
    def repo_id(self) -> str:
        return self.source.repo_id


_PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg", "horse.jpg")

CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry(
        key="beit-in22k",
        title="BEiT base, ImageNet-22k (21,841 classes)",
        source=ModelSource("microsoft/beit-base-patch16-224-pt22k-ft22k"),
        architecture="BeitForImageClassification",
        recognises="21,841 everyday objects, animals, plants, scenes and materials (ImageNet-22k).",
        expected_input="Any photo; it is resized to 224 x 224 without cropping.",
        num_labels=21841,
        license="apache-2.0",
        label_space="imagenet-22k",
        examples=_PHOTOS,
    ),
    CatalogEntry(
        key="beit-in1k-timm",
        title="BEiT base, ImageNet-1k (timm checkpoint)",
        source=ModelSource("timm/beit_base_patch16_224.in22k_ft_in22k_in1k", checkpoint_format=CheckpointFormat.TIMM),
        architecture="beit_base_patch16_224 (timm), converted to BeitForImageClassification",
        recognises="The 1,000 ImageNet-1k classes.",
        expected_input="Any photo; the shorter side is resized to 248 px and the centre 224 x 224 is kept.",
        num_labels=1000,
        license="apache-2.0",
        label_space="imagenet-1k",
        examples=_PHOTOS,
    ),
    CatalogEntry(
        key="facemask-beit",
        title="Face mask detector (BEiT)",
        source=ModelSource("AkshatSurolia/BEiT-FaceMask-Finetuned"),
        architecture="BeitForImageClassification",
        recognises="Whether a face wears a mask (2 classes).",
        expected_input="A close-up of one face, or a photo of people: the demo finds each face and classifies it.",
        num_labels=2,
        license="apache-2.0",
        label_space="face-mask",
        metrics=(Metric("eval accuracy", 0.975, "model card, Face-Mask18K evaluation split"),),
        examples=("astronaut_face_mask.jpg", "astronaut_face.jpg", "astronaut.jpg"),
        classifies_faces=True,
    ),
    CatalogEntry(
        key="facemask-deit",
        title="Face mask detector (DeiT)",
        source=ModelSource("AkshatSurolia/DeiT-FaceMask-Finetuned"),
        architecture="DeiTForImageClassification (fine-tuned from facebook/deit-base-distilled-patch16-224)",
        recognises="Whether a face wears a mask (2 classes: No Mask, Mask).",
        expected_input="A close-up of one face, or a photo of people: the demo finds each face and classifies it.",
        num_labels=2,
        license="not stated here: check the model card before reuse",
        label_space="face-mask",
        metrics=(Metric("eval accuracy", 0.9894, "model card, Face-Mask18K evaluation split"),),
        examples=("astronaut_face_mask.jpg", "astronaut_face.jpg", "astronaut.jpg"),
        classifies_faces=True,
    ),
    CatalogEntry(
        key="fashion-mnist",
        title="Fashion-MNIST garments (BEiT)",
        source=ModelSource("thilinadj/image_classification_tdj_fashion-mnist"),
        architecture="BeitForImageClassification",
        recognises="10 Fashion-MNIST garment classes (T-shirt/top, Trouser, ..., Ankle boot).",
        expected_input=(
            "A single garment, like the 28 x 28 grayscale Fashion-MNIST tiles (white on black). A product photo is "
            "turned into such a tile first, unless you untick the adaptation."
        ),
        num_labels=10,
        license="not stated here: check the model card before reuse",
        label_space="fashion-mnist",
        examples=(
            "fashion_0_tshirt.png",
            "fashion_1_trouser.png",
            "fashion_7_sneaker.png",
            "fashion_9_ankle_boot.png",
            "fashion_product_sneaker.jpg",
            "fashion_product_dress.jpg",
            "fashion_product_bag.jpg",
        ),
        input_adapter="fashion-mnist",
    ),
)

DEFAULT_MODEL_KEY = "beit-in22k"


def get_entry(key: str) -> CatalogEntry:
    """Return the catalog entry for ``key``.

    Raises:
        UnknownModelError: ``key`` is not in the catalog; the message lists the valid keys.
    """
    for entry in CATALOG:
        if entry.key == key:
            return entry
    valid = ", ".join(entry.key for entry in CATALOG)
    raise UnknownModelError(f"Unknown model {key!r}. Valid models: {valid}.")


def entry_for(source: ModelSource) -> CatalogEntry | None:
    """The catalog entry whose model is ``source``, or None for a model from outside the catalog."""
    return next((entry for entry in CATALOG if entry.source == source), None)


def describe(source: ModelSource) -> str:
    """How a sentence names the model: "Title (owner/name)" for a catalog model, else its repo id."""
    entry = entry_for(source)
    return f"{entry.title} ({source.repo_id})" if entry else source.repo_id


def download_command(source: ModelSource) -> str:
    """The command that fetches ``source`` ahead of time, for messages that say how."""
    entry = entry_for(source)
    return f"python -m beit_demo download {entry.key if entry else source.repo_id}"
