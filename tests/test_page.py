"""The page as built in-process: its public API is a promise to users, and must not change by accident.

`tests/data/api_contract.json` holds every API name the page serves, its visibility, its parameters (name,
component, default) and its outputs (component, label). A deliberate change of the API edits that file in the same
commit, where a reviewer sees it; to print the current contract: `python -m tests.test_page`.
"""

from __future__ import annotations

import json
import re

from beit_demo.config import Settings
from beit_demo.service import DemoService
from tests.conftest import REPO_ROOT

CONTRACT = REPO_ROOT / "tests" / "data" / "api_contract.json"


def api_contract(settings: Settings | None = None) -> dict:
    """The page's API as clients see it, in a form that reads well in a diff."""
    from beit_demo.ui.page import build_demo

    demo = build_demo(DemoService(settings or Settings()))
    named = demo.get_api_info()["named_endpoints"]
    contract = {}
    for dependency in demo.config["dependencies"]:
        name, visibility = dependency["api_name"], dependency["api_visibility"]
        if visibility == "private":
            continue
        contract[name] = {"visibility": visibility}
        if f"/{name}" in named:  # the documented endpoints: what the client library and MCP read
            endpoint = named[f"/{name}"]
            contract[name]["parameters"] = [
                [parameter["parameter_name"], parameter["component"], parameter["parameter_default"]]
                for parameter in endpoint["parameters"]
            ]
            returns = endpoint["returns"]
            contract[name]["returns"] = [[output["component"], _label(output["label"])] for output in returns]
        else:
            blocks = demo.blocks
            contract[name]["inputs"] = [blocks[block].get_block_name() for block in dependency["inputs"]]
            contract[name]["outputs"] = [blocks[block].get_block_name() for block in dependency["outputs"]]
    return contract


def _label(label: str) -> str | None:
    """An output's label, None for a component without one (Gradio names it after its place on the page)."""
    return None if re.fullmatch(r"value_\d+", label) else label


def test_every_api_name_its_visibility_inputs_and_outputs_are_as_promised():
    assert api_contract() == json.loads(CONTRACT.read_text())


if __name__ == "__main__":
    print(json.dumps(api_contract(), indent=1))
