"""``kmtr-stream calibrate-ood``: fit the out-of-distribution score of trained weights."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the calibrate-ood command."""
    parser.add_argument("weights", help="weights stem or path (its .json is updated in place)")
    parser.add_argument("--subjects", type=int, default=400, help="training subjects to fit on")
    parser.add_argument("--threads", type=int, default=2)


def run(args: argparse.Namespace) -> int:
    """Fit the statistics, write them into the weights' JSON and print the threshold."""
    import torch

    from kmtr_stream.model.io import _resolve, read_weights
    from kmtr_stream.training.ood_calibration import calibrate_ood

    torch.set_num_threads(args.threads)
    loaded = read_weights(args.weights)
    js = _resolve(args.weights).with_suffix(".json")
    ood = calibrate_ood(loaded, Path(js), n_train=args.subjects)
    print(json.dumps({k: v for k, v in ood.items() if k not in ("mean", "whiten")}))
    return 0
