"""A well-behaved ZeroMQ client's stream time, with and without a client that never reads.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_flood_witness.py --repeats 7

One server (pass-through chain, as shipped; outbox bound 64 messages so that a few
thousand readouts fill it, the other limits as shipped). Per repeat, interleaved:
the witness streams a header, 2 slices of readouts and CLOSE, and waits for its CLOSE,
once alone and once while a flooder (8 coils x 256 samples, thousands of readouts, never
reading a reply) is connected with its outbox full. Prints the medians and the
difference, which the isolation should keep far below 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--flood", type=int, default=3000, help="readouts the flooder sends")
    args = ap.parse_args()

    import zmq

    from kmtr_stream.chain.config import load_chain_config
    from kmtr_stream.codec.zmq_frames import encode_frames
    from kmtr_stream.limits import Limits
    from kmtr_stream.messages import Close, XmlHeader
    from kmtr_stream.transport.catalog import ChainCatalog
    from kmtr_stream.transport.client import StreamClient
    from kmtr_stream.transport.zmq_server import ZmqServer
    from tests.integration.conftest import make_acquisitions, make_header_xml

    xml = make_header_xml()
    spec = load_chain_config(ROOT / "configs" / "passthrough.toml")
    catalog = ChainCatalog({"passthrough": spec}, default="passthrough")
    acqs = make_acquisitions(n_slices=2)
    flood_acq = make_acquisitions(n_coils=8, n_kx=256, n_slices=1)[0]
    flood_frames = [bytes(f) for f in encode_frames(flood_acq)]

    def witness(endpoint: str) -> float:
        client = StreamClient.connect(endpoint)
        t0 = time.perf_counter()
        client.send(XmlHeader(xml))
        client.send_many(acqs)
        client.send(Close())
        back = client.receive_until_close(60.0)
        dt = time.perf_counter() - t0
        client.close()
        if len(back) < len(acqs):
            raise RuntimeError(f"witness got {len(back)} replies for {len(acqs)} readouts")
        return dt

    alone: list[float] = []
    flooded: list[float] = []
    ctx: zmq.Context[Any] = zmq.Context()
    limits = Limits().replace(outbox_messages=64)
    with ZmqServer(catalog, "tcp://127.0.0.1:0", limits=limits) as server:
        witness(server.endpoint)  # warm-up
        for _ in range(args.repeats):
            alone.append(witness(server.endpoint))
            sock = ctx.socket(zmq.DEALER)
            sock.linger = 0
            sock.rcvhwm = 1
            sock.sndhwm = 100_000
            sock.connect(server.endpoint)
            sock.send_multipart(encode_frames(XmlHeader(xml)))
            for _ in range(args.flood):
                sock.send_multipart(flood_frames)
            deadline = time.monotonic() + 30.0
            while not any(o.full for o in server.outboxes.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("the flooder's outbox never filled")
                time.sleep(0.01)
            flooded.append(witness(server.endpoint))
            sock.close(0)
            time.sleep(0.5)  # the flooder's session ends before the next repeat
    ctx.term()
    a, f = statistics.median(alone), statistics.median(flooded)
    print(f"witness stream time, median of {args.repeats}: alone {a * 1e3:.1f} ms, "
          f"beside a flooder with a full outbox {f * 1e3:.1f} ms, difference "
          f"{(f - a) * 1e3:+.1f} ms (max flooded {max(flooded) * 1e3:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
