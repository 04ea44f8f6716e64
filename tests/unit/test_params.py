"""Typed gadget params: annotation checks, ranges, choices, and the parameter description."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from kmtr_stream.chain.gadget import param
from kmtr_stream.chain.params import build_params, describe_gadget_params, format_gadget_params
from kmtr_stream.errors import ConfigError

WHERE = "configs/x.toml: gadget 'buf'"


@dataclass(frozen=True)
class P:
    """Params covering every supported annotation."""

    target_fraction: float = param(0.25, min=0.0, max=1.0, doc="fraction of lines")
    n_coils: int = param(8, min=1, max=64, doc="virtual coils")
    enabled: bool = param(True, doc="switch")
    label: str = param("a", doc="name")
    mode: Literal["fast", "exact"] = param("fast", doc="mode")
    order: str = param("xy", choices=("xy", "yx"), doc="axis order")
    shape: tuple[int, int] = param((4, 5), min=1, doc="(ny, nx)")
    weights: tuple[float, ...] = param((1.0,), min=0.0, doc="weights")
    limit_mb: float | None = param(None, min=0.0, doc="optional cap")


@dataclass(frozen=True)
class Required:
    """Params with a required key."""

    path: str


def test_defaults_and_coercion() -> None:
    p = build_params(P, {}, WHERE)
    assert p == P()
    p = build_params(
        P,
        {
            "target_fraction": 1,
            "shape": [2, 3],
            "weights": [1, 2.5],
            "limit_mb": 3,
            "mode": "exact",
        },
        WHERE,
    )
    assert p.target_fraction == 1.0 and isinstance(p.target_fraction, float)
    assert p.shape == (2, 3) and p.weights == (1.0, 2.5) and p.limit_mb == 3.0
    assert p.mode == "exact"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"target_fraction": 1.5}, "key 'target_fraction': 1.5 is above the maximum 1.0"),
        ({"target_fraction": -0.1}, "key 'target_fraction': -0.1 is below the minimum 0.0"),
        ({"target_fraction": "0.5"}, "key 'target_fraction': '0.5' is a str, expected float"),
        ({"target_fraction": True}, "key 'target_fraction': True is a bool, expected float"),
        ({"n_coils": 2.0}, "key 'n_coils': 2.0 is a float, expected int"),
        ({"n_coils": True}, "key 'n_coils': True is a bool, expected int"),
        ({"n_coils": 0}, "key 'n_coils': 0 is below the minimum 1"),
        ({"enabled": 1}, "key 'enabled': 1 is a int, expected bool"),
        ({"label": 3}, "key 'label': 3 is a int, expected str"),
        ({"mode": "slow"}, "key 'mode': 'slow' is not one of 'fast', 'exact'"),
        ({"order": "zz"}, "key 'order': 'zz' is not one of 'xy', 'yx'"),
        ({"shape": [1, 2, 3]}, "key 'shape': [1, 2, 3] has 3 items, expected 2"),
        ({"shape": [0, 2]}, "key 'shape': 0 is below the minimum 1"),
        ({"shape": 4}, "key 'shape': 4 is a int, expected tuple[int, int]"),
        ({"weights": [1, "a"]}, "key 'weights': 'a' is a str, expected float"),
        ({"weights": [-1.0]}, "key 'weights': -1.0 is below the minimum 0.0"),
        ({"limit_mb": "big"}, "key 'limit_mb': 'big' does not match float | None"),
        ({"colour": "red"}, "key 'colour': unknown parameter"),
    ],
)
def test_bad_values_name_file_gadget_and_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_params(P, table, WHERE)
    assert str(info.value).startswith(WHERE + ": ")
    assert message in str(info.value)


def test_required_key_missing() -> None:
    with pytest.raises(
        ConfigError, match="gadget 'buf': key 'path': required parameter is missing"
    ):
        build_params(Required, {}, WHERE)
    assert build_params(Required, {"path": "a.h5"}, WHERE).path == "a.h5"


def test_describe_gadget_params() -> None:
    infos = {p.name: p for p in describe_gadget_params(P)}
    tf = infos["target_fraction"]
    assert (tf.type, tf.default, tf.min, tf.max, tf.doc) == (
        "float",
        0.25,
        0.0,
        1.0,
        "fraction of lines",
    )
    assert infos["mode"].type == "one of 'fast', 'exact'"
    assert infos["shape"].type == "tuple[int, int]"
    assert infos["weights"].type == "tuple[float, ...]"
    assert infos["limit_mb"].type == "float | None"
    assert infos["order"].choices == ("xy", "yx")
    req = describe_gadget_params(Required)[0]
    assert req.required and req.default is None
    text = format_gadget_params(P)
    assert "target_fraction: float; default 0.25; min 0.0; max 1.0  -- fraction of lines" in text


def test_every_registered_gadget_describes_and_builds_its_defaults() -> None:
    from kmtr_stream.chain.registry import registered

    for name, cls in registered().items():
        infos = describe_gadget_params(cls)
        if any(p.required for p in infos):
            continue
        assert build_params(cls.Params, {}, f"x: gadget {name!r}") == cls.Params()
