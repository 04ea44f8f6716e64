"""Server-side allow-list of chain configs a client may select by name.

A CONFIG_FILE carries ``NAME`` or ``NAME?results=MODE``: NAME is a chain
of the allow-list (a trailing ``.xml`` or ``.toml``, as Gadgetron-style
clients send, e.g. python-ismrmrd-server's default ``default.xml``, is
ignored), MODE is ``standard`` or ``msgpack`` (see ``codec.standard``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ismrmrd

from kmtr_stream.chain.config import ChainSpec, load_chain_config
from kmtr_stream.codec.standard import RESULTS_MODES
from kmtr_stream.errors import ConfigError
from kmtr_stream.messages import Text

#: Name that always selects the server's default chain (MRD clients often send it).
DEFAULT_NAME = "default"
#: File suffixes MRD clients put on config names; ignored when the bare name is known.
CONFIG_SUFFIXES = (".xml", ".toml")
#: CONFIG_FILE parameters after ``?`` and their allowed values.
REQUEST_PARAMS: dict[str, tuple[str, ...]] = {"results": RESULTS_MODES}
#: Client message kinds a ``[chain.inputs]`` policy covers.
KINDS: dict[str, type] = {
    "acquisition": ismrmrd.Acquisition,
    "image": ismrmrd.Image,
    "waveform": ismrmrd.Waveform,
    "text": Text,
}


@dataclass(frozen=True)
class ChainRequest:
    """What a CONFIG_FILE asked for: a chain name and the stream's parameters."""

    name: str
    results: str | None = None


def message_policy(spec: ChainSpec) -> dict[type, str]:
    """Per client message class: the chain's ``[chain.inputs]`` action ("pass", "warn",
    "error")."""
    return {cls: getattr(spec.inputs, kind) for kind, cls in KINDS.items()}


class ChainCatalog:
    """Chain configs loaded when the server starts, selectable by name.

    A CONFIG_FILE message only ever picks one of these names: no path or code
    from the network is loaded.

    Args:
        specs: chain name -> validated spec.
        default: name of the chain used when the client selects none.
    """

    def __init__(self, specs: dict[str, ChainSpec], default: str) -> None:
        if default not in specs:
            raise ConfigError(f"default chain {default!r} is not among {sorted(specs)}")
        self.specs = dict(specs)
        self.default = default

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path]) -> ChainCatalog:
        """Load each config; it is selectable by its file stem and its ``[chain] name``.

        The first path is the default chain.

        Raises:
            ConfigError: no path given, a config is invalid, or two share a name.
        """
        if not paths:
            raise ConfigError("at least one chain config is required")
        specs: dict[str, ChainSpec] = {}
        default = ""
        for path in paths:
            spec = load_chain_config(path)
            stem = Path(path).stem
            for name in dict.fromkeys((stem, spec.name)):
                if name in specs and specs[name] is not spec:
                    raise ConfigError(f"{path}: chain name {name!r} is already taken")
                specs[name] = spec
            default = default or stem
        return cls(specs, default)

    def names(self) -> list[str]:
        """Selectable names, sorted."""
        return sorted({*self.specs, DEFAULT_NAME})

    def parse_request(self, text: str) -> ChainRequest:
        """Read a CONFIG_FILE name: ``NAME[.xml|.toml][?results=standard|msgpack]``.

        Raises:
            ConfigError: unknown chain, unknown parameter or value.
        """
        name, sep, query = text.partition("?")
        if name not in self.specs and name != DEFAULT_NAME:
            for suffix in CONFIG_SUFFIXES:
                bare = name.removesuffix(suffix)
                if bare != name and (bare in self.specs or bare == DEFAULT_NAME):
                    name = bare
                    break
        self.select(name)
        params: dict[str, str] = {}
        for item in query.split("&") if sep else []:
            key, eq, value = item.partition("=")
            allowed = REQUEST_PARAMS.get(key)
            if allowed is None or not eq:
                known = ", ".join(f"{k}={'|'.join(v)}" for k, v in REQUEST_PARAMS.items())
                raise ConfigError(
                    f"CONFIG_FILE {text!r}: unknown parameter {item!r} (known: {known})"
                )
            if value not in allowed:
                raise ConfigError(
                    f"CONFIG_FILE {text!r}: {key}={value!r} is not one of {', '.join(allowed)}"
                )
            params[key] = value
        return ChainRequest(name=name, results=params.get("results"))

    def select(self, name: str | None) -> ChainSpec:
        """The spec for ``name`` (None or "default": the default chain).

        Raises:
            ConfigError: ``name`` is not on the allow-list.
        """
        if name is None or name == DEFAULT_NAME:
            return self.specs[self.default]
        try:
            return self.specs[name]
        except KeyError:
            allowed = ", ".join(self.names())
            raise ConfigError(
                f"unknown chain config {name!r} (this server offers: {allowed})"
            ) from None
