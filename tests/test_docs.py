"""The README and docs/: every code block runs as written (formatting is `ruff format --check`'s, in CI).

The Python blocks that call the demo run, in page order, against a real `python app.py` on the Hub double, with the
address of the test's app in place of the documented one. The timm block runs on a timm checkpoint written here. A
shell command that needs what a test cannot have (a Ray cluster, the real Hub, an install) is parsed with the
command line's own parser, so a renamed flag or subcommand fails here; the files the other commands run must exist.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

from beit_demo.cli import _parser
from tests.conftest import PHOTOS, REPO_ROOT, running_app

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
DOCUMENTED_URL = "http://127.0.0.1:7860/"


def code_blocks(language: str) -> list[tuple[str, str]]:
    """(page name, code) for every fenced block of ``language``, in page order."""
    pattern = re.compile(rf"^```{language}\n(.*?)^```", re.MULTILINE | re.DOTALL)
    return [(page.name, block) for page in PAGES for block in pattern.findall(page.read_text())]


def shell_commands() -> list[tuple[str, list[str]]]:
    """(page name, words) for every command of the bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for page, block in code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            command = shlex.split(line, comments=True)
            commands.extend((page, part) for part in _split_on(command, "&&") if part)
    return commands


def _split_on(words: list[str], separator: str) -> list[list[str]]:
    parts = [[]]
    for word in words:
        if word == separator:
            parts.append([])
        else:
            parts[-1].append(word)
    return parts


def test_the_pages_have_the_blocks_this_test_runs():
    assert len(code_blocks("python")) >= 4 and len(shell_commands()) >= 8 and code_blocks("json")


@pytest.mark.app
def test_every_python_block_that_calls_the_demo_runs_against_the_app(tmp_path, monkeypatch):
    blocks = [(page, code) for page, code in code_blocks("python") if "client" in code]
    assert blocks[0][1].count(DOCUMENTED_URL) == 1  # the first one makes the client the others use
    monkeypatch.chdir(REPO_ROOT)  # the blocks name examples/ as a clone has it
    with running_app(tmp_path) as app:
        namespace: dict = {}
        try:
            for page, code in blocks:
                exec(compile(code.replace(DOCUMENTED_URL, app.url), page, "exec"), namespace)  # noqa: S102
        finally:
            if "client" in namespace:
                namespace["client"].close()
    assert namespace["scores"]["label"] and len(namespace["faces"]["faces"]) == 1  # the astronaut's face
    assert json.loads(Path(namespace["report_path"]).read_text())["images"] == 60  # the Fashion-MNIST sample


def test_the_timm_block_loads_a_timm_checkpoint(tmp_path, monkeypatch):
    from beit_demo.testing.timm_checkpoints import timm_beit_files

    (code,) = [code for page, code in code_blocks("python") if "load_timm_beit" in code]
    for name, content in timm_beit_files(num_classes=7).items():
        (tmp_path / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    namespace = {"images": [Image.open(PHOTOS / "chelsea.jpg"), Image.open(PHOTOS / "horse.jpg")]}
    exec(compile(code, "timm-conversion.md", "exec"), namespace)  # noqa: S102
    assert tuple(namespace["logits"].shape) == (2, 7)


def test_every_json_block_parses():
    for _page, block in code_blocks("json"):
        json.loads(block)


@pytest.mark.parametrize(
    ("page", "words"), shell_commands(), ids=lambda value: " ".join(value)[:60] if isinstance(value, list) else value
)
def test_every_shell_command_names_what_exists(page, words):
    command = shlex.join(words)
    words = list(words)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VARIABLE=value before the command
        words.pop(0)
    if words[:3] in (["python", "-m", "beit_demo"], ["python3", "-m", "beit_demo"]):
        _parser().parse_args(words[3:])  # exits (SystemExit 2) on an unknown subcommand or flag
    elif words[0] in ("python", "python3", "bash") and len(words) > 1 and words[1].endswith((".py", ".sh")):
        assert (REPO_ROOT / words[1]).is_file(), f"{page}: {command}"
    elif words[0] == "cd" or words[0].endswith(("/pip", "/python")) or words[:2] == ["python3", "-c"]:
        pass  # a separate venv's commands (docs/timm-conversion.md): run by hand, with timm, outside CI
    else:
        assert words[0] in {"python3", ".", "pip", "npx"}, f"{page}: {command}"
