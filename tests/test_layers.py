"""The package's layers: imports run one way, with no cycle, counting imports inside functions.

base (errors, catalog data, config, image decoding, memory, the evaluation's data and figures) <- hub and models <-
inference <- service <- front ends.
Read from the source with `ast`, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "beit_demo"
# Each module's layer, lowest first; a module may import its own layer and those below it, never one above.
LAYERS = {
    "base": ("errors", "catalog", "config", "images", "memory", "evaluation", "share_store", "__init__"),
    "hub and models": ("hub", "hub_ids", "models"),
    "inference": ("inference",),
    "service": ("service",),
    "front ends": ("ui", "cli", "cli_evaluate", "bulk", "__main__"),
}
LAYER_ORDER = list(LAYERS)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def app_modules() -> dict[str, Path]:
    """Every module of the shipped app (the test doubles in beit_demo/testing are not part of it)."""
    return {module_name(path): path for path in PACKAGE.rglob("*.py") if "testing" not in path.parts}


def imported_modules(path: Path) -> set[str]:
    """Modules ``path`` imports anywhere in its body, as absolute names."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)  # `from beit_demo import hub`
    return names


def package_imports() -> dict[str, set[str]]:
    """Module -> the app modules it imports."""
    modules = app_modules()
    return {name: imported_modules(path) & set(modules) - {name} for name, path in modules.items()}


def layer_of(module: str) -> int:
    first = module.split(".")[1] if "." in module else "__init__"
    return next(index for index, layer in enumerate(LAYERS.values()) if first in layer)


def test_every_module_has_a_layer():
    assert all(isinstance(layer_of(module), int) for module in app_modules())


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} ({LAYER_ORDER[layer_of(module)]}) imports {target} ({LAYER_ORDER[layer_of(target)]})"
        for module, targets in package_imports().items()
        for target in targets
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []


def test_there_is_no_import_cycle():
    graph = package_imports()
    visiting, done, cycles = [], set(), []

    def visit(module: str) -> None:
        if module in visiting:
            cycles.append(visiting[visiting.index(module) :] + [module])
            return
        if module in done:
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert cycles == []


@pytest.mark.parametrize(
    ("library", "allowed"),
    [("gradio", ("beit_demo.ui",)), ("beit_demo.testing", ()), ("benchmarks", ()), ("tests", ())],
)
def test_a_library_is_imported_only_where_it_belongs(library, allowed):
    offenders = [
        module
        for module, path in app_modules().items()
        if any(name == library or name.startswith(f"{library}.") for name in imported_modules(path))
        and not module.startswith(allowed or ("\0",))
    ]
    assert offenders == []


def test_a_tab_imports_no_other_tab():
    """Each tab is a room of its own: what two tabs share lives in `ui.shared` or `ui.texts`, never in a tab (the
    Classify tab's panels are its own parts)."""
    tabs = {module for module in app_modules() if module.startswith("beit_demo.ui.tabs.")}
    panels = {"beit_demo.ui.tabs.faces_panel", "beit_demo.ui.tabs.explain_panel"}
    crossing = [
        f"{module} imports {target}"
        for module in sorted(tabs)
        for target in sorted(package_imports()[module] & tabs)
        if not (module == "beit_demo.ui.tabs.classify" and target in panels)
    ]
    assert len(tabs) >= 4 and crossing == []
