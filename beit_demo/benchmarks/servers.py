"""Gradio server processes for the benchmark: ``app.py`` itself, and a do-nothing app (Gradio's own floor)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from beit_demo.catalog import CATALOG, DEFAULT_MODEL_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
APP_COMMAND = (sys.executable, "app.py")
NOOP_COMMAND = (sys.executable, "-m", "beit_demo.benchmarks.servers")
_START_TIMEOUT_S = 120


class ServerError(RuntimeError):
    """A server process exited or did not answer in time."""


@dataclass(frozen=True)
class Server:
    """A running server process."""

    url: str  # ends with "/"
    pid: int
    answered_s: float  # from starting the process until it first answered GET / with 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve(command: tuple[str, ...], env: dict[str, str], log_path: Path) -> Iterator[Server]:
    """Start ``command`` (a Gradio app reading PORT) on a free port of 127.0.0.1, yield it once / answers, stop it.

    Raises:
        ServerError: the process exited, or did not answer within two minutes (the message names its log).
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    environment = {**env, "PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1"}
    with open(log_path, "a") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=log)
    try:
        while not _answers(url):
            if process.poll() is not None:
                raise ServerError(f"{' '.join(command)} exited with {process.returncode}: see {log_path}")
            if time.perf_counter() - started > _START_TIMEOUT_S:
                raise ServerError(f"{' '.join(command)} did not answer in {_START_TIMEOUT_S} s: see {log_path}")
            time.sleep(0.01)
        yield Server(url, process.pid, time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_noop_app() -> None:
    """Serve a Gradio app whose /classify takes the inputs of ours and does nothing, with the same queue settings."""
    import gradio as gr

    from beit_demo.config import Settings

    settings = Settings.from_env()
    with gr.Blocks() as demo:
        image_input = gr.Image(type="filepath")  # an RGB JPEG passes through unopened, as with our UploadedImage
        model_dropdown = gr.Dropdown(choices=[spec.key for spec in CATALOG], value=DEFAULT_MODEL_KEY)
        top_k_slider = gr.Slider(1, 20, value=5, step=1)
        result_textbox = gr.Textbox()
        classify_button = gr.Button()
        classify_button.click(
            lambda image, model_key, top_k: "",
            inputs=[image_input, model_dropdown, top_k_slider],
            outputs=result_textbox,
            api_name="classify",
            concurrency_limit=settings.concurrency,
        )
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.concurrency)
    demo.launch(server_name=settings.server_name, server_port=settings.server_port, enable_monitoring=False)


if __name__ == "__main__":
    serve_noop_app()
