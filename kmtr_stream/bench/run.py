"""One bench run: k-MTR and recon-then-analyze served side by side, streamed A/B/A/B.

Each chain is served by its own process (ZeroMQ on loopback), so its peak RSS and
device memory are its own; the process sets its torch and OpenMP threads
explicitly (unset, torch runs a thread per core against the server's I/O and chain
threads, the cause of 5-30x outliers under contention). The bench process plays
the scanners: the same simulated subjects go to both chains in alternating rounds,
paced at one readout per TR and unpaced, and with several scanners at once.
The network alone is timed in this process on the very slices the chains saw.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kmtr_stream.process_tuning import set_threads

ROOT = Path(__file__).resolve().parents[2]
CHAINS = {"kmtr": ROOT / "configs" / "kmtr_streaming.toml",
          "recon_then_analyze": ROOT / "configs" / "recon_then_analyze.toml"}


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _device_mb() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    total = torch.cuda.max_memory_allocated() / 2**20
    try:
        import cupy

        total += cupy.get_default_memory_pool().total_bytes() / 2**20
    except Exception:
        pass
    return round(total, 1)


def _serve(config: str, threads: int, conn: Any) -> None:
    """Child process: serve one chain until told to stop; answer memory queries."""
    set_threads(threads)
    from kmtr_stream.process_tuning import tune_streaming_process
    from kmtr_stream.transport.catalog import ChainCatalog
    from kmtr_stream.transport.zmq_server import ZmqServer

    tune_streaming_process()
    server = ZmqServer(ChainCatalog.from_paths([config]), "tcp://127.0.0.1:0",
                       idle_timeout_s=600.0)
    server.start()
    conn.send({"endpoint": server.endpoint, "idle_rss_mb": _rss_mb("VmRSS")})
    while True:
        cmd = conn.recv()
        if cmd == "stats":
            conn.send({"peak_rss_mb": _rss_mb("VmHWM"), "peak_device_mb": _device_mb()})
        else:
            break
    server.stop()


@dataclass
class ChainServer:
    """A chain served by a child process."""

    name: str
    config: str
    proc: Any
    conn: Any
    endpoint: str
    idle_rss_mb: float

    @classmethod
    def start(cls, name: str, config: str | Path, threads: int) -> ChainServer:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve, args=(str(config), threads, child), daemon=True)
        proc.start()
        if not parent.poll(180):
            proc.kill()
            raise RuntimeError(f"server of {name} did not start within 180 s")
        hello = parent.recv()
        return cls(name, str(config), proc, parent, hello["endpoint"], hello["idle_rss_mb"])

    def stats(self) -> dict[str, Any]:
        self.conn.send("stats")
        return dict(self.conn.recv())

    def stop(self) -> None:
        try:
            self.conn.send("stop")
        except OSError:
            pass
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def simulate(n: int, seed: int, cfg: Any) -> list[Any]:
    """``n`` held-out subjects (one per class in turn), simulated once for every chain."""
    from kmtr_stream.conventions import CLASSES
    from simulator.dataset import subject_id_for
    from simulator.scan import simulate_scan

    return [simulate_scan(subject_id_for("test", i), seed, cfg, diagnosis=i % len(CLASSES))
            for i in range(n)]


def stream_all(url: str, scans: list[Any], cfg: Any, pace: bool, scanners: int,
               duration_s: float = 0.0, timeout_s: float = 300.0) -> list[dict[str, Any]]:
    """Stream the scans from ``scanners`` concurrent clients; figures of every stream.

    A scanner whose stream gets no CLOSE within ``timeout_s`` (a chain that cannot keep
    up) adds ``{"failed": True, "error", "t_start_s"}`` and stops; other errors raise.

    With ``duration_s`` each scanner keeps streaming (cycling the scans) until then;
    each figure records when its stream started (``t_start_s``, from the run's start).
    """
    from kmtr_stream.bench.stats import stream_figures
    from kmtr_stream.demo.scanner import stream_scan
    from kmtr_stream.transport.client import ClientTimeoutError

    out: list[dict[str, Any]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    t_run = time.perf_counter()

    def scanner(k: int) -> None:
        count = 0
        try:
            while True:
                scan = scans[(k + count) % len(scans)]
                t0 = time.perf_counter() - t_run
                try:
                    rep = stream_scan(scan, cfg, url, pace=pace, timeout_s=timeout_s)
                except ClientTimeoutError as exc:
                    # an overloaded chain: counted in the report, not a crash after minutes
                    with lock:
                        out.append({"failed": True, "error": str(exc), "t_start_s": t0})
                    break
                fig = stream_figures(rep.replies, rep.arrival_s, rep.send_s, rep.sent - 1)
                fig["t_start_s"] = t0
                fig["errors"] = rep.errors
                with lock:
                    out.append(fig)
                count += 1
                if duration_s <= 0 and count >= len(scans):
                    break
                if duration_s > 0 and time.perf_counter() - t_run >= duration_s:
                    break
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=scanner, args=(k,)) for k in range(scanners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def network_alone(config: str | Path, scans: list[Any], cfg: Any) -> float:
    """Slices/s of the chain's network alone, one slice at a time, on the same slices.

    The slices are prepared by the batch chain's own gadgets (no sockets), then only
    the network (``infer_slice``, as the batch inference gadgets run it) is timed.
    """
    from kmtr_stream.chain import registry
    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.chain.gadget import ChainContext, StreamHeader
    from kmtr_stream.chain.stages import run_gadgets
    from kmtr_stream.messages import SliceKSpace
    from kmtr_stream.model.inference import infer_slice
    from kmtr_stream.model.io import load_model

    spec = load_chain_config(config)
    if any(g.type_name == "kmtr_streaming" for g in spec.gadgets):
        # a streaming chain's network is the batch chain's network
        spec = load_chain_config(ROOT / "configs" / "kmtr.toml")
    infer = spec.gadgets[-2]
    model = load_model(infer.params.model)
    total, n = 0.0, 0
    for scan in scans:
        ctx = ChainContext.for_stream(StreamHeader.parse(scan.xml(cfg)))
        gadgets = [registry.lookup(g.type_name)(g.id, g.params, ctx) for g in spec.gadgets[:-2]]
        slices = [m for m in run_gadgets(gadgets, scan.acquisitions(cfg), raise_errors=True)
                  if isinstance(m, SliceKSpace)]
        infer_slice(model, slices[0])  # warm
        t0 = time.perf_counter()
        for s in slices:
            infer_slice(model, s)
        total += time.perf_counter() - t0
        n += len(slices)
    return n / total if total else 0.0


def scaled(cfg: Any, matrix: int, coils: int) -> Any:
    """The protocol with ``matrix`` readout samples (after oversampling removal) and coils."""
    return replace(cfg, nx=matrix, ny=matrix, n_coils=coils,
                   n_calib=max(cfg.n_calib * matrix // 64, 1))
