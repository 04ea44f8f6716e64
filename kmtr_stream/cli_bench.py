"""``kmtr-stream bench``: k-MTR against recon-then-analyze, one command, one run.

Both chains are served (each by its own process, ZeroMQ on loopback) and the same
simulated subjects are streamed to them in alternating rounds (A/B/A/B), paced at
one readout per TR and unpaced; the network alone is timed on the same slices.
Writes ``bench.json`` and ``bench.png`` (latency distributions, per-stage bars).
``--scaling`` adds the table against matrix size, coil count and scanners.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from kmtr_stream.bench.run import (
    CHAINS,
    ROOT,
    ChainServer,
    network_alone,
    scaled,
    simulate,
    stream_all,
)
from kmtr_stream.bench.stats import (
    BENCH_SCHEMA_VERSION,
    chain_summary,
    quarter_figures,
    stream_errors,
    validate_report,
)
from kmtr_stream.process_tuning import set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``bench``."""
    parser.add_argument("--subjects", type=int, default=5, help="subjects per round and chain")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (paced and unpaced)")
    parser.add_argument("--accel", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--slices", type=int, default=0, help="slices per subject (0: default)")
    parser.add_argument("--phases", type=int, default=0, help="phases per subject (0: default)")
    parser.add_argument("--scanners", type=int, default=1, help="concurrent scanners")
    parser.add_argument("--duration-s", type=float, default=0.0,
                        help="paced: keep every scanner streaming this long (0: one pass)")
    parser.add_argument("--no-unpaced", action="store_true", help="skip the unpaced rounds")
    parser.add_argument("--no-paced", action="store_true", help="skip the paced rounds")
    parser.add_argument("--scaling", action="store_true",
                        help="also the table against matrix (64, 128, 256), coils (8, 16, 32) "
                             "and scanners (1, 4, 16)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads of every process")
    parser.add_argument("--kmtr-config", default=str(CHAINS["kmtr"]),
                        help="chain config served as the k-MTR chain")
    parser.add_argument("--recon-config", default=str(CHAINS["recon_then_analyze"]),
                        help="chain config served as the recon-then-analyze chain")
    parser.add_argument("--out", default="out/bench", help="folder of bench.json and bench.png")


def _machine() -> dict[str, Any]:
    import os

    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {"python": platform.python_version(), "torch": torch.__version__,
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "load_average_at_start": [round(x, 2) for x in load]}


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu ({platform.machine()}, {os.cpu_count()} cores)"


def _round_robin(servers: dict[str, ChainServer], scans: list[Any], cfg: Any, rounds: int,
                 pace: bool, scanners: int, duration_s: float) -> dict[str, list[Any]]:
    streams: dict[str, list[Any]] = {n: [] for n in servers}
    for _ in range(rounds):
        for name, srv in servers.items():  # A, B, A, B: drifts hit both alike
            streams[name] += stream_all(srv.endpoint, scans, cfg, pace, scanners, duration_s)
    return streams


def chain_configs(args: argparse.Namespace) -> dict[str, Path]:
    """The two chains' config files, in bench order."""
    return {"kmtr": Path(args.kmtr_config), "recon_then_analyze": Path(args.recon_config)}


def _shown(path: Path) -> str:
    """``path`` relative to the project when it lies inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def bench(args: argparse.Namespace, cfg: Any, scans: list[Any]) -> dict[str, Any]:
    """One run of the protocol for ``cfg``; the report's ``chains`` part and its order."""
    configs = chain_configs(args)
    servers = {n: ChainServer.start(n, p, args.threads) for n, p in configs.items()}
    try:
        for srv in servers.values():  # warm-up stream per chain, not counted
            stream_all(srv.endpoint, scans[:1], cfg, False, 1)
        chains: dict[str, Any] = {n: {"config": _shown(configs[n])} for n in servers}
        if not args.no_paced:
            paced = _round_robin(servers, scans, cfg, args.rounds, True, args.scanners,
                                 args.duration_s)
            for n, runs in paced.items():
                chains[n]["paced"] = chain_summary(runs)
                chains[n]["errors"] = stream_errors(runs)
                if args.duration_s > 0:  # does latency grow over the run?
                    chains[n]["paced"].update(quarter_figures(runs))
        if not args.no_unpaced:
            unpaced = _round_robin(servers, scans, cfg, args.rounds, False, args.scanners, 0.0)
            for n, runs in unpaced.items():
                chains[n]["unpaced"] = chain_summary(runs)
                chains[n]["network_alone_slices_per_s"] = round(
                    network_alone(configs[n], scans[:2], cfg), 2)
                sps = chains[n]["unpaced"]["slices_per_s"] or 0.0
                chains[n]["unpaced_share_of_network_alone"] = round(
                    sps / chains[n]["network_alone_slices_per_s"], 3)
        for n, srv in servers.items():
            mem = srv.stats()
            chains[n]["idle_rss_mb"] = round(srv.idle_rss_mb, 1)
            chains[n]["peak_rss_mb"] = round(mem["peak_rss_mb"], 1)
            chains[n]["rss_per_connection_mb"] = round(
                (mem["peak_rss_mb"] - srv.idle_rss_mb) / max(args.scanners, 1), 2)
            chains[n]["peak_device_mb"] = mem["peak_device_mb"]
        return chains
    finally:
        for srv in servers.values():
            srv.stop()


def _scaling(args: argparse.Namespace, base: Any) -> list[dict[str, Any]]:
    rows = []
    cells = ([("matrix", m, 8, 1) for m in (64, 128, 256)]
             + [("coils", 64, c, 1) for c in (16, 32)] + [("scanners", 64, 8, s) for s in (4, 16)])
    for what, matrix, coils, scanners in cells:
        cfg = scaled(base, matrix, coils)
        sub = argparse.Namespace(**{**vars(args), "scanners": scanners, "rounds": 1,
                                    "duration_s": 0.0})
        scans = simulate(max(1, min(args.subjects, 2)), args.seed, cfg)
        chains = bench(sub, cfg, scans)
        rows.append({"vary": what, "matrix": matrix, "coils": coils, "scanners": scanners,
                     **{n: {"post_last_line_ms": c.get("paced", {}).get("post_last_line_ms"),
                            "readouts_per_s": c.get("unpaced", {}).get("readouts_per_s"),
                            "peak_rss_mb": c["peak_rss_mb"]} for n, c in chains.items()}})
    return rows


def format_report(report: dict[str, Any]) -> str:
    """Side-by-side text of the report."""
    names = list(report["chains"])
    lines = [f"device: {report['device']}; {report['protocol']}"]

    def row(label: str, get: Any) -> None:
        vals = []
        for n in names:
            try:
                v = get(report["chains"][n])
            except (KeyError, TypeError):
                v = None
            vals.append("-" if v is None else f"{v:,.2f}" if isinstance(v, float) else str(v))
        lines.append(f"{label:44s}" + "".join(f"{v:>22s}" for v in vals))

    lines.append(f"{'':44s}" + "".join(f"{n:>22s}" for n in names))
    for mode in ("paced", "unpaced"):
        for stat in ("median", "p95", "p99", "max"):
            row(f"{mode}: post-last-line {stat} (ms)",
                lambda c, m=mode, s=stat: c[m]["post_last_line_ms"][s])
        row(f"{mode}: subject result after last readout (ms)",
            lambda c, m=mode: c[m]["subject_after_last_readout_ms"]["median"])
        row(f"{mode}: first result of a subject (s)",
            lambda c, m=mode: c[m]["first_result_s"]["median"])
        row(f"{mode}: readouts/s", lambda c, m=mode: c[m]["readouts_per_s"])
        row(f"{mode}: slices/s", lambda c, m=mode: c[m]["slices_per_s"])
        row(f"{mode}: failed streams (no CLOSE in time)",
            lambda c, m=mode: c[m]["failed_streams"])
    row("network alone: slices/s", lambda c: c["network_alone_slices_per_s"])
    row("unpaced slices/s / network alone", lambda c: c["unpaced_share_of_network_alone"])
    row("peak RSS (MB)", lambda c: c["peak_rss_mb"])
    row("RSS per connection (MB)", lambda c: c["rss_per_connection_mb"])
    row("peak device memory (MB)", lambda c: c["peak_device_mb"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run, print, write bench.json and bench.png."""
    from simulator.config import SimConfig

    set_threads(args.threads)
    cfg = SimConfig(accel=args.accel)
    if args.slices or args.phases:
        cfg = SimConfig(accel=args.accel, n_slices=args.slices or cfg.n_slices,
                        n_phases=args.phases or cfg.n_phases)
    t0 = time.perf_counter()
    scans = simulate(args.subjects, args.seed, cfg)
    report: dict[str, Any] = {
        "schema_version": BENCH_SCHEMA_VERSION,
        "command": " ".join(["kmtr-stream", *sys.argv[2:]]) if sys.argv[1:2] == ["bench"]
        else "kmtr-stream bench",
        "device": _device(), "machine": _machine(),
        "protocol": {"accel": args.accel, "subjects": args.subjects, "rounds": args.rounds,
                     "scanners": args.scanners, "duration_s": args.duration_s,
                     "slices": cfg.n_slices, "phases": cfg.n_phases, "tr_ms": cfg.tr_ms,
                     "matrix": cfg.nx, "coils": cfg.n_coils, "threads": args.threads},
        "order": list(chain_configs(args)),
    }
    report["chains"] = bench(args, cfg, scans)
    if args.scaling:
        report["scaling"] = _scaling(args, cfg)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    validate_report(report)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    print(format_report(report))
    try:
        from kmtr_stream.bench.plots import plot_report

        plot_report(report, out / "bench.png")
        print(f"wrote {out / 'bench.json'} and {out / 'bench.png'}")
    except ImportError:
        print(f"wrote {out / 'bench.json'} (no PNG: matplotlib is not installed)")
    return 0 if all(not c.get("errors") for c in report["chains"].values()) else 1
