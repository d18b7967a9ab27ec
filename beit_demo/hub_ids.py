"""A model id a visitor typed (``owner/name`` or ``owner/name@revision``) -> a validated model, before weights move.

A public demo that loads whatever id it is given is an open door: remote code, pickles that run code when loaded,
50 GB repos, local folders (transformers loads any existing path), gated repos opened with the operator's token. So a
typed id goes through these steps, each refusing with one sentence:

1. `parse_hub_id`: the id's syntax, by the Hub's own rules, in ASCII; no Hub request and no file access before it.
2. `HubModelResolver.resolve`: the repo's info, without a token (gated and private repos are refused), resolves the
   revision to a commit once; its file listing gives the size of the files the demo would fetch, under a cap.
3. ``config.json`` alone: an architecture from transformers' image-classification mapping, never ``auto_map``
   (remote code), and sane labels.

Only then does the model become a `ModelSource` pinned to that commit, which the Hub cache, the registry and the
loader use like any catalog model's.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from beit_demo import hub
from beit_demo.catalog import CATALOG, CatalogEntry, HubDetails, ModelSource
from beit_demo.errors import InvalidRequestError, ModelUnavailableError

# The Hub's rules for a repo name (and a user or organisation name): letters, digits, "-", "_" and ".", at most 96
# characters, not starting or ending with "-" or ".", no "--" or "..", not ending in ".git". ASCII only: a look-alike
# letter from another script would name another repo than the one the visitor thinks of.
_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?")
# A branch or tag name (segments may be joined by "/", as in "refs/pr/1"), or a 40-hex commit id.
_REVISION_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?")
MAX_REVISION_LENGTH = 100
MAX_TYPED_LENGTH = 96 + 1 + 96 + 1 + MAX_REVISION_LENGTH

MAX_CONFIG_BYTES = 4_000_000  # ImageNet-22k's config, with 21,841 labels, is 1.7 MB
MAX_LABELS = 30_000
MAX_LABEL_LENGTH = 120
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 8, 1024
_HOW_TO_TYPE = "a Hub id is owner/name or owner/name@revision, in letters, digits, '-', '_' and '.'"


@dataclass(frozen=True)
class HubId:
    """A syntactically valid Hub model id; nothing about the repo is known yet."""

    repo_id: str  # owner/name
    revision: str | None = None  # a branch, tag or commit; None for the repo's default branch

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" if self.revision else self.repo_id


def quoted(text: str) -> str:
    """The visitor's text as a sentence may quote it: escaped, and short."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _valid_name(part: str) -> bool:
    return bool(_NAME.fullmatch(part)) and ".." not in part and "--" not in part and not part.endswith(".git")


def _valid_revision(revision: str) -> bool:
    parts = revision.split("/")
    return (
        len(revision) <= MAX_REVISION_LENGTH
        and all(_REVISION_PART.fullmatch(part) for part in parts)
        and ".." not in revision
        and not revision.endswith(".lock")
    )


def parse_hub_id(text: object) -> HubId:
    """``owner/name`` or ``owner/name@revision`` as a `HubId`; touches neither the network nor the disk.

    Raises:
        InvalidRequestError: anything else (a path, a URL, whitespace, control or non-ASCII characters, too long).
    """
    if not isinstance(text, str) or not text:
        raise InvalidRequestError(f"Pick a model, or type a Hub id: {_HOW_TO_TYPE}.")
    if len(text) > MAX_TYPED_LENGTH:
        raise InvalidRequestError(f"That model id is {len(text)} characters long; {_HOW_TO_TYPE}.")
    repo_id, at, revision = text.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(_valid_name(part) for part in parts) or (at and not _valid_revision(revision)):
        raise InvalidRequestError(f"{quoted(text)} is not a model of this demo or a Hub id: {_HOW_TO_TYPE}.")
    return HubId(repo_id, revision if at else None)


def catalog_entry_for(hub_id: HubId) -> CatalogEntry | None:
    """The catalog model a typed id names (its repo at the catalog's revision), so it keeps its card and slot."""
    revision = hub_id.revision or "main"
    return next(
        (entry for entry in CATALOG if entry.repo_id == hub_id.repo_id and entry.source.revision == revision), None
    )


class HubModelResolver:
    """Typed ids -> validated, pinned catalog-style entries; each id is resolved once and remembered.

    Args:
        max_model_bytes: the most bytes a model's files may take (config, preprocessor config, weights).
        remembered: how many resolved ids are kept (least recently used go first).
    """

    def __init__(self, max_model_bytes: int, remembered: int = 256):
        self.max_model_bytes = max_model_bytes
        self._remembered = remembered
        self._lock = threading.Lock()
        self._resolved: OrderedDict[HubId, CatalogEntry] = OrderedDict()

    def resolve(self, hub_id: HubId) -> CatalogEntry:
        """The entry for ``hub_id``, pinned to the commit its revision pointed at when first asked.

        Raises:
            ModelUnavailableError: the repo cannot be used (gated, private, missing, too big, not an image classifier,
                remote code, odd labels) or the Hub cannot be reached; the sentence says which.
        """
        with self._lock:
            if hub_id in self._resolved:
                self._resolved.move_to_end(hub_id)
                return self._resolved[hub_id]
        entry = self._resolve(hub_id)
        with self._lock:
            self._resolved[hub_id] = entry
            while len(self._resolved) > self._remembered:
                self._resolved.popitem(last=False)
        return entry

    def _resolve(self, hub_id: HubId) -> CatalogEntry:
        info = hub.repo_info(hub_id.repo_id, hub_id.revision)
        name = hub_id.repo_id
        if info.gated:
            raise ModelUnavailableError(
                f"{name} is gated on the Hub (its owner grants access one by one) and this demo never sends access "
                "tokens; pick another model."
            )
        sizes = info.file_sizes
        if "config.json" not in sizes:
            raise ModelUnavailableError(f"{name} has no config.json, so it is not a transformers model; pick another.")
        weights = next((filename for filename in hub.WEIGHT_FILES if filename in sizes), None)  # the one fetch takes
        if weights is None:
            if any(filename.endswith(".index.json") for filename in sizes):
                why = "its weights are split into shards, which this demo does not load"
            else:
                why = "it has no model.safetensors or pytorch_model.bin"
            raise ModelUnavailableError(f"{name} cannot be loaded here: {why}; pick another model.")
        total = sizes["config.json"] + sizes.get(hub.PREPROCESSOR_CONFIG, 0) + sizes[weights]
        if total > self.max_model_bytes:
            raise ModelUnavailableError(
                f"{name} is {total / 1e9:.2f} GB, more than this demo loads from the Hub "
                f"({self.max_model_bytes / 1e9:.2f} GB, BEIT_DEMO_MAX_MODEL_BYTES); pick a smaller model."
            )
        if sizes["config.json"] > MAX_CONFIG_BYTES:
            raise ModelUnavailableError(f"{name}'s config.json is too large to be a model config; pick another model.")
        source = ModelSource(name, revision=info.commit)
        config = _read_config(name, hub.config_text(source))
        architecture, model_type = _image_classifier(name, config)
        labels = _labels(name, config)
        side = _input_side(name, config)
        details = HubDetails(
            requested_revision=hub_id.revision or "",
            commit=info.commit,
            model_type=model_type,
            license=info.license,
            has_preprocessor=hub.PREPROCESSOR_CONFIG in sizes,
            weights_file=weights,
            download_bytes=total,
            labels_preview=labels[:5],
        )
        return CatalogEntry(
            key=str(hub_id),
            title=f"{name} (from the Hub)",
            source=source,
            architecture=architecture,
            recognises=f"{len(labels):,} classes, as its config names them.",
            expected_input="Whatever it was trained on: this model is not from our catalog, so its card is its own.",
            num_labels=len(labels),
            license=info.license or "not stated in its model card",
            input_size=side,
            hub=details,
        )


def _read_config(name: str, text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise ModelUnavailableError(f"{name}'s config.json is not a JSON object; pick another model.")
    return config


def _image_classifier(name: str, config: dict[str, Any]) -> tuple[str, str]:
    """The architecture and model type, if transformers itself maps them to image classification."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    if "auto_map" in config:
        raise ModelUnavailableError(
            f"{name} needs its own Python code to load (auto_map in its config), which this demo never runs; "
            "pick a model that transformers supports itself."
        )
    architectures = config.get("architectures")
    stated = architectures[0] if isinstance(architectures, list) and architectures else None
    model_type = config.get("model_type")
    mapped = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.get(model_type) if isinstance(model_type, str) else None
    classes = (mapped,) if isinstance(mapped, str) else tuple(mapped or ())
    if not classes or (stated is not None and stated not in classes):
        what = stated if isinstance(stated, str) else f"a {model_type!s:.40} model"
        raise ModelUnavailableError(
            f"{name} is {quoted(what)}, not an image classifier that transformers can load; "
            "pick an image-classification model."
        )
    return stated or classes[0], model_type


def _labels(name: str, config: dict[str, Any]) -> tuple[str, ...]:
    id2label = config.get("id2label")
    problem = ""
    if not isinstance(id2label, dict) or not id2label:
        problem = "names no classes (id2label)"
    elif len(id2label) > MAX_LABELS:
        problem = f"has {len(id2label):,} classes (this demo shows at most {MAX_LABELS:,})"
    elif set(id2label) != {str(index) for index in range(len(id2label))}:
        problem = "numbers its classes with gaps or names that are not numbers"
    elif not all(isinstance(label, str) and label.isprintable() for label in id2label.values()):
        problem = "has class names that are not printable text"
    elif any(len(label) > MAX_LABEL_LENGTH for label in id2label.values()):
        problem = f"has class names longer than {MAX_LABEL_LENGTH} characters"
    if problem:
        raise ModelUnavailableError(f"{name}'s config {problem}; pick another model.")
    return tuple(id2label[str(index)] for index in range(len(id2label)))


def _input_side(name: str, config: dict[str, Any]) -> int:
    size = config.get("image_size", 224)
    side = size[0] if isinstance(size, list) and size else size
    if not isinstance(side, int) or not MIN_INPUT_SIDE <= side <= MAX_INPUT_SIDE:
        raise ModelUnavailableError(
            f"{name}'s config asks for images of {quoted(str(size))} pixels; this demo takes "
            f"{MIN_INPUT_SIDE} to {MAX_INPUT_SIDE} a side. Pick another model."
        )
    return side
