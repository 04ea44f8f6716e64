"""Gadget plugins: a separately installed package adds a gadget through an entry point.

The test builds and installs a tiny vendor package with pip (``--target`` a
temporary folder, no network) and puts that folder on ``sys.path``, so
``importlib.metadata`` finds its ``*.dist-info`` exactly as it finds any
installed distribution's. Nothing in the project knows the package's name.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kmtr_stream.chain import registry
from kmtr_stream.chain.config import parse_chain_config
from kmtr_stream.chain.gadget_docs import render_gadget_docs
from kmtr_stream.chain.params import format_gadget_params
from kmtr_stream.chain.runtime import ChainRunner
from kmtr_stream.errors import ConfigError
from kmtr_stream.messages import Text
from tests.unit.chain_helpers import HEADER

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "vendor-kmtr-gadgets"
version = "0.1.0"

[project.entry-points."kmtr_stream.gadgets"]
vendor_suffix = "vendor_kmtr_gadgets.suffix:SuffixGadget"

[tool.setuptools]
packages = ["vendor_kmtr_gadgets"]
"""

MODULE = '''
"""A vendor's gadget: appends a suffix and the stream's ky line count to every Text."""

from dataclasses import dataclass

from kmtr_stream.chain.gadget import Gadget, param
from kmtr_stream.messages import Text


class SuffixGadget(Gadget):
    """Appends ``suffix`` and ``context.geometry.n_ky`` to each Text."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``vendor_suffix``."""

        suffix: str = param("!", doc="text appended before the ky line count")

    handles = (Text,)

    def __init__(self, gadget_id, params, context):
        super().__init__(gadget_id, params, context)
        self.n_ky = context.geometry.n_ky

    def process(self, message):
        yield Text(f"{message.text}{self.params.suffix}{self.n_ky}")
'''


@pytest.fixture(scope="module")
def vendor_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed vendor package and its dist-info."""
    src = tmp_path_factory.mktemp("vendor_src")
    (src / "pyproject.toml").write_text(PYPROJECT)
    pkg = src / "vendor_kmtr_gadgets"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""Vendor gadgets."""\n')
    (pkg / "suffix.py").write_text(textwrap.dedent(MODULE))
    site = tmp_path_factory.mktemp("vendor_site")
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
        "--no-build-isolation", "--target", str(site), str(src),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"pip could not install the vendor package:\n{done.stderr}")
    assert list(site.glob("vendor_kmtr_gadgets-0.1.0.dist-info/entry_points.txt"))
    return site


@pytest.fixture
def installed(vendor_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(vendor_site))
    yield vendor_site
    registry._REGISTRY.pop("vendor_suffix", None)
    for name in [m for m in sys.modules if m.startswith("vendor_kmtr_gadgets")]:
        del sys.modules[name]


def test_unknown_before_the_package_is_installed() -> None:
    assert "vendor_suffix" not in registry.entry_points()
    with pytest.raises(ConfigError, match=r"unknown gadget type 'vendor_suffix'.*entry points"):
        parse_chain_config(_chain(), "vendor.toml")


def _chain() -> str:
    return (
        '[chain]\nname = "vendor"\nbackend = "numpy"\ninline = true\n'
        '[[gadgets]]\nid = "sfx"\ntype = "vendor_suffix"\n[gadgets.params]\nsuffix = "@"\n'
        '[[gadgets]]\nid = "pass"\ntype = "passthrough"\n'
    )


def test_an_installed_vendor_gadget_runs_in_a_chain(installed: Path) -> None:
    assert "vendor_kmtr_gadgets" not in sys.modules  # declared, not imported yet
    ep = registry.entry_points()["vendor_suffix"]
    assert ep.value == "vendor_kmtr_gadgets.suffix:SuffixGadget"
    spec = parse_chain_config(_chain(), "vendor.toml")  # checks params against its dataclass
    cls = registry.lookup("vendor_suffix")
    assert cls.__module__ == "vendor_kmtr_gadgets.suffix" and cls.type_name == "vendor_suffix"
    assert Path(sys.modules[cls.__module__].__file__ or "").is_relative_to(installed)
    out: list[Any] = []
    runner = ChainRunner(spec, emit=out.append, header=HEADER)
    runner.start()
    runner.submit(Text("scan"))
    assert runner.close(timeout=10)
    assert out == [Text("scan@12")]  # 12 ky lines in the test header
    assert "vendor_suffix" in registry.registered()
    assert "suffix" in format_gadget_params(cls)
    page = render_gadget_docs()  # what `kmtr-stream gadgets` prints lists the vendor's gadget
    assert "## `vendor_suffix`" in page and "text appended before the ky line count" in page
    assert "## `vendor_suffix`" not in render_gadget_docs(built_in_only=True)


def test_a_bad_parameter_of_a_vendor_gadget_is_named(installed: Path) -> None:
    bad = _chain().replace('suffix = "@"', "suffix = 3")
    with pytest.raises(ConfigError, match=r"vendor\.toml.*'sfx'.*suffix"):
        parse_chain_config(bad, "vendor.toml")


def test_every_built_in_gadget_module_is_declared_as_an_entry_point() -> None:
    root = Path(__file__).resolve().parents[2] / "gadgets"
    modules = {p.stem for p in root.glob("*.py") if p.stem != "__init__"}
    declared = {ep.value.split(":")[0].removeprefix("gadgets.") for ep in
                registry.entry_points().values() if ep.value.startswith("gadgets.")}
    assert declared == modules
    for name, ep in registry.entry_points().items():
        if ep.value.startswith("gadgets."):
            assert registry.lookup(name).type_name == name
