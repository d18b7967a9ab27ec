"""MCP: the app serves its public endpoints as tools at /gradio_api/mcp/, called with the official `mcp` client."""

from __future__ import annotations

import asyncio
import base64
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

from beit_demo.testing.checkpoints import FASHION_MNIST_LABELS
from tests.conftest import DATA, HUB, PHOTOS, RunningApp, running_app

pytestmark = pytest.mark.app

TOOLS = {"classify", "classify_batch", "compare", "detect_faces", "evaluate", "explain"}
INTERNAL = {"model_status", "load_model", "select_model", "model_table", "prepare"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("mcp-app")) as running:
        yield running


def with_session(app: RunningApp, work):  # an async function of a ClientSession
    async def run():
        async with (
            streamablehttp_client(f"{app.url}gradio_api/mcp/") as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await work(session)

    return asyncio.run(run())


def data_url(path) -> str:  # a Path
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def test_the_curated_tools_are_listed_with_documented_typed_parameters(app):
    async def work(session):
        return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in with_session(app, work)}
    assert set(tools) == TOOLS and not INTERNAL & set(tools)
    classify = tools["classify"]
    properties = classify.inputSchema["properties"]
    assert set(properties) == {"image", "model_key", "top_k"}
    assert properties["top_k"]["type"] == "number" and "1 to 20" in properties["top_k"]["description"]
    assert "owner/name" in properties["model_key"]["description"]
    # Any string: a strict client must not refuse a Hub id (the catalog keys are examples, not an enum).
    assert properties["model_key"]["type"] == "string" and "enum" not in properties["model_key"]
    assert "beit-in22k" in properties["model_key"]["examples"]
    assert "enum" not in tools["compare"].inputSchema["properties"]["model_keys"]["items"]
    assert classify.description.startswith("Classify one image with one model")
    for tool in tools.values():
        parameters = tool.inputSchema["properties"].values()
        assert tool.description and all(parameter.get("description") for parameter in parameters), tool.name


def test_classify_through_mcp_with_a_data_url(app):
    async def work(session):
        return await session.call_tool(
            "classify", {"image": data_url(PHOTOS / "coffee.jpg"), "model_key": "fashion-mnist", "top_k": 3}
        )

    result = with_session(app, work)
    assert not result.isError, result.content
    text = " ".join(part.text for part in result.content if part.type == "text")
    assert any(label in text for label in FASHION_MNIST_LABELS) and "Fashion-MNIST garments" in text


def test_an_agent_can_classify_with_a_typed_hub_model(app):
    from beit_demo.testing import hub_models

    typed = "tests-mcp/tiny-convnext"
    HUB.add_repo(typed, hub_models.family_files("convnext"))

    async def work(session):
        return await session.call_tool(
            "classify", {"image": data_url(PHOTOS / "coffee.jpg"), "model_key": typed, "top_k": 2}
        )

    result = with_session(app, work)
    assert not result.isError, result.content
    text = " ".join(part.text for part in result.content if part.type == "text")
    assert typed in text and any(label in text for label in hub_models.FAMILY_LABELS["convnext"])


class _Recorder(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).paths.append(self.path)
        body = (PHOTOS / "coffee.jpg").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


def test_an_image_url_on_a_loopback_or_private_address_is_never_fetched(app):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/photo.jpg"
    try:

        async def work(session):
            refused = await session.call_tool("classify", {"image": url, "model_key": "fashion-mnist", "top_k": 3})
            private = await session.call_tool(
                "classify", {"image": "http://10.0.0.1/photo.jpg", "model_key": "fashion-mnist", "top_k": 3}
            )
            batch = await session.call_tool(
                "classify_batch", {"images": [url], "model_key": "fashion-mnist", "top_k": 1}
            )
            fine = await session.call_tool(
                "classify", {"image": data_url(PHOTOS / "horse.jpg"), "model_key": "fashion-mnist", "top_k": 1}
            )
            return refused, private, batch, fine

        refused, private, batch, fine = with_session(app, work)
    finally:
        server.shutdown()
    assert refused.isError and private.isError and batch.isError
    assert text_of(batch).startswith(f"The image at '{url}' could not be fetched: use a public http(s) URL")
    assert _Recorder.paths == []  # the loopback server was never asked
    assert not fine.isError  # and the tools still answer
    answer = " ".join(part.text for part in fine.content if part.type == "text")
    assert any(label in answer for label in FASHION_MNIST_LABELS)


def text_of(result) -> str:  # an mcp CallToolResult
    return " ".join(part.text for part in result.content if part.type == "text")


GOOD_CALLS = {
    "classify": {"image": "PHOTO", "model_key": "fashion-mnist", "top_k": 2},
    "classify_batch": {"images": ["PHOTO", "PHOTO"], "model_key": "fashion-mnist", "top_k": 2},
    "compare": {"image": "PHOTO", "model_keys": ["fashion-mnist", "facemask-deit"], "top_k": 2},
    "detect_faces": {"image": "SCENE", "model_key": "facemask-deit", "min_face_score": 0.5},
    "explain": {"image": "PHOTO", "model_key": "fashion-mnist", "label": "", "method": ""},
    "evaluate": {"archive": "ARCHIVE", "models": ["fashion-mnist"]},
}


def class_folders_zip() -> str:
    """A zip of two class folders named after Fashion-MNIST labels (trousers, sneakers), as a data URL."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder, digit in (("trouser", 1), ("sneaker", 7)):
            for path in sorted((DATA / "fashion-mnist").glob(f"{digit}_*.png")):
                archive.writestr(f"{folder}/{path.name}", path.read_bytes())
    return "data:application/zip;base64," + base64.b64encode(buffer.getvalue()).decode()


def with_images(arguments: dict) -> dict:
    """The arguments with PHOTO and SCENE (alone or in a list) replaced by those images as data URLs."""
    images = {
        "PHOTO": data_url(PHOTOS / "coffee.jpg"),
        "SCENE": data_url(DATA / "face-mask" / "scene_1.jpg"),
        "ARCHIVE": class_folders_zip(),
    }

    def swap(value: object) -> object:
        if isinstance(value, list):
            return [swap(item) for item in value]
        return images.get(value, value) if isinstance(value, str) else value

    return {name: swap(value) for name, value in arguments.items()}


def test_every_tool_answers_with_data_urls_and_an_error_is_one_sentence(app):
    assert set(GOOD_CALLS) == TOOLS

    async def work(session):
        answers, errors = {}, {}
        for tool, arguments in GOOD_CALLS.items():
            answers[tool] = await session.call_tool(tool, with_images(arguments))
            key = {"compare": "model_keys", "evaluate": "models"}.get(tool, "model_key")
            wrong = {**with_images(arguments), key: "no-such-model" if key == "model_key" else ["no-such-model"]}
            errors[tool] = await session.call_tool(tool, wrong)
        return answers, errors

    answers, errors = with_session(app, work)
    for tool, answer in answers.items():
        assert not answer.isError, (tool, text_of(answer)[:500])
    assert any(label in text_of(answers["classify_batch"]) for label in FASHION_MNIST_LABELS)
    assert "3 faces" in text_of(answers["detect_faces"])
    assert "12 images" in text_of(answers["evaluate"])
    for tool, error in errors.items():
        message = text_of(error)
        assert error.isError, tool
        assert message.startswith("Unknown model 'no-such-model'. Valid models:"), (tool, message[:300])
        assert len(message) < 300 and not any(noise in message for noise in ("$defs", "Traceback", "{", "Error:"))
