"""Myocardium Dice of the demo subjects with partial-echo readouts, through both chains.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/partial_echo_dice.py

Streams the 5 demo subjects (test ids 1,000,000-1,000,004, default protocol, 4x,
unpaced) over ZeroMQ to each chain with 100 / 90 / 80 / 75 % of each readout acquired
(``SimConfig.partial_echo``) and prints the per-subject and mean myocardium Dice of the
returned label maps against the simulator's (``docs/figures/partial_echo.txt``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from kmtr_stream.demo.run_demo import LocalServers, run_subject
from simulator.config import SimConfig

CHAINS = ("configs/kmtr_streaming.toml", "configs/recon_then_analyze.toml")
ECHOES = (1.0, 0.9, 0.8, 0.75)


def main() -> None:
    torch.set_num_threads(1)
    cfg = SimConfig(n_noise_readouts=8, tr_ms=0.5)
    for config in CHAINS:
        with LocalServers([config]) as servers:
            for echo in ECHOES:
                c = replace(cfg, partial_echo=echo)
                dice = [run_subject(servers.url("zmq"), i, 0, c, pace=False).outcome.dice_myo
                        for i in range(5)]
                print(config, echo, np.round(dice, 3), round(float(np.mean(dice)), 3),
                      flush=True)


if __name__ == "__main__":
    main()
