"""The code's shape as docs/design.md gives it: imports go one way, down the layers it names;
no module reaches into another's private names; the module map names every module."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rockopt"

# from the bottom up, as docs/design.md ("Layers") lists them: a module imports from its own
# layer or below. Keys are module names or packages (the longest prefix wins).
LAYERS: dict[str, int] = {
    "rockopt": 0,  # __version__
    "rockopt.errors": 0,
    "rockopt.registry": 0,
    "rockopt.config": 0,
    "rockopt.outputs": 0,
    "rockopt.report": 0,
    "rockopt.stopping": 0,
    "rockopt.metrics": 0,
    "rockopt.tracking": 0,
    "rockopt.data": 1,
    "rockopt.train": 2,
    "rockopt.tracked_run": 3,
    "rockopt.predict": 3,
    "rockopt.ensemble": 4,
    "rockopt.cv": 4,
    "rockopt.pyfunc": 4,
    "rockopt.model_registry": 4,
    "rockopt.search": 5,
    "rockopt.cli": 6,
    "rockopt.__main__": 6,
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every `from rockopt... import` and `import rockopt...` in PATH."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rockopt":
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "rockopt"]
    return found


def layer(module: str) -> int:
    keys = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    assert keys, f"{module} is in no layer of docs/design.md"
    return LAYERS[max(keys, key=len)]


def test_imports_go_down_the_layers():
    upward = []
    for mod, path in MODULES.items():
        for target, names in imports(path):
            targets = [f"{target}.{n}" if f"{target}.{n}" in MODULES else target for n in names] or [target]
            upward += [f"{mod} -> {t}" for t in targets if layer(t) > layer(mod)]
    assert not upward, upward


def test_no_module_imports_another_modules_private_names():
    private = []
    for mod, path in MODULES.items():
        for target, names in imports(path):
            for n in names:
                # a package may gather its own private submodules (data/samplers/__init__ and _hnm)
                own_submodule = f"{target}.{n}" in MODULES and target == mod
                if n.startswith("_") and not n.startswith("__") and not own_submodule:
                    private.append(f"{mod}: {target}.{n}")
    assert not private, private


def test_the_module_map_names_every_module():
    text = (REPO / "docs" / "design.md").read_text()
    mapped = set(re.findall(r"[\w/]+\.py", text)) | set(re.findall(r"[\w/]+/", text))
    missing = []
    for mod, path in MODULES.items():
        rel = path.relative_to(PACKAGE).as_posix()
        if path.name == "__init__.py" or path.name.startswith("_"):
            continue
        if rel not in mapped and path.name not in mapped:
            missing.append(rel)
    assert not missing, f"docs/design.md does not name: {missing}"


def test_the_import_graph_has_no_cycle_between_layers():
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in MODULES.items():
        for target, _ in imports(path):
            if target in MODULES and target != mod and layer(target) == layer(mod) == 0:
                edges[mod].add(target)
    seen, stack = set(), set()

    def visit(m: str) -> None:
        assert m not in stack, f"import cycle through {m}"
        if m in seen:
            return
        stack.add(m)
        for t in edges[m]:
            visit(t)
        stack.discard(m)
        seen.add(m)

    for m in list(edges):
        visit(m)
