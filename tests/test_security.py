"""Hostile requests against the real app: files outside the demo, server paths in a request, the monitoring page,
telemetry and tokens.

One app serves the module's tests. Requests go out with `http.client`, which sends the path exactly as written
(no client-side normalisation of ``..`` or of percent-escapes).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import huggingface_hub
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from huggingface_hub import constants

from beit_demo import hub
from beit_demo.catalog import get_entry
from beit_demo.testing.hub_double import Fault
from tests.conftest import PHOTOS, REPO_ROOT, RunningApp, call_api, running_app

pytestmark = pytest.mark.app

SPEC = get_entry("facemask-deit")
TOKEN = "hf_ThisIsNotARealTokenButNoRequestMayCarryIt"
EXAMPLE = REPO_ROOT / "examples" / "chelsea.jpg"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app, started with a Hub token in its environment and in its token file, as an operator might."""
    tmp_path = tmp_path_factory.mktemp("security")
    hf_home = tmp_path / "app-hf-home"
    hf_home.mkdir()
    (hf_home / "token").write_text(TOKEN)
    with running_app(tmp_path, HF_TOKEN=TOKEN) as running:
        yield running


@pytest.fixture(scope="module")
def app_hf_home(app: RunningApp) -> Path:
    return app.log_path.parent / "app-hf-home"


def get(app: RunningApp, path: str) -> tuple[int, bytes]:
    """GET ``path`` (sent as written) from the app; (status, body)."""
    address = urlsplit(app.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def classify(app: RunningApp, image: Path) -> dict:
    client = Client(app.url, verbose=False)
    try:
        scores, _, _ = client.predict(handle_file(str(image)), SPEC.key, 2, api_name="/classify")
    finally:
        client.close()
    return scores


def test_an_example_image_is_served(app):
    """The control for the tests below: the file route works, for the one folder the app allows."""
    status, body = get(app, f"/gradio_api/file={EXAMPLE}")
    assert status == 200 and body == EXAMPLE.read_bytes()


HOSTILE_FILE_PATHS = {
    "etc_passwd": "/etc/passwd",
    "relative_traversal": "../../../../../../etc/passwd",
    "url_encoded_traversal": quote("../../../../../../etc/passwd", safe=""),
    "encoded_dots": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "double_encoded_traversal": quote(quote("../../../../../../etc/passwd", safe=""), safe=""),
    "backslash_traversal": "..%5C..%5C..%5C..%5C..%5C..%5Cetc%5Cpasswd",
    "traversal_out_of_the_allowed_folder": f"{EXAMPLE.parent}/../app.py",
    "encoded_traversal_out_of_the_allowed_folder": quote(f"{EXAMPLE.parent}/../app.py", safe=""),
    "the_apps_own_source": str(REPO_ROOT / "app.py"),
    "the_apps_own_source_relative": "app.py",
    "the_package_source": str(REPO_ROOT / "beit_demo" / "hub.py"),
    "the_process_environment": "/proc/self/environ",
}


@pytest.mark.parametrize("path", HOSTILE_FILE_PATHS.values(), ids=HOSTILE_FILE_PATHS.keys())
def test_files_outside_the_demo_are_never_served(app, path):
    status, body = get(app, f"/gradio_api/file={path}")
    assert status in (403, 404), (status, body[:200])
    assert b"root:" not in body and b"demo.launch" not in body and TOKEN.encode() not in body


def test_the_hub_cache_and_the_token_file_are_never_served(app, app_hf_home):
    classify(app, PHOTOS / "chelsea.jpg")  # puts the model into the app's Hub cache
    cached = sorted(path for path in (app_hf_home / "hub").rglob("*") if path.is_file())
    assert any(path.name == "config.json" for path in cached)
    for path in [*cached, app_hf_home / "token"]:
        status, body = get(app, f"/gradio_api/file={path}")
        assert status in (403, 404), (path, status)
        assert body != path.read_bytes()


def test_a_server_url_is_not_fetched_for_a_visitor(app, hub_double):
    """`file=http://...` makes Gradio fetch the URL itself, but only from public addresses: never the Hub double's."""
    status, body = get(app, f"/gradio_api/file={hub_double.url}/{SPEC.repo_id}/resolve/main/config.json")
    assert status == 403 and b"id2label" not in body
    assert hub_double.log() == []


SERVER_FILE_PAYLOADS = [
    pytest.param({"path": str(PHOTOS / "chelsea.jpg"), "meta": {"_type": "gradio.FileData"}}, id="an_image"),
    pytest.param({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}, id="passwd"),
    pytest.param({"path": str(PHOTOS / "chelsea.jpg")}, id="an_image_without_meta"),
    pytest.param({"path": "/etc/passwd"}, id="passwd_without_meta"),
]


@pytest.mark.parametrize("image", SERVER_FILE_PAYLOADS)
def test_a_request_that_names_a_server_file_instead_of_an_upload_is_refused(app, image):
    """A hand-written API call can put any path where an upload's path goes; only uploads may be read."""
    events = call_api(app.url, "classify", [image, SPEC.key, 2], timeout=30)
    assert "event: error" in events and "event: complete" not in events, events
    assert "confidences" not in events and "root:" not in events
    # Not even whether the file exists: a missing file must read like any other refused one.
    assert "supported image" not in events, events


def test_the_monitoring_dashboard_is_off(app):
    for path in ("/monitoring", "/monitoring/summary", "/monitoring/any-key", "/gradio_api/monitoring"):
        status, body = get(app, path)
        assert status in (403, 404), (path, status)
        assert b"Monitoring URL" not in body and b"event_analytics" not in body


def test_no_token_is_sent_for_a_model_a_visitor_picks(app, hub_double):
    classify(app, PHOTOS / "horse.jpg")
    client = Client(app.url, verbose=False)
    try:
        client.predict(get_entry("fashion-mnist").key, api_name="/load_model")
    finally:
        client.close()
    requests = hub_double.log()
    assert any(request.path.endswith("pytorch_model.bin") for request in requests)  # it did download
    assert not any(request.authorized for request in requests)
    assert not any("telemetry" in request.path for request in requests)


@pytest.mark.parametrize("where", ["HF_TOKEN", "token_file"])
def test_no_token_is_sent_even_to_a_gated_repo(hub_double, monkeypatch, tmp_path, where):
    """In-process: a token the library can see, and a gated repo that would want it."""
    if where == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", TOKEN)
    else:
        monkeypatch.delenv("HF_TOKEN", raising=False)
        (tmp_path / "token").write_text(TOKEN)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "token"))
    assert huggingface_hub.get_token() == TOKEN  # the control: huggingface_hub would send it if asked to
    hub_double.inject(Fault("status", path_contains="/resolve/", status=401, error_code="GatedRepo"))
    with pytest.raises(hub.ModelUnavailableError, match="gated"):
        hub.fetch(SPEC.source)
    hub_double.clear_faults()
    hub.fetch(SPEC.source)
    assert hub_double.log() and not any(request.authorized for request in hub_double.log())


def test_telemetry_and_analytics_are_off_by_default():
    """In a fresh process with neither variable set, as on a new Space: importing the app turns both off."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED", "DO_NOT_TRACK", "HF_HUB_OFFLINE")
    }
    probe = (
        "import app, gradio.analytics, huggingface_hub.constants as c; "
        "print(c.HF_HUB_DISABLE_TELEMETRY, gradio.analytics.analytics_enabled())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "False"]


# -- typed Hub ids over HTTP -------------------------------------------------------------------------------------

TYPED_OWNER = "tests-security-typed"


def test_typed_hub_ids_over_http_refuse_the_hostile_and_serve_the_good_without_a_token(app, hub_double):
    from beit_demo.testing import hub_models

    good = f"{TYPED_OWNER}/tiny-vit"
    hub_double.add_repo(good, hub_models.family_files("vit"))
    hub_double.add_repo(f"{TYPED_OWNER}/text-classifier", hub_models.text_classifier_files())
    hub_double.add_repo(f"{TYPED_OWNER}/gated", hub_models.family_files("resnet"), gated=True)
    photo = handle_file(str(PHOTOS / "coffee.jpg"))
    client = Client(app.url, verbose=False)

    def refusal(model: str) -> str:
        with pytest.raises(AppError) as refused:
            client.predict(photo, model, 2, api_name="/classify")
        return str(refused.value)

    try:
        uploaded = client.predict(photo, "beit-in22k", 1, api_name="/classify")[0]
        hub_double.clear_log()
        hostile_ids = ("../..", "/tmp", "owner/name\x00", "file:///etc/passwd", "a" * 300, "m\u0456crosoft/beit")
        refused = {hostile: refusal(hostile) for hostile in hostile_ids}
        assert hub_double.log() == []  # refused by their syntax: not a single Hub request
        refused.update({what: refusal(f"{TYPED_OWNER}/{what}") for what in ("text-classifier", "gated")})
        scores, status, _ = client.predict(photo, good, 3, api_name="/classify")
        card, *_ = client.predict(good, api_name="/select_model")
        *panels, summary = client.predict(photo, ["beit-in22k", good], 2, api_name="/compare")
        after = client.predict(photo, "beit-in22k", 1, api_name="/classify")[0]
    finally:
        client.close()
    for hostile, message in refused.items():
        expected = ("a Hub id is owner/name", "Valid models: beit-in22k", "is gated", "not an image classifier")
        assert any(sentence in message for sentence in expected), (
            hostile,
            message,
        )
    assert {row["label"] for row in scores["confidences"]} <= set(hub_models.FAMILY_LABELS["vit"])
    assert good in status and "Not from our catalog" in card
    assert len(panels) == 5 and good in summary  # /compare keeps its shape: the typed model is in the summary
    assert after["label"] == uploaded["label"]  # the server answers as before
    assert hub_double.log() and not any(request.authorized for request in hub_double.log())
