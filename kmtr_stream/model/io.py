"""Saving and loading exported model weights (safetensors + JSON metadata)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kmtr_stream.errors import KmtrError
from kmtr_stream.model.config import ModelConfig
from kmtr_stream.model.networks import ImageModel, KMTRModel, SliceModel

#: Directory of the weights shipped with the package.
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
#: Short names of the shipped weights.
SHIPPED = {"default": "kmtr_default", "recon": "recon_default", "upper": "upper_default"}
#: Parameter prefixes used only in training (image branch, dense-alignment probe).
TRAINING_ONLY = ("image_branch.", "probe.")
#: Version of the metadata layout.
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A network ready for inference plus everything needed to interpret its outputs.

    Attributes:
        net: the network in eval mode on ``device``.
        meta: the metadata JSON (config, phenotype mean/std, temperature, ...).
        device: torch device it lives on.
        phen_mean: ``(9,)`` phenotype means in physical units.
        phen_std: ``(9,)`` phenotype standard deviations.
        temperature: softmax temperature fitted on the validation split.
    """

    net: SliceModel
    meta: dict[str, Any]
    device: torch.device
    phen_mean: np.ndarray
    phen_std: np.ndarray
    temperature: float

    @property
    def kind(self) -> str:
        """ "kmtr" or "image"."""
        return str(self.meta["kind"])

    @property
    def image_input(self) -> str:
        """Input of an image model: "zero_filled" or "full"."""
        return str(self.meta.get("image_input", "zero_filled"))


def export_weights(
    stem: Path,
    net: SliceModel,
    meta: dict[str, Any],
) -> None:
    """Write ``<stem>.safetensors`` (inference parameters only) and ``<stem>.json``."""
    state = {
        k: v.detach().cpu().contiguous()
        for k, v in net.state_dict().items()
        if not k.startswith(TRAINING_ONLY)
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(stem.with_suffix(".safetensors")), metadata={"format": "kmtr-stream"})
    full = {
        "format_version": FORMAT_VERSION,
        "kind": net.kind,
        "model_config": net.cfg.to_dict(),
        **meta,
    }
    stem.with_suffix(".json").write_text(json.dumps(full, indent=1))


def _resolve(name_or_path: str) -> Path:
    if name_or_path in SHIPPED:
        return WEIGHTS_DIR / SHIPPED[name_or_path]
    p = Path(name_or_path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def read_weights(name_or_path: str, device: str | None = None) -> LoadedModel:
    """Load exported weights (uncached); ``name_or_path`` is a shipped name or a file stem/path."""
    stem = _resolve(name_or_path)
    st, js = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not st.exists() or not js.exists():
        raise KmtrError(f"model weights {name_or_path!r} not found (looked for {st} and {js})")
    meta = json.loads(js.read_text())
    cfg = ModelConfig.from_dict(meta["model_config"])
    net: SliceModel
    if meta["kind"] == "kmtr":
        net = KMTRModel(cfg, with_image_branch=False)
    elif meta["kind"] == "image":
        net = ImageModel(cfg)
    else:
        raise KmtrError(f"{js}: unknown model kind {meta['kind']!r}")
    state = {k: v for k, v in load_file(str(st)).items() if not k.startswith(TRAINING_ONLY)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    optional = {"subject_head.in_mean", "subject_head.in_std"}  # absent in early exports
    if unexpected or set(missing) - optional:
        raise KmtrError(
            f"{st}: weights do not match the model (missing {missing}, unexpected {unexpected})"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(dev).eval()
    return LoadedModel(
        net=net,
        meta=meta,
        device=dev,
        phen_mean=np.asarray(meta["phenotype_mean"], dtype=np.float64),
        phen_std=np.asarray(meta["phenotype_std"], dtype=np.float64),
        temperature=float(meta.get("temperature", 1.0)),
    )


@functools.lru_cache(maxsize=8)
def load_model(name_or_path: str = "default") -> LoadedModel:
    """Cached ``read_weights``: every gadget asking for the same name shares one instance."""
    return read_weights(name_or_path)
