"""docs/gadgets.md is generated from the registry and the Params dataclasses, and up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmtr_stream.chain import registry
from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.gadget_docs import maths_modules, render_gadget_docs
from kmtr_stream.chain.params import describe_gadget_params
from kmtr_stream.cli import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "gadgets.md"
BUILT_IN = sorted(n for n, ep in registry.entry_points().items() if ep.value.startswith("gadgets."))


def test_the_committed_page_is_the_generated_one() -> None:
    assert PAGE.read_text(encoding="utf-8") == render_gadget_docs(built_in_only=True), (
        "docs/gadgets.md is stale: run .venv/bin/kmtr-stream gadgets --built-in --out "
        "docs/gadgets.md"
    )


def _section(text: str, name: str) -> str:
    start = text.index(f"## `{name}`\n")
    end = text.find("\n## `", start + 1)
    return text[start : end if end >= 0 else len(text)]


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_gadget_has_its_parameters_maths_and_a_valid_example(name: str) -> None:
    text = render_gadget_docs(built_in_only=True)
    section = _section(text, name)
    cls = registry.lookup(name)
    for p in describe_gadget_params(cls):
        assert f"| `{p.name}` |" in section
    for module in maths_modules(cls):
        assert f"`{module}`" in section
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    spec = parse_chain_config('[chain]\nname = "doc"\n' + example, f"{name} example")
    assert [g.type_name for g in spec.gadgets] == [name]


def test_maths_modules_come_from_the_gadget_sources() -> None:
    assert maths_modules(registry.lookup("remove_oversampling")) == [
        "kmtr_stream.kspace.buffer", "kmtr_stream.kspace.oversampling"
    ]
    assert "kmtr_stream.cardiac" in maths_modules(registry.lookup("subject_aggregation"))
    # A subclass inherits its base gadget's maths.
    assert maths_modules(registry.lookup("recon_inference")) == maths_modules(
        registry.lookup("kmtr_inference")
    )
    assert maths_modules(registry.lookup("passthrough")) == []


def test_the_command_prints_the_page(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["gadgets", "--built-in"]) == 0
    assert capsys.readouterr().out == render_gadget_docs(built_in_only=True)
    out = tmp_path / "g.md"
    assert main(["gadgets", "--built-in", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == PAGE.read_text(encoding="utf-8")
    assert main(["gadgets"]) == 0
    everything = capsys.readouterr().out
    assert all(f"## `{n}`" in everything for n in BUILT_IN)
