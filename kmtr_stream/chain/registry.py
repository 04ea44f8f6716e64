"""Registry of gadget types by name; configs refer to gadgets only by these names."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from kmtr_stream.chain.gadget import Gadget
from kmtr_stream.errors import ConfigError

G = TypeVar("G", bound=type[Gadget])

_REGISTRY: dict[str, type[Gadget]] = {}


def register(type_name: str) -> Callable[[G], G]:
    """Class decorator: make a gadget class available to chain configs as ``type_name``."""

    def deco(cls: G) -> G:
        if type_name in _REGISTRY and _REGISTRY[type_name] is not cls:
            raise ConfigError(f"gadget type {type_name!r} registered twice")
        cls.type_name = type_name
        _REGISTRY[type_name] = cls
        return cls

    return deco


def _load_builtin() -> None:
    # The gadgets package imports every gadget module, which registers them.
    importlib.import_module("gadgets")


def lookup(type_name: str) -> type[Gadget]:
    """Return the gadget class registered as ``type_name`` or raise ConfigError."""
    _load_builtin()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown gadget type {type_name!r} (known: {known})") from None


def registered() -> dict[str, type[Gadget]]:
    """All registered gadget types by name."""
    _load_builtin()
    return dict(_REGISTRY)
