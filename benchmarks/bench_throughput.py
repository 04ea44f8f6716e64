"""End-to-end readout throughput over ZeroMQ, against a bare pyzmq loop (prints figures).

Chain: client (StreamClient, encodes Acquisitions) -> ZeroMQ -> ZmqServer with
the pass-through chain (another process) -> back to the client, which decodes
every readout. It runs twice: ``configs/passthrough.toml`` as written (one
chain worker thread behind a queue) and the same chain with ``inline = true``
(gadgets in the server's I/O thread). Bare: the same frames through a
PUSH -> PULL/PUSH relay (another process) -> PULL loop, with no codec and no
chain; it moves the same bytes along the same topology in the same run. An
extra line gives a bare PUSH -> PULL loop without the relay (one process).
Medians of a few repeats.

Usage::

    .venv/bin/python benchmarks/bench_throughput.py [--readouts 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import ismrmrd
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
COILS, SAMPLES = 8, 256
INLINE = "passthrough_inline"


def make_readouts(n: int) -> list[ismrmrd.Acquisition]:
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((COILS, SAMPLES)) + 1j * rng.standard_normal((COILS, SAMPLES)))
    acqs = []
    for i in range(n):
        acq = ismrmrd.Acquisition.from_array(base.astype(np.complex64))
        acq.scan_counter = i
        acq.idx.kspace_encode_step_1 = i % 256
        acqs.append(acq)
    return acqs


# -- servers (child processes) -------------------------------------------------
def _chain_server(port_q: Any, stop_ev: Any) -> None:
    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.transport.catalog import ChainCatalog
    from kmtr_stream.transport.zmq_server import ZmqServer

    spec = load_chain_config(ROOT / "configs" / "passthrough.toml")
    catalog = ChainCatalog(
        {"passthrough": spec, INLINE: dataclasses.replace(spec, name=INLINE, inline=True)},
        "passthrough",
    )
    server = ZmqServer(catalog, "tcp://127.0.0.1:0")
    server.start()
    port_q.put(server.endpoint)
    stop_ev.wait()
    server.stop()


def _bare_relay(port_q: Any, stop_ev: Any) -> None:
    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    for s in (pull, push):
        s.linger = 0
        s.sndhwm = s.rcvhwm = 100_000
    p_in = pull.bind_to_random_port("tcp://127.0.0.1")
    p_out = push.bind_to_random_port("tcp://127.0.0.1")
    port_q.put((p_in, p_out))
    while not stop_ev.is_set():
        if pull.poll(100):
            while True:
                try:
                    frames = pull.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                push.send_multipart(frames, copy=False)
    ctx.destroy(0)


# -- clients (this process) ------------------------------------------------------
def run_chain(
    endpoint: str, acqs: list[ismrmrd.Acquisition], xml: str, chain: str = "passthrough"
) -> float:
    from kmtr_stream.messages import Close, ConfigFile, XmlHeader
    from kmtr_stream.transport.client import StreamClient

    t0 = time.perf_counter()
    with StreamClient.connect(endpoint) as client:
        client.send(ConfigFile(chain))
        client.send(XmlHeader(xml))
        client.send_many(acqs)
        client.send(Close())
        back = client.receive_until_close(120.0)
    dt = time.perf_counter() - t0
    got = sum(isinstance(m, ismrmrd.Acquisition) for m in back)
    assert got == len(acqs), f"{got} of {len(acqs)} readouts came back"
    return len(acqs) / dt


def _push_pull_pair() -> tuple[Any, Any]:
    ctx: zmq.Context[Any] = zmq.Context.instance()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for s in (push, pull):
        s.linger = 0
        s.sndhwm = s.rcvhwm = 100_000
    return push, pull


def _time_push_pull(push: Any, pull: Any, frames: list[Any], n: int) -> float:
    """Readouts/s: a sender thread pushes ``n`` messages while this thread pulls them."""
    time.sleep(0.2)  # let the connections settle before timing
    t0 = time.perf_counter()

    def send() -> None:
        for _ in range(n):
            push.send_multipart(frames, copy=False)

    sender = threading.Thread(target=send)
    sender.start()
    for _ in range(n):
        pull.recv_multipart(copy=False)
    sender.join()
    dt = time.perf_counter() - t0
    push.close(0)
    pull.close(0)
    return n / dt


def run_bare(ports: tuple[int, int], frames: list[Any], n: int) -> float:
    """PUSH -> relay process -> PULL: the chain's topology without codec or chain."""
    push, pull = _push_pull_pair()
    push.connect(f"tcp://127.0.0.1:{ports[0]}")
    pull.connect(f"tcp://127.0.0.1:{ports[1]}")
    return _time_push_pull(push, pull, frames, n)


def run_bare_direct(frames: list[Any], n: int) -> float:
    """PUSH -> PULL in this process (sender thread, receiving loop), no relay."""
    push, pull = _push_pull_pair()
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    return _time_push_pull(push, pull, frames, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readouts", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from kmtr_stream.codec.zmq_frames import encode_frames
    acqs = make_readouts(args.readouts)
    xml = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(
            H1resonanceFrequency_Hz=63_500_000),
        encoding=[],
    ).toXML()
    frames = [bytes(f) for f in encode_frames(acqs[0])]
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_chain_server, args=(q, stop)),
             ctx.Process(target=_bare_relay, args=(q, stop))]
    procs[0].start()
    endpoint = q.get(timeout=60)
    procs[1].start()
    ports = q.get(timeout=60)
    chain: list[float] = []
    inline: list[float] = []
    bare: list[float] = []
    direct: list[float] = []
    try:
        run_chain(endpoint, acqs[:1000], xml)  # warm-up
        run_chain(endpoint, acqs[:1000], xml, INLINE)
        for _ in range(args.repeats):
            bare.append(run_bare(ports, frames, args.readouts))
            chain.append(run_chain(endpoint, acqs, xml))
            inline.append(run_chain(endpoint, acqs, xml, INLINE))
            direct.append(run_bare_direct(frames, args.readouts))
    finally:
        stop.set()
        for p in procs:
            p.join(10)
    mb = sum(len(f) for f in frames) / 1e6
    c, b = statistics.median(chain), statistics.median(bare)
    i, d = statistics.median(inline), statistics.median(direct)
    print(f"readouts: {args.readouts} x {COILS} coils x {SAMPLES} samples complex64 "
          f"({mb * 1e3:.1f} kB each, {len(frames)} frames), {args.repeats} repeats, medians")
    print(f"bare pyzmq PUSH->relay->PULL    : {b:10,.0f} readouts/s  ({b * mb:7.1f} MB/s)")
    print(f"chain, worker thread (default)  : {c:10,.0f} readouts/s  ({c * mb:7.1f} MB/s)")
    print(f"chain, inline = true            : {i:10,.0f} readouts/s  ({i * mb:7.1f} MB/s)")
    print(f"chain / bare (worker thread)    : {c / b:10.1%}")
    print(f"chain / bare (inline)           : {i / b:10.1%}")
    print(f"extra: bare PUSH->PULL, no relay: {d:10,.0f} readouts/s  ({d * mb:7.1f} MB/s)")
    for label, xs in (("bare", bare), ("chain", chain), ("inline", inline), ("direct", direct)):
        print(f"all repeats {label:6s}:", ", ".join(f"{x:,.0f}" for x in xs))


if __name__ == "__main__":
    main()
