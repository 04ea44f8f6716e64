"""No pickle, eval or exec on any path: an AST scan of every shipped module.

Nothing the project ships may deserialise with pickle (or its relatives), run
text as code, or load NumPy/torch files in a way that unpickles: a message, a
chain config, a recording or a weights file can then never execute code.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kmtr_stream", "gadgets", "simulator", "scripts", "benchmarks")
#: Modules that deserialise by running code.
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                  "joblib", "jsonpickle"}
#: Builtins that run text as code.
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def findings(source: str, name: str) -> list[str]:
    """Every unsafe use in ``source`` as ``"name:line: what"``."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}" for a in node.names
                    if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNSAFE_MODULES:
                out.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            if func in UNSAFE_BUILTINS or func.startswith("builtins."):
                out.append(f"{where}: {func}()")
            keywords = {k.arg: k.value for k in node.keywords}
            if func in ("np.load", "numpy.load"):
                value = keywords.get("allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant)
                                              and value.value is False):
                    out.append(f"{where}: {func}(allow_pickle=...)")
            if func == "torch.load":
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    out.append(f"{where}: torch.load without weights_only=True")
            if func in ("yaml.load", "yaml.unsafe_load"):
                out.append(f"{where}: {func}()")
    return out


def test_the_scan_finds_what_it_looks_for() -> None:
    bad = ("import pickle\nfrom marshal import loads\nimport numpy as np\n"
           "eval('1')\nexec('x=1')\nnp.load('a.npy', allow_pickle=True)\n"
           "import torch\ntorch.load('w.pt')\n")
    found = findings(bad, "bad.py")
    assert len(found) == 6, found
    assert findings("import numpy as np\nnp.load('a.npy', allow_pickle=False)\n"
                    "net.eval()\n", "ok.py") == []


def test_no_unsafe_deserialisation_in_any_shipped_module() -> None:
    paths = _sources()
    assert len(paths) > 50  # the scan does see the project
    found = [f for p in paths
             for f in findings(p.read_text(encoding="utf-8"), str(p.relative_to(ROOT)))]
    assert found == []
