"""Uploads through the real app: each file of the test corpus gives a prediction or its own clear message, uploads over
the size cap are refused before they are stored, and the server keeps answering."""

from __future__ import annotations

import base64
import http.client
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from beit_demo.catalog import get_entry
from tests.conftest import PHOTOS, RunningApp, call_api, running_app
from tests.image_corpus import HOSTILE_NAME, build_corpus

pytestmark = pytest.mark.app

SPEC = get_entry("fashion-mnist")  # tiny here, and 10 labels
TOP_K = 3
MAX_FILE_SIZE = 100_000  # BEIT_DEMO_MAX_FILE_SIZE for this module's app: above every corpus file


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    tmp_path = tmp_path_factory.mktemp("uploads")
    with running_app(tmp_path, BEIT_DEMO_MAX_FILE_SIZE=str(MAX_FILE_SIZE)) as running:
        yield running


@pytest.fixture(scope="module")
def client(app: RunningApp) -> Iterator[Client]:
    client = Client(app.url, verbose=False)
    try:
        yield client
    finally:
        client.close()


def upload_folder(app: RunningApp) -> Path:
    return app.log_path.parent / "app-gradio"


def post_upload(app: RunningApp, filename: str, content: bytes) -> tuple[int, str]:
    """POST one file to Gradio's upload route as a browser does; (status, body)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    address = urlsplit(app.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        connection.request("POST", "/gradio_api/upload", body, headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def classify(client: Client, image: str | Path) -> dict:
    scores, _, _ = client.predict(handle_file(str(image)), SPEC.key, TOP_K, api_name="/classify")
    return scores


def test_every_corpus_file_gives_a_prediction_or_its_message_and_the_server_keeps_answering(app, client, tmp_path):
    wrong = []
    for case in build_corpus(tmp_path / "corpus"):
        try:
            scores = classify(client, case.path)
        except AppError as err:
            if case.ok or case.message_contains not in str(err):
                wrong.append(f"{case.name}: {err}")
            continue
        if not case.ok or len(scores["confidences"]) != TOP_K:
            wrong.append(f"{case.name}: got a prediction {scores}")
    assert wrong == []
    # Still serving, and still classifying.
    assert len(classify(client, PHOTOS / "coffee.jpg")["confidences"]) == TOP_K


def test_every_corpus_message_is_one_sentence(app, client, tmp_path):
    for case in build_corpus(tmp_path / "corpus"):
        if case.ok:
            continue
        with pytest.raises(AppError) as caught:
            classify(client, case.path)
        message = str(caught.value)
        assert "\n" not in message and "Traceback" not in message and message.endswith("."), message


def test_an_upload_over_the_size_cap_is_refused_before_it_is_stored(app, client):
    stored_before = {path for path in upload_folder(app).rglob("*") if path.is_file()}
    status, body = post_upload(app, "big.jpg", b"\xff" * (MAX_FILE_SIZE + 1))
    assert status == 413 and "maximum allowed size" in body, body
    assert {path for path in upload_folder(app).rglob("*") if path.is_file()} == stored_before
    # The same bytes under the cap are taken (and then refused as an image, with the corpus' message).
    status, _ = post_upload(app, "big.jpg", b"\xff" * MAX_FILE_SIZE)
    assert status == 200
    assert len(classify(client, PHOTOS / "horse.jpg")["confidences"]) == TOP_K


def test_gradio_client_users_get_an_error_for_an_upload_over_the_cap(app, client, tmp_path):
    """gradio_client reads the cap from the app and refuses before sending (the browser does the same)."""
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\0" * MAX_FILE_SIZE)
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {MAX_FILE_SIZE} bytes"):
        classify(client, big)
    assert len(classify(client, PHOTOS / "horse.jpg")["confidences"]) == TOP_K


def test_a_hostile_file_name_is_stored_inside_the_upload_folder(app, client):
    picture = io.BytesIO()
    Image.new("RGB", (32, 32), (0, 128, 0)).save(picture, "PNG")
    status, body = post_upload(app, HOSTILE_NAME, picture.getvalue())
    assert status == 200, body
    (stored,) = json.loads(body)
    assert Path(stored).resolve().is_relative_to(upload_folder(app).resolve()), stored
    assert len(classify(client, stored)["confidences"]) == TOP_K


def test_an_inline_image_over_the_size_cap_is_refused(app):
    """An API client may send the image inline, as a data URL; the upload cap must hold for it too."""
    noise = Image.frombytes("RGB", (256, 256), bytes(range(256)) * 768)
    picture = io.BytesIO()
    noise.save(picture, "PNG")
    content = picture.getvalue() * (MAX_FILE_SIZE // len(picture.getvalue()) + 1)  # a valid PNG, then padding
    assert len(content) > MAX_FILE_SIZE
    url = "data:image/png;base64," + base64.b64encode(content).decode()
    events = call_api(app.url, "classify", [{"url": url, "meta": {"_type": "gradio.FileData"}}, SPEC.key, TOP_K])
    assert "event: error" in events and "confidences" not in events, events[:300]
