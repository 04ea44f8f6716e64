"""The import graph of the project's packages has no upward edge and no cycle.

Parsed with ``ast`` (nothing is imported): every ``import``/``from`` statement
anywhere in a module, function-level ones included, and every
``importlib.import_module("...")`` with a literal name. Units are the
top-level packages and the sub-packages/modules of ``kmtr_stream``.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kmtr_stream", "gadgets", "simulator")

#: unit -> units it must never import (directly or lazily).
FORBIDDEN: dict[str, set[str]] = {
    # The maths, the model and the wire codec sit below everything that streams or trains.
    **{
        low: {"kmtr_stream.training", "simulator", "kmtr_stream.transport", "gadgets"}
        for low in ("kmtr_stream.model", "kmtr_stream.kspace", "kmtr_stream.codec")
    },
    # Gadgets register through entry points; the chain core never names them.
    "kmtr_stream.chain": {"gadgets", "kmtr_stream.transport", "kmtr_stream.model"},
    # The simulator produces data; the scanner client lives in kmtr_stream.demo.
    "simulator": {"kmtr_stream.transport", "kmtr_stream.demo", "gadgets"},
    # Evaluation builds on training, never the other way round.
    "kmtr_stream.training": {"kmtr_stream.evaluation", "gadgets", "kmtr_stream.transport"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "kmtr_stream" and len(parts) > 1 else parts[0]


def imports_of(source: str) -> set[str]:
    """Project modules named by import statements or literal ``import_module`` calls."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _graph() -> dict[str, dict[str, set[str]]]:
    """unit -> imported unit -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT)
            module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
            for target in imports_of(path.read_text(encoding="utf-8")):
                a, b = _unit(module), _unit(target)
                if a != b:
                    graph[a][b].add(str(rel))
    return graph


GRAPH = _graph()


def test_the_parser_sees_lazy_and_string_imports() -> None:
    src = (
        "import importlib\nfrom kmtr_stream.messages import Text\n"
        "def f():\n    from kmtr_stream.training import loop\n"
        "    importlib.import_module('gadgets.passthrough')\n"
    )
    want = {"kmtr_stream.messages", "kmtr_stream.training", "gadgets.passthrough"}
    assert imports_of(src) >= want
    # A real lazy edge of the project is in the graph (gadgets load the model on demand).
    assert "kmtr_stream.model" in GRAPH["gadgets"]


@pytest.mark.parametrize("unit", sorted(FORBIDDEN))
def test_no_upward_import(unit: str) -> None:
    bad = {
        target: sorted(files) for target, files in GRAPH[unit].items()
        if target in FORBIDDEN[unit]
    }
    assert not bad, f"{unit} imports upward: {bad}"


def test_no_import_cycle_between_units() -> None:
    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in GRAPH.get(todo.pop(), {}):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = [(a, b) for a in list(GRAPH) for b in GRAPH[a] if a in reachable(b)]
    assert not cycles, f"import cycles between units: {cycles}"
