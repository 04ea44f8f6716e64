"""``kmtr-stream simulate``: write simulated cardiac scans, or stream one live.

``--out DIR --subjects N`` writes ISMRMRD HDF5 datasets with ground-truth
sidecars (see :mod:`simulator.writer`); ``--stream URL`` streams one subject
to a server at one readout per TR (``--no-pace``: as fast as possible) and
prints, and with ``--out`` saves, what comes back.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace

from kmtr_stream.conventions import CLASSES
from kmtr_stream.errors import KmtrError
from kmtr_stream.messages import ErrorReport, Result
from simulator.config import SimConfig

log = logging.getLogger("kmtr_stream.simulate")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``simulate``."""
    parser.add_argument(
        "--out", default=None, help="output directory (datasets, or stream replies)"
    )
    parser.add_argument(
        "--stream",
        default=None,
        metavar="URL",
        help="stream one subject live: tcp://host:port (ZeroMQ) or mrd://host:port",
    )
    parser.add_argument("--subjects", type=int, default=1, help="number of subjects to write")
    parser.add_argument("--first-id", type=int, default=0, help="subject id of the first subject")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed")
    parser.add_argument("--accel", type=int, default=4, help="acceleration factor (2..12)")
    parser.add_argument("--ordering", choices=("linear", "centre-out"), default="linear")
    parser.add_argument("--mask", choices=("equispaced", "variable_density"), default="equispaced")
    parser.add_argument(
        "--snr", type=float, default=40.0, help="blood SNR of a coil-combined image"
    )
    parser.add_argument("--coils", type=int, default=8, help="receive coils")
    parser.add_argument("--phases", type=int, default=10, help="cardiac phases")
    parser.add_argument(
        "--partial-echo", type=float, default=1.0,
        help="share of each readout acquired (below 1: an asymmetric echo, e.g. 0.8)",
    )
    parser.add_argument(
        "--adc-discard", type=int, default=0,
        help="extra ADC samples at each end of a readout, flagged discard_pre/discard_post",
    )
    parser.add_argument(
        "--diagnosis",
        choices=CLASSES,
        default=None,
        help="force the class of every subject (default: drawn)",
    )
    parser.add_argument("--tr-ms", type=float, default=3.0, help="readout pacing when streaming")
    parser.add_argument("--no-pace", action="store_true", help="stream as fast as possible")
    parser.add_argument("--chain", default=None, help="server-side chain to select when streaming")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=120.0,
        help="how long to wait for the server's CLOSE when streaming",
    )


def _write(args: argparse.Namespace, cfg: SimConfig, diagnosis: int | None) -> int:
    from simulator.writer import write_subject

    t0 = time.perf_counter()
    for i in range(args.subjects):
        sid = args.first_id + i
        path = write_subject(sid, args.seed, cfg, args.out, diagnosis)
        meta = json.loads(path.with_name(path.stem + "_truth.json").read_text())
        ph = meta["phenotypes"]
        print(
            f"{path.name}: {meta['diagnosis']} LVEF {ph['LVEF']:.0f}% LVEDV {ph['LVEDV']:.0f} mL "
            f"RVEF {ph['RVEF']:.0f}% ES phase {meta['es_phase']}"
        )
    print(f"wrote {args.subjects} subjects to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _stream(args: argparse.Namespace, cfg: SimConfig, diagnosis: int | None) -> int:
    from kmtr_stream.demo.scanner import save_replies, stream_scan
    from simulator.scan import simulate_scan

    scan = simulate_scan(args.first_id, args.seed, cfg, diagnosis)
    truth = scan.subject
    print(
        f"subject {args.first_id}: {CLASSES[truth.diagnosis]}, truth "
        + ", ".join(f"{k} {v:.1f}" for k, v in truth.phenotypes.items())
    )
    report = stream_scan(
        scan, cfg, args.stream, pace=not args.no_pace, chain=args.chain, timeout_s=args.timeout_s
    )
    print(f"sent {report.sent} messages in {report.send_s:.2f} s; {len(report.replies)} replies")
    others: dict[str, int] = {}
    for msg, t in zip(report.replies, report.arrival_s, strict=True):
        if isinstance(msg, Result):
            body = json.dumps(msg.body, default=str)
            print(f"+{t * 1000:.0f} ms result {msg.kind}: {body[:300]}")
        elif isinstance(msg, ErrorReport):
            print(f"+{t * 1000:.0f} ms error {msg.code}: {msg.message}")
        else:
            others[type(msg).__name__] = others.get(type(msg).__name__, 0) + 1
    if others:
        print("other replies: " + ", ".join(f"{n} {k}" for k, n in sorted(others.items())))
    if args.out:
        save_replies(report, args.out, scan.xml(cfg))
        print(f"saved replies in {args.out}")
    return 1 if report.errors else 0


def run(args: argparse.Namespace) -> int:
    """Write datasets or stream one subject; exit 2 on bad arguments or failures."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.stream is None and args.out is None:
        log.error("give --out DIR (write datasets) or --stream URL (stream one subject)")
        return 2
    try:
        cfg = replace(
            SimConfig(),
            accel=args.accel,
            ordering=args.ordering,
            mask_kind=args.mask,
            snr=args.snr,
            n_coils=args.coils,
            n_phases=args.phases,
            tr_ms=args.tr_ms,
            partial_echo=args.partial_echo,
            adc_discard=args.adc_discard,
        )
        diagnosis = CLASSES.index(args.diagnosis) if args.diagnosis else None
        if args.stream is not None:
            return _stream(args, cfg, diagnosis)
        return _write(args, cfg, diagnosis)
    except KmtrError as exc:
        log.error("%s", exc)
        return 2
