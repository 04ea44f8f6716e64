"""``kmtr-stream serve``: run chains behind the ZeroMQ and/or MRD/TCP endpoints."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import threading
from typing import Any

import zmq

from kmtr_stream.errors import KmtrError
from kmtr_stream.limits import Limits
from kmtr_stream.logsafe import SafeFormatter
from kmtr_stream.transport.catalog import ChainCatalog
from kmtr_stream.transport.curve_auth import ServerCurve
from kmtr_stream.transport.mrd_server import MrdServer
from kmtr_stream.transport.zmq_server import ZmqServer

log = logging.getLogger("kmtr_stream.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``serve``."""
    parser.add_argument("configs", nargs="+",
                        help="chain configs (TOML); the first is the default, clients may select "
                             "the others by file stem or chain name with CONFIG_FILE")
    parser.add_argument("--zmq", default="tcp://127.0.0.1:9000",
                        help="ZeroMQ endpoint to bind ('none' to disable)")
    parser.add_argument("--mrd", default="127.0.0.1:9002",
                        help="MRD/TCP host:port to listen on ('none' to disable)")
    parser.add_argument("--mrd-results", choices=("standard", "msgpack"), default="standard",
                        help="MRD/TCP results mode: 'standard' sends results and errors as TEXT "
                             "(only ids stock MRD clients know), 'msgpack' as k-MTR's ids 1500 "
                             "and 8; a client may choose with CONFIG_FILE 'NAME?results=MODE'")
    parser.add_argument("--trace", default=None,
                        help="per-stage timing trace: FILE.jsonl becomes FILE.<connection>.jsonl")
    parser.add_argument("--idle-timeout-s", type=float, default=Limits.idle_timeout_s,
                        help="end a stream after this long without a message (both endpoints)")
    parser.add_argument("--drain-timeout-s", type=float, default=Limits.drain_timeout_s,
                        help="on SIGTERM/SIGINT: how long open streams may take to flush, "
                             "send their outputs and CLOSE before the server exits")
    parser.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                        help="set a resource limit (repeatable), e.g. outbox_bytes=33554432; "
                             "names and defaults: docs/limits.md")
    parser.add_argument("--zmq-pack", type=int, default=16,
                        help="replies already waiting for one ZeroMQ client go out packed, up "
                             "to this many per message (1: never pack)")
    parser.add_argument("--curve-keys", default=None, metavar="DIR",
                        help="authenticate ZeroMQ clients with CurveZMQ: DIR holds "
                             "server.key_secret and clients/*.key, the allowed client public "
                             "keys (kmtr-stream keys new; see the README)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="let MRD/TCP listen on a non-loopback address (it has no "
                             "authentication; refused without this flag)")
    parser.add_argument("--live", action="store_true",
                        help="live terminal view: a row per slice result as it is sent, the "
                             "latency sparkline and the latest subject results (logs print "
                             "above it)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/OpenMP threads (set explicitly: see process_tuning)")


def parse_limits(items: list[str], **base: Any) -> Limits:
    """``["NAME=VALUE", ...]`` on top of ``base`` -> Limits; KmtrError names a bad item."""
    values: dict[str, Any] = dict(base)
    types = {name: type(getattr(Limits, name)) for name in Limits.names()}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in types:
            raise KmtrError(f"--limit {item!r}: expected NAME=VALUE with NAME one of "
                            f"{', '.join(Limits.names())}")
        try:
            values[name] = types[name](text)
        except ValueError:
            raise KmtrError(f"--limit {item!r}: {text!r} is not a {types[name].__name__}") from None
        if values[name] < 0:
            raise KmtrError(f"--limit {item!r}: must not be negative")
    return Limits().replace(**values)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM, then drain (bounded by ``--drain-timeout-s``)."""
    from kmtr_stream.process_tuning import set_threads

    set_threads(args.threads)
    view = None
    handler: logging.Handler
    if args.live:
        from rich.logging import RichHandler

        from kmtr_stream.demo.live import LiveView

        view = LiveView(source_name="connection", max_rows=16)
        # Log lines print above the live view instead of through it.
        handler = RichHandler(console=view.console, show_path=False, markup=False)
        handler.setFormatter(SafeFormatter("%(name)s: %(message)s"))
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    observer = view.observe if view is not None else None
    try:
        catalog = ChainCatalog.from_paths(args.configs)
        limits = parse_limits(args.limit, idle_timeout_s=args.idle_timeout_s,
                              drain_timeout_s=args.drain_timeout_s)
    except KmtrError as exc:
        log.error("%s", exc)
        return 2
    servers: list[Any] = []
    try:
        curve = ServerCurve.load(args.curve_keys) if args.curve_keys else None
        if curve is not None:
            log.info("ZeroMQ clients authenticate with CURVE: %d allowed keys in %s/clients",
                     len(curve.allowed), args.curve_keys)
        if args.zmq.lower() != "none":
            servers.append(ZmqServer(catalog, args.zmq, idle_timeout_s=args.idle_timeout_s,
                                     trace=args.trace, pack_max=args.zmq_pack, curve=curve,
                                     limits=limits, observer=observer))
        if args.mrd.lower() != "none":
            servers.append(MrdServer(catalog, args.mrd, trace=args.trace,
                                     results=args.mrd_results,
                                     allow_remote=args.allow_remote, limits=limits,
                                     observer=observer))
        if not servers:
            log.error("both endpoints disabled; nothing to serve")
            return 2
        for server in servers:
            server.start()
    except KmtrError as exc:
        log.error("%s", exc)
        for server in servers:
            server.stop()
        return 2
    log.info("serving chains %s (default %r)", ", ".join(catalog.names()), catalog.default)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with view if view is not None else contextlib.nullcontext():
        stop.wait()
    log.info("draining (at most %g s)", limits.drain_timeout_s)
    # Both endpoints drain at once, so the bound holds for the server as a whole.
    drains = [threading.Thread(target=server.drain, name=f"drain-{i}")
              for i, server in enumerate(servers)]
    for t in drains:
        t.start()
    for t in drains:
        t.join(limits.drain_timeout_s + 5.0)
    # Terminating the context lets libzmq send what the drain handed over (bounded by linger).
    term = threading.Thread(target=zmq.Context.instance().term, daemon=True)
    term.start()
    term.join(3.0)
    log.info("stopped")
    return 0
