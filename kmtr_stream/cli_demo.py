"""``kmtr-stream demo``: the end-to-end job on the shipped default model.

Starts the ZeroMQ and MRD/TCP endpoints on loopback with ``configs/kmtr.toml``,
streams held-out simulated subjects readout by readout (one per disease class
by default), and prints the network's diagnosis, phenotypes and segmentation
Dice next to the simulator's ground truth, with the latencies measured.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kmtr_stream.demo.report import format_table
from kmtr_stream.demo.run_demo import LocalServers, stream_subject
from simulator.config import SimConfig

DEFAULT_CHAIN = Path(__file__).resolve().parent.parent / "configs" / "kmtr.toml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``demo``."""
    parser.add_argument("--config", default=str(DEFAULT_CHAIN), help="chain config to serve")
    parser.add_argument("--subjects", type=int, default=5, help="subjects to stream")
    parser.add_argument("--seed", type=int, default=2026, help="simulator seed")
    parser.add_argument("--accel", type=int, default=4, help="acceleration (2..12)")
    parser.add_argument("--transport", choices=("zmq", "mrd"), default="zmq")
    parser.add_argument("--no-pace", action="store_true",
                        help="send as fast as possible instead of one readout per TR")
    parser.add_argument("--out", default="out/demo", help="where results.json goes")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads (set explicitly: see process_tuning)")


def run(args: argparse.Namespace) -> int:
    """Serve, stream, print and save; non-zero exit if any subject got no subject result."""
    from kmtr_stream.process_tuning import set_threads

    set_threads(args.threads)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = SimConfig(accel=args.accel)
    outcomes = []
    with LocalServers([args.config]) as servers:
        url = servers.url(args.transport)
        print(f"serving {args.config} on {url}; "
              f"streaming {args.subjects} subjects at R={args.accel}")
        for i in range(args.subjects):
            outcome = stream_subject(url, i, args.seed, cfg, pace=not args.no_pace)
            outcomes.append(outcome)
            print(format_table([outcome]), flush=True)
    n_right = sum(o.predicted_class == o.true_class for o in outcomes)
    dices = [o.dice_myo for o in outcomes if np.isfinite(o.dice_myo)]
    lat = [x for o in outcomes for x in o.post_last_line_ms()]
    print(f"\nclass correct {n_right}/{len(outcomes)}; "
          f"mean myo Dice {np.mean(dices) if dices else float('nan'):.3f}; "
          f"post-last-line latency median {np.median(lat) if lat else float('nan'):.1f} ms")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{**asdict(o), "errors": [asdict(e) for e in o.errors]} for o in outcomes]
    (out / "results.json").write_text(json.dumps(rows, indent=1, default=float))
    print(f"wrote {out / 'results.json'}")
    return 0 if all(o.subject is not None for o in outcomes) else 1
