"""Resumable checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint ``<stem>`` is two files: ``<stem>.safetensors`` (model
parameters, optimizer moments, torch RNG state) and ``<stem>.json`` (step,
optimizer param groups, scheduler state, config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kmtr_stream.errors import KmtrError


def save_checkpoint(
    stem: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step: int,
    extra: dict[str, Any],
) -> None:
    """Write model, optimizer, scheduler, RNG state and ``step`` (the next step to run)."""
    tensors: dict[str, torch.Tensor] = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for name, value in state.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim.{pid}.{name}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"step": step, "param_groups": opt["param_groups"], "scheduler": sched, **extra}
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_suffix(".tmp.safetensors")
    save_file(tensors, str(tmp))
    tmp.replace(stem.with_suffix(".safetensors"))
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1, default=str))


def load_checkpoint(
    stem: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> dict[str, Any]:
    """Restore what ``save_checkpoint`` wrote; returns its JSON metadata (``step``: next step)."""
    st, js = stem.with_suffix(".safetensors"), stem.with_suffix(".json")
    if not st.exists() or not js.exists():
        raise KmtrError(f"checkpoint {stem} is incomplete (need {st.name} and {js.name})")
    tensors = load_file(str(st))
    meta: dict[str, Any] = json.loads(js.read_text())
    missing, unexpected = model.load_state_dict(
        {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False
    )
    # standardisation buffers of the subject head are absent from older checkpoints
    if unexpected or any(not k.endswith(("in_mean", "in_std")) for k in missing):
        raise KmtrError(
            f"checkpoint {stem} does not match the model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched = dict(meta["scheduler"])
    sched["lr_lambdas"] = [None] * len(optimizer.param_groups)
    scheduler.load_state_dict(sched)
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """Stem of the newest complete checkpoint in ``ckpt_dir`` (by step), or None."""
    stems = sorted(
        p.with_suffix("")
        for p in ckpt_dir.glob("step_*.json")
        if p.with_suffix(".safetensors").exists()
    )
    return stems[-1] if stems else None
