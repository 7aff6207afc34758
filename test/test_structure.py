"""The package's layers import only downward:
ros -> cli -> eval -> pipeline -> stages -> core -> models.

`ros/` is the application: the nodes and every tool that talks to ROS or writes its bags
(posecrafter-query, the demo, posecrafter-bag, the live-service replay). `cli/` holds the
ROS-free console entry points (posecrafter-eval, posecrafter-parity); `eval/` never imports ROS.

Every import counts, including the lazy ones inside functions, so the walk reads the source
with `ast` instead of importing it. Module cycles are refused as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "posecrafter_ros"

# Lower rank = lower layer; a module may import its own layer or any lower one.
LAYER_RANK = {
    "models": 0,
    "core": 1,
    "stages": 2,
    "pipeline": 3,
    "remote_bridge": 3,  # the bridge of a Pipeline, run on Ray actors
    "eval": 4,
    "cli": 5,
    "ros": 6,
}
# Generated ROS interface packages and package metadata sit outside the layering.
UNLAYERED = {"msg", "srv", "action", "profiles", "__init__"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every posecrafter_ros import in `path`, lazy ones too.

    `from .x import name` counts as an import of `.x.name` when that is a module, else `.x`.
    """
    package = module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                as_module = root.parent / Path(*candidate.split("."))
                is_module = as_module.with_suffix(".py").is_file() or as_module.is_dir()
                found.append((node.lineno, candidate if is_module else target))
    return [(line, name) for line, name in found if name.split(".")[0] == root.name]


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def upward_imports(root: Path = PACKAGE) -> list[str]:
    problems = []
    for path in sorted(root.rglob("*.py")):
        source = module_name(path, root)
        if layer(source) in UNLAYERED:
            continue
        for line, target in imported_modules(path, root):
            if layer(target) in UNLAYERED:
                continue
            if LAYER_RANK[layer(target)] > LAYER_RANK[layer(source)]:
                problems.append(
                    f"{path.relative_to(root.parent)}:{line} ({source}) imports {target}"
                )
    return problems


def import_cycles(root: Path = PACKAGE) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        graph[module_name(path, root)] = {t for _, t in imported_modules(path, root)}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph or node.startswith(nxt + "."):
                continue  # a package's own submodules import the package for its exports
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_every_layer_is_known():
    layers = {layer(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert layers <= set(LAYER_RANK) | UNLAYERED, layers - set(LAYER_RANK) - UNLAYERED


def test_no_layer_imports_upward():
    assert upward_imports() == []


def test_no_module_cycles():
    assert import_cycles() == []


@pytest.mark.parametrize(
    "planted, where",
    [
        ("from ..stages.select import FeatureMatchingSelector\n", "models/checkpoint.py"),
        # Lazy imports inside functions count too.
        ("def f():\n    from ..pipeline import Pipeline\n", "core/gate.py"),
        ("def f():\n    import posecrafter_ros.ros.node\n", "eval/metrics.py"),
        # The ROS-free console entry points stay ROS-free.
        ("def f():\n    from ..ros.client import inline_ref\n", "cli/eval.py"),
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path, planted, where):
    import shutil

    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + "\n\n" + planted)
    problems = upward_imports(copy)
    assert len(problems) == 1 and where in problems[0], problems


def test_a_planted_cycle_is_caught(tmp_path):
    import shutil

    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    gate = copy / "core" / "gate.py"
    gate.write_text(gate.read_text() + "\n\ndef f():\n    from .geometry import skew\n")
    geometry = copy / "core" / "geometry.py"
    geometry.write_text(geometry.read_text() + "\n\ndef g():\n    from .gate import GateConf\n")
    assert any(
        {"posecrafter_ros.core.gate", "posecrafter_ros.core.geometry"} <= set(c)
        for c in import_cycles(copy)
    )
