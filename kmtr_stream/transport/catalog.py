"""Server-side allow-list of chain configs a client may select by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kmtr_stream.chain.config import ChainSpec, load_chain_config
from kmtr_stream.errors import ConfigError

#: Name that always selects the server's default chain (MRD clients often send it).
DEFAULT_NAME = "default"


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
