"""Registry of gadget types by name; configs refer to gadgets only by these names.

Gadgets register through Python entry points, the way Gadgetron loads gadget
libraries: every installed distribution may declare, in its packaging metadata,

.. code-block:: toml

    [project.entry-points."kmtr_stream.gadgets"]
    my_gadget = "my_vendor.gadgets:MyGadget"

and ``my_gadget`` becomes a type a chain config can name. The project's own
gadgets are declared the same way in its ``pyproject.toml``; this module
imports no gadget package by name. An entry point is loaded (its module
imported) the first time a config names its type. Classes may also register
directly with the ``register`` decorator (tests do, for their own gadgets).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from typing import TypeVar

from kmtr_stream.chain.gadget import Gadget
from kmtr_stream.errors import ConfigError

G = TypeVar("G", bound=type[Gadget])

#: Entry-point group that gadget plugins declare.
ENTRY_POINT_GROUP = "kmtr_stream.gadgets"

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


def entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Declared gadget entry points by type name (nothing is imported).

    Raises:
        ConfigError: two distributions declare one name for different classes.
    """
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen = found.get(ep.name)
        if seen is not None and seen.value != ep.value:
            raise ConfigError(
                f"gadget type {ep.name!r} declared twice: {seen.value!r} and {ep.value!r}"
            )
        found[ep.name] = ep
    return found


def _load(ep: importlib.metadata.EntryPoint) -> type[Gadget]:
    where = f"gadget entry point {ep.name} = {ep.value!r}"
    try:
        obj = ep.load()  # imports the module; a ``register`` decorator there runs now
    except Exception as exc:
        raise ConfigError(f"{where} does not load: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(obj, type) and issubclass(obj, Gadget)):
        raise ConfigError(f"{where} is not a Gadget subclass")
    if _REGISTRY.get(ep.name) is obj:
        return obj
    if obj in _REGISTRY.values():
        raise ConfigError(f"{where} names a class registered as {obj.type_name!r}")
    return register(ep.name)(obj)


def lookup(type_name: str) -> type[Gadget]:
    """Return the gadget class registered as ``type_name`` or raise ConfigError."""
    cls = _REGISTRY.get(type_name)
    if cls is not None:
        return cls
    eps = entry_points()
    ep = eps.get(type_name)
    if ep is None:
        known = ", ".join(sorted(set(_REGISTRY) | set(eps)))
        raise ConfigError(
            f"unknown gadget type {type_name!r} (known: {known or 'none'}; gadgets register "
            f"through {ENTRY_POINT_GROUP!r} entry points of installed distributions)"
        )
    return _load(ep)


def registered() -> dict[str, type[Gadget]]:
    """All gadget types by name: every declared entry point loaded, plus direct registrations."""
    for name, ep in entry_points().items():
        if name not in _REGISTRY:
            _load(ep)
    return dict(_REGISTRY)
