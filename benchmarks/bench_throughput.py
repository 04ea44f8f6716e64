"""End-to-end readout throughput over ZeroMQ, against bare pyzmq loops (prints figures).

Chain: client (StreamClient: encodes Acquisitions, decodes every reply) ->
ZeroMQ -> ZmqServer with the pass-through chain (another process) -> back to
the client. Each readout crosses loopback twice. The chain runs as
``configs/passthrough.toml`` ships (``inline = true``: the gadget runs in the
server's I/O thread) and with ``inline = false`` (one worker thread behind a
queue), each way sending

* one ZeroMQ message per readout (``send_many(pack=1)``: how a live scanner
  feed that yields one readout per TR goes out), and
* packed messages of ``--pack`` readouts (``send_many(pack=N)``: a recorded
  dataset, or any burst already in hand); the server packs its replies the
  same way whenever several are waiting.

``--working-set`` readouts are distinct and cycled: 256 (the default, one
slice's k-space, 4.3 MB) stays in the CPU cache as a scanner's freshly
acquired lines do; 0 makes all of them distinct (336 MB for 20,000), as when
streaming a recorded file.

Bare: the same frames through a PUSH -> PULL/PUSH relay (another process) ->
PULL loop with no codec and no chain, once per readout message and once with
the packed messages the chain client sends: the same bytes along the same
topology in the same run. An extra line gives a PUSH -> PULL loop without
the relay (one hop, one process). Medians of the repeats; the runs of one
repeat are interleaved so that drifts in machine speed hit all of them alike.

Usage::

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_throughput.py \
        [--readouts 20000] [--repeats 5] [--pack 16] [--working-set 256]
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
#: The stream's header: chains are built with it, so it describes the readouts sent.
HEADER_XML = (
    '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
    "<experimentalConditions><H1resonanceFrequency_Hz>63500000</H1resonanceFrequency_Hz>"
    "</experimentalConditions><encoding><encodedSpace><matrixSize><x>256</x><y>256</y><z>1</z>"
    "</matrixSize><fieldOfView_mm><x>400</x><y>400</y><z>8</z></fieldOfView_mm></encodedSpace>"
    "<reconSpace><matrixSize><x>256</x><y>256</y><z>1</z></matrixSize><fieldOfView_mm>"
    "<x>400</x><y>400</y><z>8</z></fieldOfView_mm></reconSpace><encodingLimits/>"
    "<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
)
WORKER = "passthrough_worker"


def make_readouts(n: int, working_set: int | None = None) -> list[ismrmrd.Acquisition]:
    """``n`` readouts cycling through ``working_set`` distinct ones (default: all distinct)."""
    rng = np.random.default_rng(0)
    distinct = []
    for i in range(min(n, working_set or n)):
        data = rng.standard_normal((COILS, SAMPLES)) + 1j * rng.standard_normal((COILS, SAMPLES))
        acq = ismrmrd.Acquisition.from_array(data.astype(np.complex64))
        acq.scan_counter = i
        acq.idx.kspace_encode_step_1 = i % 256
        distinct.append(acq)
    return [distinct[i % len(distinct)] for i in range(n)]


# -- servers (child processes) -------------------------------------------------
def _chain_server(port_q: Any, stop_ev: Any) -> None:
    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.process_tuning import tune_streaming_process
    from kmtr_stream.transport.catalog import ChainCatalog
    from kmtr_stream.transport.zmq_server import ZmqServer

    spec = load_chain_config(ROOT / "configs" / "passthrough.toml")
    catalog = ChainCatalog(
        {"passthrough": spec, WORKER: dataclasses.replace(spec, name=WORKER, inline=False)},
        "passthrough",
    )
    tune_streaming_process()  # as `kmtr-stream serve` does
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
    endpoint: str,
    acqs: list[ismrmrd.Acquisition],
    xml: str,
    chain: str = "passthrough",
    pack: int = 1,
) -> float:
    """Readouts/s: stream ``acqs`` through ``chain`` and count the readouts that come back."""
    from kmtr_stream.messages import Close, ConfigFile, XmlHeader
    from kmtr_stream.transport.client import StreamClient

    t0 = time.perf_counter()
    got = 0
    with StreamClient.connect(endpoint) as client:
        client.send(ConfigFile(chain))
        client.send(XmlHeader(xml))
        client.send_many(acqs, pack=pack)
        client.send(Close())
        for msg in client.replies(120.0):  # counted, not kept (as the bare loop does)
            got += type(msg) is ismrmrd.Acquisition
    dt = time.perf_counter() - t0
    assert got == len(acqs), f"{got} of {len(acqs)} readouts came back"
    return len(acqs) / dt


def _push_pull_pair() -> tuple[Any, Any]:
    ctx: zmq.Context[Any] = zmq.Context.instance()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    for s in (push, pull):
        s.linger = 0
        s.sndhwm = s.rcvhwm = 100_000
    return push, pull


def _time_push_pull(push: Any, pull: Any, messages: list[list[bytes]], n: int) -> float:
    """Messages/s: a sender thread pushes ``n`` messages (cycling ``messages``) while this
    thread pulls them."""
    time.sleep(0.2)  # let the connections settle before timing
    t0 = time.perf_counter()

    def send() -> None:
        k = len(messages)
        for i in range(n):
            push.send_multipart(messages[i % k], copy=False)

    sender = threading.Thread(target=send)
    sender.start()
    for _ in range(n):
        pull.recv_multipart(copy=False)
    sender.join()
    dt = time.perf_counter() - t0
    push.close(0)
    pull.close(0)
    return n / dt


def run_bare(ports: tuple[int, int], frames: list[list[bytes]], n: int) -> float:
    """PUSH -> relay process -> PULL: the chain's topology without codec or chain."""
    push, pull = _push_pull_pair()
    push.connect(f"tcp://127.0.0.1:{ports[0]}")
    pull.connect(f"tcp://127.0.0.1:{ports[1]}")
    return _time_push_pull(push, pull, frames, n)


def run_bare_direct(frames: list[list[bytes]], n: int) -> float:
    """PUSH -> PULL in this process (sender thread, receiving loop), no relay."""
    push, pull = _push_pull_pair()
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push.connect(f"tcp://127.0.0.1:{port}")
    return _time_push_pull(push, pull, frames, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readouts", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pack", type=int, default=16, help="readouts per packed message")
    parser.add_argument("--working-set", type=int, default=256,
                        help="distinct readouts, cycled (256: one slice's k-space, cache-warm "
                             "as a scanner's fresh lines are; 0: all distinct, as from a file)")
    args = parser.parse_args()

    from kmtr_stream.codec.zmq_frames import encode_frames
    from kmtr_stream.codec.zmq_packed import pack_frames
    from kmtr_stream.process_tuning import tune_streaming_process

    tune_streaming_process()  # the client side, as `kmtr-stream send` does

    n, k = args.readouts, args.pack
    acqs = make_readouts(n, args.working_set or None)
    distinct = acqs[: args.working_set or n]
    xml = HEADER_XML
    # The bare loops send the chain client's own bytes: the same readouts, cycled alike.
    frames = [[bytes(f) for f in encode_frames(a)] for a in distinct]
    packed = [[bytes(f) for f in pack_frames([encode_frames(a) for a in distinct[i:i + k]])]
              for i in range(0, len(distinct) - k + 1, k)]
    ctx = mp.get_context("spawn")
    q, stop = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_chain_server, args=(q, stop)),
             ctx.Process(target=_bare_relay, args=(q, stop))]
    procs[0].start()
    endpoint = q.get(timeout=60)
    procs[1].start()
    ports = q.get(timeout=60)
    runs: dict[str, Any] = {
        "bare relay, 1 readout/message": lambda: run_bare(ports, frames, n),
        f"bare relay, {k} readouts/message": lambda: k * run_bare(ports, packed, n // k),
        "chain as shipped (inline), unpacked": lambda: run_chain(endpoint, acqs, xml),
        "chain, worker thread, unpacked": lambda: run_chain(endpoint, acqs, xml, WORKER),
        f"chain as shipped (inline), pack {k}": lambda: run_chain(endpoint, acqs, xml, pack=k),
        f"chain, worker thread, pack {k}": lambda: run_chain(endpoint, acqs, xml, WORKER, k),
        "bare PUSH->PULL, no relay, 1/message": lambda: run_bare_direct(frames, n),
    }
    rates: dict[str, list[float]] = {name: [] for name in runs}
    try:
        for chain in ("passthrough", WORKER):  # warm-up
            run_chain(endpoint, acqs[:2000], xml, chain)
            run_chain(endpoint, acqs[:2000], xml, chain, k)
        for _ in range(args.repeats):
            for name, fn in runs.items():
                rates[name].append(fn())
    finally:
        stop.set()
        for p in procs:
            p.join(10)
    med = {name: statistics.median(xs) for name, xs in rates.items()}
    kb = sum(len(f) for f in frames[0]) / 1e3
    ws = f"{len(distinct)} distinct, cycled" if len(distinct) < n else "all distinct"
    print(f"readouts: {n} x {COILS} coils x {SAMPLES} samples complex64 ({kb:.1f} kB on the "
          f"wire each; {ws}), each to the server and back; {args.repeats} repeats, medians")
    for name, rate in med.items():
        print(f"{name:38s}: {rate:10,.0f} readouts/s  ({rate * kb / 1e3:7.1f} MB/s one way)")
    bare1, barek = med["bare relay, 1 readout/message"], med[f"bare relay, {k} readouts/message"]
    for name in runs:
        if name.startswith("chain"):
            print(f"{name:38s}: {med[name] / bare1:6.1%} of bare 1/message, "
                  f"{med[name] / barek:6.1%} of bare {k}/message")
    for name, xs in rates.items():
        print(f"all repeats, {name}:", ", ".join(f"{x:,.0f}" for x in xs))


if __name__ == "__main__":
    main()
