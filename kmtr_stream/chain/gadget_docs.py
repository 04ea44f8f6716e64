"""The gadget reference page, generated from the registry so it cannot drift.

For every gadget type declared as a ``kmtr_stream.gadgets`` entry point: its
class and what it does (docstrings), the messages it handles, its parameters
(from its ``Params`` dataclass: type, default, range, doc), the modules that
hold its maths (read from its source's imports) and an example
``[[gadgets]]`` entry (from the shipped chain configs that use it, or its
defaults). ``docs/gadgets.md`` is this page for the project's own gadgets; a
test checks the committed file equals it, and ``kmtr-stream gadgets`` prints
it for every installed gadget, a vendor's included.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import tomllib

from kmtr_stream.chain import registry
from kmtr_stream.chain.gadget import Gadget
from kmtr_stream.chain.params import ParamInfo, describe_gadget_params

#: Module prefixes that hold a gadget's maths (pure functions and the model).
MATHS_PREFIXES = ("kmtr_stream.kspace.", "kmtr_stream.cardiac", "kmtr_stream.model")

#: Where the shipped chain configs live in a source checkout.
CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"

_REGENERATE = "kmtr-stream gadgets --built-in --out docs/gadgets.md"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _paragraphs(doc: str | None) -> list[str]:
    """The paragraphs of a docstring, each on one line."""
    text = inspect.cleandoc(doc or "")
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _type_ref(tp: type) -> str:
    # ismrmrd's classes are known by their package name (ismrmrd.Acquisition).
    module = tp.__module__
    return f"ismrmrd.{tp.__name__}" if module.startswith("ismrmrd") else f"{module}.{tp.__name__}"


def maths_modules(cls: type[Gadget]) -> list[str]:
    """Project modules of maths that ``cls`` (and its gadget base classes) import."""
    found: set[str] = set()
    for klass in cls.__mro__:
        if not (isinstance(klass, type) and issubclass(klass, Gadget)) or klass is Gadget:
            continue
        path = inspect.getsourcefile(klass)
        if path is None:
            continue
        for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found.update(n for n in names if n.startswith(MATHS_PREFIXES))
    return sorted(found)


def config_examples(configs_dir: Path | None) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Gadget type -> ``(config file name, its [[gadgets]] table)`` for each use."""
    uses: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    if configs_dir is None or not configs_dir.is_dir():
        return uses
    for path in sorted(configs_dir.glob("*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for entry in data.get("gadgets", []) if "chain" in data else []:
            uses.setdefault(str(entry.get("type")), []).append((path.name, entry))
    return uses


def _params_table(infos: list[ParamInfo]) -> list[str]:
    if not infos:
        return ["No parameters."]
    rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for p in infos:
        allowed = []
        if p.choices is not None:
            allowed.append(", ".join(_toml(c) for c in p.choices))
        if p.min is not None:
            allowed.append(f">= {_number(p.min)}")
        if p.max is not None:
            allowed.append(f"<= {_number(p.max)}")
        default = "required" if p.required else f"`{_toml(p.default)}`"
        rows.append(
            f"| `{p.name}` | {_cell(p.type)} | {_cell(default)} | "
            f"{_cell('; '.join(allowed))} | {_cell(p.doc)} |"
        )
    return rows


def _example(name: str, infos: list[ParamInfo], use: tuple[str, dict[str, Any]] | None) -> str:
    if use is not None:
        entry = use[1]
        gid, params = str(entry.get("id", name)), dict(entry.get("params", {}))
    else:
        gid = name
        params = {p.name: p.default for p in infos if not p.required}
    lines = ["[[gadgets]]", f'id = "{gid}"', f'type = "{name}"']
    if params:
        lines.append("[gadgets.params]")
        lines.extend(f"{k} = {_toml(v)}" for k, v in params.items())
    return "\n".join(lines)


def gadget_section(
    name: str, cls: type[Gadget], uses: list[tuple[str, dict[str, Any]]]
) -> list[str]:
    """Markdown lines describing one gadget type."""
    infos = describe_gadget_params(cls)
    handles = ", ".join(f"`{_type_ref(h)}`" for h in cls.handles)
    maths = ", ".join(f"`{m}`" for m in maths_modules(cls)) or "none (no maths of its own)"
    module = inspect.getmodule(cls)
    summary = (_paragraphs(cls.__doc__) or [""])[0]
    # The module docstring's first line names the gadget; the rest says how it works.
    details = _paragraphs(module.__doc__ if module is not None else None)[1:]
    out = [
        f"## `{name}`",
        "",
        f"`{cls.__module__}.{cls.__qualname__}`: {summary}",
        "",
        *(line for para in details for line in (para, "")),
        f"* handles: {handles or 'nothing (every message passes through unchanged)'}",
        f"* maths: {maths}",
        "* used in: "
        + (", ".join(f"`configs/{f}`" for f in sorted({f for f, _ in uses})) or "no shipped chain"),
        "",
        *_params_table(infos),
        "",
        "Example" + (f" (from `configs/{uses[0][0]}`)" if uses else " (the defaults)") + ":",
        "",
        "```toml",
        _example(name, infos, uses[0] if uses else None),
        "```",
        "",
    ]
    return out


def render_gadget_docs(built_in_only: bool = False, configs_dir: Path | None = CONFIGS_DIR) -> str:
    """The gadget reference page (Markdown).

    Args:
        built_in_only: only the project's own gadgets (``gadgets.*`` entry
            points), as committed in ``docs/gadgets.md``; False adds every
            other installed plugin.
        configs_dir: folder of chain configs to take examples from (None: defaults only).
    """
    eps = registry.entry_points()
    names = sorted(
        n for n, ep in eps.items() if not built_in_only or ep.value.startswith("gadgets.")
    )
    uses = config_examples(configs_dir)
    lines = [
        "# Gadgets",
        "",
        "<!-- Generated from the gadget registry and the Params dataclasses; do not edit. "
        f"Regenerate: {_REGENERATE} -->",
        "",
        "Every gadget type a chain config can name (`type = ...`), with its parameters "
        "(`[gadgets.params]`). Gadgets are built with the stream's parsed ISMRMRD header and "
        "its encoding geometry, see [chain-config.md](chain-config.md). Types register through "
        "`kmtr_stream.gadgets` entry points, so a vendor's installed package adds its own; "
        "`kmtr-stream gadgets` prints this page for everything installed.",
        "",
        "| type | class |",
        "|---|---|",
        *(f"| [`{n}`](#{n}) | `{eps[n].value}` |" for n in names),
        "",
    ]
    for name in names:
        lines.extend(gadget_section(name, registry.lookup(name), uses.get(name, [])))
    return "\n".join(lines).rstrip("\n") + "\n"
