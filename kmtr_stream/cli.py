"""``kmtr-stream`` command line: one sub-command per module, imported lazily.

Only the module of the sub-command being run is imported (``send`` must not
pay for torch, which ``demo``, ``train`` and ``evaluate`` load); the top-level
``--help`` lists the commands without importing any.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from kmtr_stream.process_tuning import tune_streaming_process

# sub-command -> module defining ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kmtr_stream.cli_demo", "end-to-end demo on the shipped default model"),
    "serve": ("kmtr_stream.cli_serve", "serve chains over ZeroMQ and MRD/TCP"),
    "send": ("kmtr_stream.cli_send", "stream an ISMRMRD HDF5 dataset to a server, save replies"),
    "simulate": ("kmtr_stream.cli_simulate", "simulate scans: ISMRMRD datasets or a live stream"),
    "train": ("kmtr_stream.cli_train", "train k-MTR or a baseline from a TOML config"),
    "evaluate": ("kmtr_stream.cli_evaluate", "evaluate k-MTR and baselines per acceleration"),
    "calibrate-ood": (
        "kmtr_stream.cli_calibrate", "fit the out-of-distribution score of trained weights"
    ),
    "robustness": (
        "kmtr_stream.cli_robustness", "pose, shifted-cohort and out-of-distribution checks"
    ),
    "gadgets": ("kmtr_stream.cli_gadgets", "list every gadget type with its parameters"),
    "trace": ("kmtr_stream.cli_trace", "per-stage latency table of a serve --trace file"),
    "bench": ("kmtr_stream.cli_bench", "k-MTR against recon-then-analyze over real sockets"),
    "keys": ("kmtr_stream.cli_keys", "CurveZMQ keypairs for serve --curve-keys and send"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kmtr-stream`` console command."""
    # One BLAS thread per process unless the user says otherwise: the per-line and
    # per-buffer maths are small, and OpenBLAS thread pools spinning against the
    # server's I/O and chain threads multiplied latencies several-fold on 2 cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="kmtr-stream",
        description="k-MTR Stream: streaming cardiac MRI analysis from undersampled k-space",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    parsers = {name: sub.add_parser(name, help=help_text)
               for name, (_, help_text) in COMMANDS.items()}
    # The top-level parser takes no option but -h, so the first word is the command.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    if chosen in COMMANDS:
        module = importlib.import_module(COMMANDS[chosen][0])
        module.add_arguments(parsers[chosen])
    args = parser.parse_args(argv)
    assert module is not None  # parse_args exits on an unknown or missing command
    tune_streaming_process()
    return int(module.run(args))


if __name__ == "__main__":
    sys.exit(main())
