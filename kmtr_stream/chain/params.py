"""Typed gadget parameters: build a gadget's frozen ``Params`` dataclass from a TOML table.

Every value is checked against the field's annotation (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``tuple[...]``, ``X | None``) and against
the ``min``/``max``/``choices`` given with ``kmtr_stream.chain.gadget.param``.
There are no expressions and no import strings: a config can only pick values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kmtr_stream.errors import ConfigError


@dataclass(frozen=True)
class ParamInfo:
    """Description of one gadget parameter (for docs and error messages).

    Attributes:
        name: key in the ``[gadgets.params]`` table.
        type: annotation written as in the source (e.g. ``"float"``).
        default: default value, or None when the key is required.
        required: True when the key has no default.
        min: inclusive lower bound, if any.
        max: inclusive upper bound, if any.
        choices: allowed values, if restricted.
        doc: one-line description (with units).
    """

    name: str
    type: str
    default: Any
    required: bool
    min: float | None
    max: float | None
    choices: tuple[Any, ...] | None
    doc: str


def _type_name(tp: Any) -> str:
    """Readable spelling of an annotation: ``float``, ``tuple[int, ...]``, ``Literal['a']``."""
    origin = typing.get_origin(tp)
    if origin is None:
        return getattr(tp, "__name__", repr(tp))
    args = typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else _type_name(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{_type_name(args[0])}, ...]"
        return "tuple[" + ", ".join(_type_name(a) for a in args) + "]"
    return repr(tp)


def _field_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:  # an annotation that does not resolve is a gadget bug
        raise ConfigError(
            f"cannot resolve parameter annotations of {cls.__qualname__}: {exc}"
        ) from exc


def describe_gadget_params(gadget_cls: type) -> list[ParamInfo]:
    """List the parameters of a gadget class with types, defaults, ranges and docs.

    Args:
        gadget_cls: a ``Gadget`` subclass (its ``Params``) or a Params dataclass itself.

    Returns:
        One ``ParamInfo`` per field, in declaration order.
    """
    params_cls = getattr(gadget_cls, "Params", gadget_cls)
    hints = _field_hints(params_cls)
    out: list[ParamInfo] = []
    for f in dataclasses.fields(params_cls):
        meta = f.metadata
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        out.append(
            ParamInfo(
                name=f.name,
                type=_type_name(hints.get(f.name, Any)),
                default=default,
                required=required,
                min=meta.get("min"),
                max=meta.get("max"),
                choices=meta.get("choices"),
                doc=meta.get("doc", ""),
            )
        )
    return out


def format_gadget_params(gadget_cls: type) -> str:
    """Human-readable table of a gadget's parameters (one line per key)."""
    lines = []
    for p in describe_gadget_params(gadget_cls):
        parts = [f"{p.name}: {p.type}"]
        parts.append("required" if p.required else f"default {p.default!r}")
        if p.min is not None:
            parts.append(f"min {p.min}")
        if p.max is not None:
            parts.append(f"max {p.max}")
        if p.choices is not None:
            parts.append("choices " + ", ".join(repr(c) for c in p.choices))
        line = "; ".join(parts)
        if p.doc:
            line += f"  -- {p.doc}"
        lines.append(line)
    return "\n".join(lines) if lines else "(no parameters)"


class _BadValue(Exception):
    """A value does not fit; the message says why (without the location)."""


def _coerce(value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; return it (int to float, list to tuple)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        # bool is an int: keep True from matching a Literal[1].
        for a in args:
            if type(value) is type(a) and value == a:
                return value
        raise _BadValue(f"{value!r} is not one of " + ", ".join(repr(a) for a in args))
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        errors = []
        for a in non_none:
            try:
                return _coerce(value, a)
            except _BadValue as exc:
                errors.append(str(exc))
        raise _BadValue(f"{value!r} does not match {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _BadValue(f"{value!r} is a {type(value).__name__}, expected {_type_name(tp)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        if len(value) != len(args):
            raise _BadValue(
                f"{value!r} has {len(value)} items, expected {len(args)} ({_type_name(tp)})"
            )
        return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _BadValue(f"{value!r} is a {type(value).__name__}, expected bool (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _BadValue(f"{value!r} is a {type(value).__name__}, expected int")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _BadValue(f"{value!r} is a {type(value).__name__}, expected float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _BadValue(f"{value!r} is a {type(value).__name__}, expected str")
    raise _BadValue(f"parameter type {_type_name(tp)} cannot be set from a config")


def _check_range(value: Any, meta: Mapping[str, Any]) -> None:
    lo, hi, choices = meta.get("min"), meta.get("max"), meta.get("choices")
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if choices is not None and v not in choices:
            raise _BadValue(f"{v!r} is not one of " + ", ".join(repr(c) for c in choices))
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if lo is not None and v < lo:
                raise _BadValue(f"{v!r} is below the minimum {lo!r}")
            if hi is not None and v > hi:
                raise _BadValue(f"{v!r} is above the maximum {hi!r}")


def build_params(params_cls: type, table: Mapping[str, Any], where: str) -> Any:
    """Build a frozen Params instance from a TOML table, checking every key.

    Args:
        params_cls: the gadget's Params dataclass.
        table: the ``[gadgets.params]`` table (may be empty).
        where: location prefix for errors, e.g. ``"configs/x.toml: gadget 'buf'"``.

    Returns:
        ``params_cls(**checked_values)``.

    Raises:
        ConfigError: unknown key, missing required key, wrong type or value out of range;
            the message names the location and the key.
    """
    if not dataclasses.is_dataclass(params_cls):
        raise ConfigError(f"{where}: Params of this gadget type is not a dataclass")
    hints = _field_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls) if f.init}
    for key in table:
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise ConfigError(f"{where}: key {key!r}: unknown parameter (known: {known})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: key {name!r}: required parameter is missing")
            continue
        try:
            value = _coerce(table[name], hints.get(name, Any))
            _check_range(value, f.metadata)
        except _BadValue as exc:
            raise ConfigError(f"{where}: key {name!r}: {exc}") from None
        values[name] = value
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as exc:  # __post_init__ cross-field checks
        raise ConfigError(f"{where}: {exc}") from exc
