"""The models the demo offers: plain data, no loading code.

Each entry says where the checkpoint lives on the Hub, what it recognises, what input it expects and
what accuracy its own model card reports (and where that number comes from), so the UI can show an
honest card next to every prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

HUB_URL = "https://huggingface.co"


class CheckpointFormat(StrEnum):
    """How the files of a Hub repo are laid out."""

    TRANSFORMERS = "transformers"  # config.json + preprocessor_config.json + weights, loaded by transformers
    TIMM = "timm"  # timm's config.json (architecture, pretrained_cfg) + model.safetensors with timm's names


@dataclass(frozen=True)
class Metric:
    """A number a model card reports, with where it comes from."""

    name: str
    value: float
    source: str


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry."""

    key: str  # short, stable id used in URLs, the API and BEIT_DEMO_PRELOAD
    title: str  # what the dropdown shows
    repo_id: str
    revision: str  # "main" unless a commit id has been verified against the Hub
    architecture: str
    checkpoint_format: CheckpointFormat
    recognises: str  # one sentence for the model card
    expected_input: str  # what kind of image gives meaningful results
    num_labels: int
    license: str
    label_space: str = ""  # models with the same label space can be compared label for label
    input_size: int = 224  # side of the square the model sees, after its processor resizes/crops
    metrics: tuple[Metric, ...] = ()
    examples: tuple[str, ...] = ()  # file names under examples/, best first

    @property
    def hub_url(self) -> str:
        return f"{HUB_URL}/{self.repo_id}"


_PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg", "horse.jpg")

CATALOG: tuple[ModelSpec, ...] = (
    ModelSpec(
        key="beit-in22k",
        title="BEiT base, ImageNet-22k (21,841 classes)",
        repo_id="microsoft/beit-base-patch16-224-pt22k-ft22k",
        revision="main",
        architecture="BeitForImageClassification",
        checkpoint_format=CheckpointFormat.TRANSFORMERS,
        recognises="21,841 everyday objects, animals, plants, scenes and materials (ImageNet-22k).",
        expected_input="Any photo; it is resized to 224 x 224 without cropping.",
        num_labels=21841,
        license="apache-2.0",
        label_space="imagenet-22k",
        examples=_PHOTOS,
    ),
    ModelSpec(
        key="beit-in1k-timm",
        title="BEiT base, ImageNet-1k (timm checkpoint)",
        repo_id="timm/beit_base_patch16_224.in22k_ft_in22k_in1k",
        revision="main",
        architecture="beit_base_patch16_224 (timm), converted to BeitForImageClassification",
        checkpoint_format=CheckpointFormat.TIMM,
        recognises="The 1,000 ImageNet-1k classes.",
        expected_input="Any photo; the shorter side is resized to 248 px and the centre 224 x 224 is kept.",
        num_labels=1000,
        license="apache-2.0",
        label_space="imagenet-1k",
        examples=_PHOTOS,
    ),
    ModelSpec(
        key="facemask-beit",
        title="Face mask detector (BEiT)",
        repo_id="AkshatSurolia/BEiT-FaceMask-Finetuned",
        revision="main",
        architecture="BeitForImageClassification",
        checkpoint_format=CheckpointFormat.TRANSFORMERS,
        recognises="Whether a face wears a mask (2 classes).",
        expected_input="A close-up of one face, roughly centred.",
        num_labels=2,
        license="apache-2.0",
        label_space="face-mask",
        metrics=(Metric("eval accuracy", 0.975, "model card, Face-Mask18K evaluation split"),),
        examples=("astronaut_face_mask.jpg", "astronaut_face.jpg", "astronaut.jpg"),
    ),
    ModelSpec(
        key="facemask-deit",
        title="Face mask detector (DeiT)",
        repo_id="AkshatSurolia/DeiT-FaceMask-Finetuned",
        revision="main",
        architecture="DeiTForImageClassification (fine-tuned from facebook/deit-base-distilled-patch16-224)",
        checkpoint_format=CheckpointFormat.TRANSFORMERS,
        recognises="Whether a face wears a mask (2 classes: No Mask, Mask).",
        expected_input="A close-up of one face, roughly centred.",
        num_labels=2,
        license="not stated here: check the model card before reuse",
        label_space="face-mask",
        metrics=(Metric("eval accuracy", 0.9894, "model card, Face-Mask18K evaluation split"),),
        examples=("astronaut_face_mask.jpg", "astronaut_face.jpg", "astronaut.jpg"),
    ),
    ModelSpec(
        key="fashion-mnist",
        title="Fashion-MNIST garments (BEiT)",
        repo_id="thilinadj/image_classification_tdj_fashion-mnist",
        revision="main",
        architecture="BeitForImageClassification",
        checkpoint_format=CheckpointFormat.TRANSFORMERS,
        recognises="10 Fashion-MNIST garment classes (T-shirt/top, Trouser, ..., Ankle boot).",
        expected_input=(
            "A single garment, white on a black background, like the 28 x 28 grayscale Fashion-MNIST tiles; "
            "ordinary photos give arbitrary answers."
        ),
        num_labels=10,
        license="not stated here: check the model card before reuse",
        label_space="fashion-mnist",
        examples=(
            "fashion_0_tshirt.png",
            "fashion_1_trouser.png",
            "fashion_7_sneaker.png",
            "fashion_9_ankle_boot.png",
        ),
    ),
)

DEFAULT_MODEL_KEY = "beit-in22k"


class UnknownModelError(KeyError):
    """A model key that is not in the catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def get_spec(key: str) -> ModelSpec:
    """Return the catalog entry for ``key``.

    Raises:
        UnknownModelError: ``key`` is not in the catalog; the message lists the valid keys.
    """
    for spec in CATALOG:
        if spec.key == key:
            return spec
    valid = ", ".join(spec.key for spec in CATALOG)
    raise UnknownModelError(f"Unknown model {key!r}. Valid models: {valid}.")
