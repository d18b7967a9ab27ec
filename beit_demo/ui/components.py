"""Gradio components of our own.

Gradio writes a typing stub (`components.pyi`) next to any module that subclasses a component; it is
generated, so git ignores it. Keeping the subclass here keeps that stub small and out of `ui.py`.
"""

from __future__ import annotations

import base64
import binascii

import gradio as gr
from gradio.context import LocalContext
from gradio.data_classes import FileData, GradioRootModel, ListFiles
from gradio.utils import get_upload_folder, is_in_or_equal


class UploadedImage(gr.Image):
    """`gr.Image` that hands over the uploaded file unopened.

    Gradio's own preprocessing opens every upload with Pillow before our code runs, so a non-image fails
    with a generic error and nothing checks the pixel count first. Our `load_image` does both, with a
    message the visitor can act on. (`is_template` keeps the frontend of `gr.Image`.)
    """

    is_template = True

    def preprocess(self, payload) -> str | bytes | None:  # Gradio's ImageData
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # API clients may send a data URL
            return _data_url_bytes(payload.url)
        return _uploaded_path(payload.path)


def _data_url_bytes(url: str) -> bytes:
    """The bytes of a data URL, within the upload cap."""
    # launch(max_file_size=...) only guards /gradio_api/upload; an inline image must respect it too.
    limit = getattr(LocalContext.blocks.get(None), "max_file_size", None)
    if limit is not None and len(url.partition(",")[2]) * 3 // 4 > limit:
        raise gr.Error(f"The image is larger than the {limit:,}-byte upload limit: send a smaller one.")
    try:
        return base64.b64decode(url.partition(",")[2], validate=True)
    except (binascii.Error, ValueError):
        raise gr.Error("The image data sent is not valid base64.") from None


def _uploaded_path(path: str | None) -> str:
    """``path`` when it is a file uploaded to this demo."""
    # Gradio checks that a path is an upload only when the payload says it is a FileData (meta._type); a
    # hand-written API call without it could name any file on the server.
    if path is None or not is_in_or_equal(path, get_upload_folder()):
        raise gr.Error("Upload the image again: only images uploaded to this demo can be classified.")
    return path


class OpenDropdown(gr.Dropdown):
    """`gr.Dropdown` that takes values beyond its choices, and says so to API and MCP clients: the model pickers, the
    explanation's method and class.

    A Dropdown's schema lists its choices as an ``enum``, which would make a strict MCP client refuse what the demo
    accepts (a typed Hub id, "" for an explanation's default method or class); with custom values allowed, the
    schema is a plain string (or a list of them), with the choices as examples. (`is_template` keeps the frontend of
    `gr.Dropdown`; Gradio finds a template's frontend by its direct parent's name, so this is subclassed no further.)
    """

    is_template = True

    def api_info(self) -> dict:
        info = super().api_info()
        if not self.allow_custom_value:
            return info
        examples = [value for _, value in self.choices]
        string = {"type": "string", "examples": examples}
        return {"type": "array", "items": string} if self.multiselect else string


class ImageUrl(str):
    """An image named by a public http(s) URL, to be fetched (SSRF-protected) by the handler, off the event loop."""


class _ImagesOrTexts(GradioRootModel):
    """Uploaded files (FileData, from the page and gradio_client), or strings (data URLs and URLs, from MCP)."""

    root: list[FileData | str]


class ImageFiles(gr.File):
    """`gr.File` for several images that MCP clients can fill with data URLs or public URLs.

    Gradio's MCP server turns a file parameter into a string for the agent and back into a file on the way in, but
    not inside a list: for a multi-file input it kept a dangling ``$ref`` in the tool's schema (every call failed on
    it), and the strings an agent sends reach the component as they are. So the schema here defines its files
    inline, and the component takes strings itself: a data URL is decoded under the upload cap, an http(s) URL is
    handed on as an `ImageUrl`, anything else (a path on the server) is refused. (`is_template` keeps the frontend
    of `gr.File`.)
    """

    is_template = True

    # gr.File assigns ListFiles in __init__; this one validates strings too. (A property rather than an __init__ of
    # our own: Gradio reads a component's frontend settings, file_count included, from its __init__'s signature.)
    @property
    def data_model(self) -> type:
        return _ImagesOrTexts

    @data_model.setter
    def data_model(self, _value: type) -> None:
        pass

    def api_info(self) -> dict:
        """The schema of a list of files (what the page and gradio_client send), with its definitions inline."""
        info = ListFiles.model_json_schema()
        info["additional_description"] = info.pop("description", None)
        return _inlined(info, info.get("$defs", {}))

    def preprocess(self, payload: _ImagesOrTexts | None) -> list[str | bytes] | None:
        if payload is None:
            return None
        return [_one_image(item) for item in payload.root]


def _one_image(item: FileData | str) -> str | bytes:
    if isinstance(item, FileData):
        return _uploaded_path(item.path)
    if item.startswith("data:"):
        return _data_url_bytes(item)
    if item.startswith(("http://", "https://")):
        return ImageUrl(item)
    raise gr.Error("Send each image as an upload, a data URL or a public http(s) URL.")


def _inlined(node: object, definitions: dict) -> object:
    """``node`` with every local ``$ref`` replaced by a copy of its definition, and the ``$defs`` dropped."""
    if isinstance(node, list):
        return [_inlined(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    reference = node.get("$ref", "")
    if reference.startswith("#/$defs/") and reference.removeprefix("#/$defs/") in definitions:
        return _inlined(definitions[reference.removeprefix("#/$defs/")], definitions)
    return {key: _inlined(value, definitions) for key, value in node.items() if key != "$defs"}
