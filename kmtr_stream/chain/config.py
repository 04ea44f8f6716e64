"""Chain configs: TOML files declaring an ordered list of gadgets with typed parameters.

See ``docs/chain-config.md`` for the format. Parsing checks everything up front
(unknown keys, unknown gadget types, duplicate ids, types and ranges) so a bad
config fails before a single readout arrives, with the file, gadget id and key
named in the error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomllib

from kmtr_stream.backend import BACKENDS
from kmtr_stream.chain import registry
from kmtr_stream.chain.params import build_params
from kmtr_stream.errors import ConfigError

FullQueuePolicy = Literal["block", "error"]
FULL_QUEUE_POLICIES: tuple[str, ...] = ("block", "error")
#: What the transport does with one kind of client message.
INPUT_ACTIONS: tuple[str, ...] = ("pass", "warn", "error")
#: What the analysing gadgets do with a slice whose data fail validation
#: (``kmtr_stream.validation``): refuse it, or process it and flag its result.
VALIDATION_POLICIES: tuple[str, ...] = ("strict", "lenient")

_CHAIN_KEYS = ("name", "backend", "queue_size", "full_queue_policy", "inline", "inputs")


@dataclass(frozen=True)
class InputPolicy:
    """``[chain.inputs]``: what the transport does with each kind of client data message.

    "pass" feeds it to the chain (a kind no gadget handles then comes back
    unchanged, as from a relay), "warn" drops it (the first of its kind gets
    a WARNING to the client), "error" answers with an ERROR naming the chain
    and the kind and ends the stream. The defaults suit a chain that analyses
    raw k-space: images are refused and waveforms reported instead of being
    echoed back as if they were output; text (log lines) goes to the chain.

    ``validation`` is the data-validation policy of the gadgets that analyse
    the data (``kmtr_stream.validation``): "strict" refuses a slice whose
    readouts fail a check (an explicit per-slice ERROR instead of its result),
    "lenient" processes it without the bad readouts and flags its result.
    """

    acquisition: str = "pass"
    image: str = "error"
    waveform: str = "warn"
    text: str = "pass"
    validation: str = "strict"

_GADGET_KEYS = ("id", "type", "params", "new_thread")
MAX_QUEUE_SIZE = 1 << 20


@dataclass(frozen=True)
class GadgetSpec:
    """One gadget of a chain.

    Attributes:
        id: unique id within the chain (used in errors, stats and traces).
        type_name: registered gadget type.
        params: instance of the gadget class's frozen ``Params`` dataclass.
        new_thread: True to run this gadget (and the following ones, up to the
            next ``new_thread``) in a worker thread of its own, behind a queue.
    """

    id: str
    type_name: str
    params: Any
    new_thread: bool = False


@dataclass(frozen=True)
class ChainSpec:
    """A parsed, validated chain config.

    Attributes:
        name: chain name.
        source: file the config came from (or the source name given).
        backend: "auto", "numpy" or "cupy" (resolved when a runner starts).
        queue_size: capacity of each queue in front of a worker thread (messages).
        full_queue_policy: "block" (the producer waits) or "error" (submit raises).
        gadgets: the gadgets in chain order.
        inline: True to run the gadgets before the first ``new_thread`` in the
            submitting thread (e.g. the server's I/O thread) instead of a worker
            thread behind a queue: no hand-off per message, for cheap gadgets.
        inputs: what the transport does with each kind of client data message
            (``[chain.inputs]``).
    """

    name: str
    source: str
    backend: str
    queue_size: int
    full_queue_policy: str
    gadgets: tuple[GadgetSpec, ...]
    inline: bool = False
    inputs: InputPolicy = InputPolicy()


def _expect(value: Any, tp: type, where: str, key: str) -> Any:
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        raise ConfigError(
            f"{where}: key {key!r}: {value!r} is a {type(value).__name__}, expected {tp.__name__}"
        )
    return value


def _parse_chain_table(table: Any, source: str) -> dict[str, Any]:
    where = f"{source}: [chain]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    for key in table:
        if key not in _CHAIN_KEYS:
            raise ConfigError(
                f"{where}: key {key!r}: unknown key (known: {', '.join(_CHAIN_KEYS)})"
            )
    name = _expect(table.get("name", Path(source).stem), str, where, "name")
    backend = _expect(table.get("backend", "auto"), str, where, "backend")
    if backend not in BACKENDS:
        raise ConfigError(
            f"{where}: key 'backend': {backend!r} is not one of {', '.join(BACKENDS)}"
        )
    queue_size = _expect(table.get("queue_size", 1024), int, where, "queue_size")
    if not 1 <= queue_size <= MAX_QUEUE_SIZE:
        raise ConfigError(
            f"{where}: key 'queue_size': {queue_size} is outside the range 1..{MAX_QUEUE_SIZE}"
        )
    policy = _expect(table.get("full_queue_policy", "block"), str, where, "full_queue_policy")
    if policy not in FULL_QUEUE_POLICIES:
        raise ConfigError(
            f"{where}: key 'full_queue_policy': {policy!r} is not one of "
            + ", ".join(FULL_QUEUE_POLICIES)
        )
    inline = _expect(table.get("inline", False), bool, where, "inline")
    return {
        "name": name,
        "backend": backend,
        "queue_size": queue_size,
        "full_queue_policy": policy,
        "inline": inline,
        "inputs": _parse_inputs(table.get("inputs", {}), source),
    }


def _parse_inputs(table: Any, source: str) -> InputPolicy:
    where = f"{source}: [chain.inputs]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    kinds = tuple(InputPolicy.__dataclass_fields__)
    for key, value in table.items():
        if key not in kinds:
            raise ConfigError(f"{where}: key {key!r}: unknown key (known: {', '.join(kinds)})")
        _expect(value, str, where, key)
        allowed = VALIDATION_POLICIES if key == "validation" else INPUT_ACTIONS
        if value not in allowed:
            raise ConfigError(
                f"{where}: key {key!r}: {value!r} is not one of {', '.join(allowed)}"
            )
    return InputPolicy(**table)


def _parse_gadget(entry: Any, position: int, source: str, seen: set[str]) -> GadgetSpec:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{source}: gadget #{position}: [[gadgets]] entries must be tables")
    gid = entry.get("id")
    if gid is None:
        raise ConfigError(f"{source}: gadget #{position}: key 'id': required key is missing")
    where = f"{source}: gadget {gid!r}"
    _expect(gid, str, f"{source}: gadget #{position}", "id")
    if not gid:
        raise ConfigError(f"{source}: gadget #{position}: key 'id': must not be empty")
    if gid in seen:
        raise ConfigError(f"{where}: key 'id': duplicate gadget id {gid!r}")
    seen.add(gid)
    for key in entry:
        if key not in _GADGET_KEYS:
            raise ConfigError(
                f"{where}: key {key!r}: unknown key (known: {', '.join(_GADGET_KEYS)})"
            )
    type_name = entry.get("type")
    if type_name is None:
        raise ConfigError(f"{where}: key 'type': required key is missing")
    _expect(type_name, str, where, "type")
    try:
        cls = registry.lookup(type_name)
    except ConfigError as exc:
        raise ConfigError(f"{where}: key 'type': {exc}") from None
    table = entry.get("params", {})
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: key 'params': must be a table ([gadgets.params])")
    params = build_params(cls.Params, table, where)
    new_thread = _expect(entry.get("new_thread", False), bool, where, "new_thread")
    return GadgetSpec(id=gid, type_name=type_name, params=params, new_thread=new_thread)


def parse_chain_config(toml_text: str, source_name: str = "<config>") -> ChainSpec:
    """Parse and validate a chain config given as TOML text.

    Args:
        toml_text: the config's TOML text.
        source_name: name used in error messages (usually the file path).

    Returns:
        The validated ``ChainSpec``.

    Raises:
        ConfigError: invalid TOML, unknown table or key, unknown gadget type,
            duplicate id, wrong type or out-of-range value, or a gadget placed where
            it cannot work (``Gadget.check_placement``).
    """
    try:
        doc = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source_name}: not valid TOML: {exc}") from None
    for key in doc:
        if key not in ("chain", "gadgets"):
            raise ConfigError(
                f"{source_name}: key {key!r}: unknown top-level table (known: chain, gadgets)"
            )
    chain = _parse_chain_table(doc.get("chain", {}), source_name)
    entries = doc.get("gadgets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{source_name}: key 'gadgets': at least one [[gadgets]] entry is required"
        )
    seen: set[str] = set()
    gadgets = tuple(_parse_gadget(e, i, source_name, seen) for i, e in enumerate(entries))
    for i, g in enumerate(gadgets):
        later = tuple(x.type_name for x in gadgets[i + 1 :])
        why = registry.lookup(g.type_name).check_placement(g.params, later)
        if why:
            raise ConfigError(f"{source_name}: gadget {g.id!r}: {why}")
    return ChainSpec(source=source_name, gadgets=gadgets, **chain)


def load_chain_config(path: str | Path) -> ChainSpec:
    """Read and validate a chain config file (see ``parse_chain_config``).

    Raises:
        ConfigError: the file cannot be read, or its content is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read chain config: {exc}") from None
    return parse_chain_config(text, str(path))
