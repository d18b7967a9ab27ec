"""Running a Gradio app in a process of its own on 127.0.0.1: for the app, browser and benchmark runs."""

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

REPO_ROOT = Path(__file__).resolve().parent.parent.parent  # where app.py is
APP_COMMAND = (sys.executable, "app.py")
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
