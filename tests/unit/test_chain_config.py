"""Chain config loading: the shipped configs parse, and every error names file, gadget and key."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.unit.chain_helpers  # noqa: F401  (registers the test gadget types)
from kmtr_stream.chain.config import load_chain_config, parse_chain_config
from kmtr_stream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[chain]
name = "demo"
backend = "numpy"
queue_size = 16
full_queue_policy = "error"

[[gadgets]]
id = "tag"
type = "_test_tag"
[gadgets.params]
tag = "!"
delay_s = 0

[[gadgets]]
id = "pass"
type = "passthrough"
new_thread = true
"""


def test_good_config() -> None:
    spec = parse_chain_config(GOOD, "configs/demo.toml")
    assert (spec.name, spec.source, spec.backend) == ("demo", "configs/demo.toml", "numpy")
    assert (spec.queue_size, spec.full_queue_policy) == (16, "error")
    assert [g.id for g in spec.gadgets] == ["tag", "pass"]
    assert spec.gadgets[0].type_name == "_test_tag"
    assert spec.gadgets[0].params.tag == "!" and spec.gadgets[0].params.delay_s == 0.0
    assert spec.gadgets[1].new_thread and not spec.gadgets[0].new_thread


def test_defaults() -> None:
    spec = parse_chain_config('[[gadgets]]\nid = "p"\ntype = "passthrough"\n', "configs/min.toml")
    assert (spec.name, spec.backend, spec.queue_size, spec.full_queue_policy) == (
        "min",
        "auto",
        1024,
        "block",
    )


# configs/train_*.toml are training configs, read by `kmtr-stream train`.
CHAIN_CONFIGS = sorted(
    p.name for p in (ROOT / "configs").glob("*.toml") if not p.name.startswith("train_")
)


@pytest.mark.parametrize("name", CHAIN_CONFIGS)
def test_shipped_configs_load(name: str) -> None:
    spec = load_chain_config(ROOT / "configs" / name)
    assert spec.gadgets


ERRORS = [
    # (toml text, expected fragment; every one is prefixed by the file name)
    (
        "[chain]\nqueue_size = 0\n" + '[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "[chain]: key 'queue_size': 0 is outside the range",
    ),
    (
        '[chain]\nqueue_size = "big"\n[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "[chain]: key 'queue_size': 'big' is a str, expected int",
    ),
    (
        '[chain]\nbackend = "opencl"\n[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "[chain]: key 'backend': 'opencl' is not one of auto, numpy, cupy",
    ),
    (
        '[chain]\nfull_queue_policy = "drop"\n[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "[chain]: key 'full_queue_policy': 'drop' is not one of block, error",
    ),
    (
        '[chain]\nthreads = 2\n[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "[chain]: key 'threads': unknown key",
    ),
    ('[extra]\n[[gadgets]]\nid="p"\ntype="passthrough"\n', "key 'extra': unknown top-level table"),
    ("[chain]\n", "key 'gadgets': at least one [[gadgets]] entry is required"),
    ('[[gadgets]]\nid="p"\ntype="nope"\n', "gadget 'p': key 'type': unknown gadget type 'nope'"),
    ('[[gadgets]]\nid="p"\n', "gadget 'p': key 'type': required key is missing"),
    ('[[gadgets]]\ntype="passthrough"\n', "gadget #0: key 'id': required key is missing"),
    ('[[gadgets]]\nid=3\ntype="passthrough"\n', "gadget #0: key 'id': 3 is a int, expected str"),
    (
        '[[gadgets]]\nid="p"\ntype="passthrough"\n[[gadgets]]\nid="p"\ntype="passthrough"\n',
        "gadget 'p': key 'id': duplicate gadget id 'p'",
    ),
    (
        '[[gadgets]]\nid="p"\ntype="passthrough"\nmodule="os"\n',
        "gadget 'p': key 'module': unknown key",
    ),
    (
        '[[gadgets]]\nid="p"\ntype="passthrough"\nnew_thread=1\n',
        "gadget 'p': key 'new_thread': 1 is a int, expected bool",
    ),
    (
        '[[gadgets]]\nid="p"\ntype="passthrough"\n[gadgets.params]\nx=1\n',
        "gadget 'p': key 'x': unknown parameter (known: none)",
    ),
    (
        '[[gadgets]]\nid="t"\ntype="_test_tag"\n[gadgets.params]\ndelay_s=1.5\n',
        "gadget 't': key 'delay_s': 1.5 is above the maximum 1.0",
    ),
    (
        '[[gadgets]]\nid="t"\ntype="_test_tag"\n[gadgets.params]\ntag=1\n',
        "gadget 't': key 'tag': 1 is a int, expected str",
    ),
    (
        '[[gadgets]]\nid="t"\ntype="_test_tag"\nparams=3\n',
        "gadget 't': key 'params': must be a table",
    ),
    ("[chain\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "fragment"), ERRORS)
def test_errors_name_file_gadget_and_key(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_chain_config(text, "configs/x.toml")
    assert str(info.value).startswith("configs/x.toml: ")
    assert fragment in str(info.value)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: cannot read chain config"):
        load_chain_config("nope.toml")
