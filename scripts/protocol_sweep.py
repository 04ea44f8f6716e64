"""Stream the same subjects at several protocols through a chain; Dice against the default.

    python scripts/protocol_sweep.py [--subjects 10] [--config configs/kmtr.toml]

Each subject is drawn once under the default protocol (the model's grid: 64 x 64
over 200 mm, 8 coils); the same anatomy is then scanned at other matrices,
fields of view and coil counts, streamed over ZeroMQ on 127.0.0.1 to a locally
served chain, and its returned label maps (on the model grid) are scored against
the default protocol's ground truth.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import torch

from kmtr_stream.conventions import CLASSES
from kmtr_stream.demo.report import SubjectOutcome, collect
from kmtr_stream.demo.run_demo import LocalServers
from kmtr_stream.demo.scanner import stream_scan
from simulator.cohort import make_subject
from simulator.config import SimConfig
from simulator.dataset import subject_id_for
from simulator.scan import simulate_scan

PROTOCOLS: dict[str, dict[str, object]] = {
    "default 64x64 200mm 8ch": {},
    "matrix 96 200mm": {"nx": 96, "ny": 96},
    "matrix 128 200mm": {"nx": 128, "ny": 128},
    "matrix 48 200mm": {"nx": 48, "ny": 48},
    "fov 300mm matrix 96": {"nx": 96, "ny": 96, "fov_x_mm": 300.0, "fov_y_mm": 300.0},
    "16 coils": {"n_coils": 16},
    "32 coils": {"n_coils": 32},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=10)
    ap.add_argument("--config", default="configs/kmtr.toml")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = SimConfig()
    rows: dict[str, list[float]] = {}
    with LocalServers([args.config]) as servers:
        for name, over in PROTOCOLS.items():
            cfg = replace(base, **over)  # type: ignore[arg-type]
            dices = []
            for i in range(args.subjects):
                sid = subject_id_for("test", i)
                subject = make_subject(sid, 0, base, diagnosis=i % len(CLASSES))
                scan = simulate_scan(sid, 0, cfg, subject=subject)
                report = stream_scan(scan, cfg, servers.url("zmq"), pace=False, timeout_s=120.0)
                o = SubjectOutcome(subject_id=sid, true_class="", true_phenotypes={})
                o = collect(o, report.replies, subject.labels)
                if o.errors:
                    raise SystemExit(f"{name}: subject {sid}: {o.errors[0].message}")
                dices.append(o.dice_myo)
            rows[name] = dices
            print(f"{name:<26} myo Dice {np.mean(dices):.3f} (n={len(dices)})", flush=True)
    ref = float(np.mean(rows["default 64x64 200mm 8ch"]))
    print("difference to the default protocol:")
    for name, d in rows.items():
        print(f"  {name:<26} {float(np.mean(d)) - ref:+.3f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({k: [float(x) for x in v] for k, v in rows.items()}, f, indent=1)


if __name__ == "__main__":
    main()
