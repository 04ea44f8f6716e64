"""``kmtr-stream evaluate``: k-MTR and baselines side by side on held-out subjects."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kmtr_stream.conventions import TEST_SEED
from kmtr_stream.errors import KmtrError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of the evaluate command."""
    parser.add_argument("--weights", default="default", help="k-MTR weights (shipped name or path)")
    parser.add_argument("--recon", default="recon", help="recon-then-analyze weights; '' to skip")
    parser.add_argument(
        "--upper", default="upper", help="fully sampled upper bound weights; '' to skip"
    )
    parser.add_argument("--subjects", type=int, default=100, help="held-out test subjects")
    parser.add_argument(
        "--accelerations", default="2,4,8,12", help="comma-separated factors; 1 = every line"
    )
    parser.add_argument(
        "--mask-kind", default="equispaced", choices=("equispaced", "variable_density")
    )
    parser.add_argument("--cache-dir", default="runs/cache", help="where the test cohort is cached")
    parser.add_argument("--test-seed", type=int, default=TEST_SEED,
                        help="simulator seed of the test cohorts: fixed, so that weights "
                             "trained on any data seed meet the same test subjects")
    parser.add_argument(
        "--hd95-subjects", type=int, default=1000, help="subjects HD95 is computed on"
    )
    parser.add_argument(
        "--cohort-size",
        type=int,
        default=0,
        help="size of a cached test cohort to take the first --subjects from",
    )
    parser.add_argument(
        "--randomize",
        default="",
        choices=("", "none", "train", "shifted"),
        help="test cohort randomization; '' = as the weights were trained, 'shifted' = the "
        "held-out shifted cohort",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/eval", help="output directory (JSON, PNG plots)")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write results.json and the plots."""
    from dataclasses import replace

    import torch

    from kmtr_stream.evaluation.plots import plot_vs_acceleration
    from kmtr_stream.evaluation.run import evaluate, format_table
    from kmtr_stream.model.io import read_weights
    from kmtr_stream.training.config import evaluation_data_config

    torch.set_num_threads(args.threads)
    try:
        models = {"kmtr": read_weights(args.weights)}
        if args.recon:
            models["recon"] = read_weights(args.recon)
        if args.upper:
            models["upper"] = read_weights(args.upper)
        train_cfg = models["kmtr"].meta["training"]["config"]
        data = evaluation_data_config(train_cfg["data"], args.cache_dir, args.test_seed)
        if args.randomize:
            data = replace(data, sim={**data.sim, "randomize": args.randomize})
        accels = [int(a) for a in args.accelerations.split(",") if a.strip()]
        results = evaluate(
            models,
            data,
            args.subjects,
            accels,
            mask_kind=args.mask_kind,
            n_calib=int(train_cfg["train"]["n_calib"]),
            batch_size=args.batch_size,
            hd95_subjects=args.hd95_subjects,
            cohort_size=args.cohort_size,
        )
    except KmtrError as exc:
        print(f"error: {exc}")
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plots = plot_vs_acceleration(results, out)
    print(format_table(results))
    print(f"wrote {out / 'results.json'} and {len(plots)} plots")
    return 0
