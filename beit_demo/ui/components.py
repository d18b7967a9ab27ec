"""Gradio components of our own.

Gradio writes a typing stub (`components.pyi`) next to any module that subclasses a component; it is
generated, so git ignores it. Keeping the subclass here keeps that stub small and out of `ui.py`.
"""

from __future__ import annotations

import base64
import binascii

import gradio as gr
from gradio.context import LocalContext
from gradio.utils import get_upload_folder, is_in_or_equal


class UploadedImage(gr.Image):
    """`gr.Image` that hands over the uploaded file unopened.

    Gradio's own preprocessing opens every upload with Pillow before our code runs, so a non-image fails
    with a generic error and nothing checks the pixel count first. Our `load_image` does both, with a
    message the visitor can act on. (`is_template` keeps the frontend of `gr.Image`.)
    """

    is_template = True

    def preprocess(self, payload) -> str | bytes | None:  # noqa: ANN001 - Gradio's ImageData
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):  # API clients may send a data URL
            # launch(max_file_size=...) only guards /gradio_api/upload; an inline image must respect it too.
            limit = getattr(LocalContext.blocks.get(None), "max_file_size", None)
            if limit is not None and len(payload.url.partition(",")[2]) * 3 // 4 > limit:
                raise gr.Error(f"The image is larger than the {limit:,}-byte upload limit: send a smaller one.")
            try:
                return base64.b64decode(payload.url.partition(",")[2], validate=True)
            except (binascii.Error, ValueError):
                raise gr.Error("The image data sent is not valid base64.") from None
        # Gradio checks that a path is an upload only when the payload says it is a FileData (meta._type); a
        # hand-written API call without it could name any file on the server.
        if payload.path is None or not is_in_or_equal(payload.path, get_upload_folder()):
            raise gr.Error("Upload the image again: only images uploaded to this demo can be classified.")
        return payload.path


class ModelPicker(gr.Dropdown):
    """`gr.Dropdown` of the catalog that also takes a typed Hub id, and says so to API and MCP clients.

    A Dropdown's schema lists its choices as an ``enum``, which would make a strict MCP client refuse a Hub id that
    the demo accepts; with custom values allowed, the schema is a plain string (or a list of them), with the catalog
    keys as examples. (`is_template` keeps the frontend of `gr.Dropdown`.)
    """

    is_template = True

    def api_info(self) -> dict:
        info = super().api_info()
        if not self.allow_custom_value:
            return info
        keys = [value for _, value in self.choices]
        string = {"type": "string", "examples": keys}
        return {"type": "array", "items": string} if self.multiselect else string
