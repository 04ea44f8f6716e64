"""``kmtr-stream train CONFIG.toml``: train k-MTR or a baseline (torchrun-aware)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from kmtr_stream.errors import KmtrError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the train command."""
    parser.add_argument("config", help="training TOML (e.g. configs/train_default.toml)")
    parser.add_argument(
        "--no-resume", action="store_true", help="ignore existing checkpoints in out_dir"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="override [train] max_steps")
    parser.add_argument(
        "--install-as",
        default=None,
        help="copy the exported weights into kmtr_stream/weights/<name>.{safetensors,json}",
    )


def run(args: argparse.Namespace) -> int:
    """Train, export, optionally install into the package's weights directory."""
    from dataclasses import replace

    from kmtr_stream.model.io import WEIGHTS_DIR
    from kmtr_stream.training.config import load_config
    from kmtr_stream.training.loop import train

    cfg = load_config(args.config)
    if args.max_steps is not None:
        cfg = replace(cfg, train=replace(cfg.train, max_steps=args.max_steps))
    try:
        stem = train(cfg, resume=not args.no_resume)
    except KmtrError as exc:
        print(f"error: {exc}")
        return 1
    print(f"weights: {stem}.safetensors")
    if args.install_as:
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(stem.with_suffix(suffix), WEIGHTS_DIR / f"{args.install_as}{suffix}")
        upper = Path(stem).parent / "upper"
        if upper.with_suffix(".json").exists():
            for suffix in (".safetensors", ".json"):
                shutil.copyfile(upper.with_suffix(suffix), WEIGHTS_DIR / f"upper_default{suffix}")
        print(f"installed into {WEIGHTS_DIR}")
    return 0
