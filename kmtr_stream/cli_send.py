"""``kmtr-stream send``: stream a recorded ISMRMRD HDF5 dataset and save the replies."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from kmtr_stream.errors import KmtrError

log = logging.getLogger("kmtr_stream.send")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``send``."""
    parser.add_argument("dataset", help="ISMRMRD HDF5 file to stream")
    parser.add_argument("--to", required=True,
                        help="tcp://host:port (ZeroMQ) or mrd://host:port (MRD/TCP)")
    parser.add_argument("--out", required=True,
                        help="result directory (output.h5 and messages.jsonl, see the README)")
    parser.add_argument("--config", default=None, help="server-side chain name to select")
    parser.add_argument("--dataset-name", default="dataset", help="HDF5 group of the dataset")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="how long to wait for the server's CLOSE")
    parser.add_argument("--server-key", default=None, metavar="FILE",
                        help="ZeroMQ with CURVE: the server's public key file (server.key)")
    parser.add_argument("--client-key", default=None, metavar="FILE",
                        help="ZeroMQ with CURVE: this client's secret key file "
                             "(NAME.key_secret from kmtr-stream keys new)")
    parser.add_argument("--pack", type=int, default=16,
                        help="messages per ZeroMQ message / socket write (1: one each)")


def one_line(text: str) -> str:
    """The line of a (possibly multi-line, e.g. traceback) message that says what failed."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if len(lines) > 1 and lines[0].startswith("Traceback") else " ".join(lines)


def error_line(errors: list[Any], out_dir: str) -> str:
    """``"server reported an error: [code] what (N errors, all in DIR/messages.jsonl)"``."""
    from kmtr_stream.transport.dataset_io import MESSAGES_JSONL

    first = errors[0]
    more = f"{len(errors)} errors" if len(errors) > 1 else "1 error"
    return (f"server reported an error: [{first.code}] {one_line(first.message)} "
            f"({more}, all in {out_dir}/{MESSAGES_JSONL})")


def run(args: argparse.Namespace) -> int:
    """Stream, save, print a summary.

    Exit status: 0 all went well, 1 the server reported an error (one line on
    stderr names the first), 2 nothing or not everything could be sent or
    received (one line on stderr says why).
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from kmtr_stream.transport.dataset_io import stream_dataset

    try:
        curve = None
        if args.server_key or args.client_key:
            if not (args.server_key and args.client_key):
                raise KmtrError("--server-key and --client-key go together")
            from kmtr_stream.transport.curve_auth import ClientCurve

            curve = ClientCurve.from_files(args.server_key, args.client_key)
        summary = stream_dataset(args.dataset, args.to, args.out, config=args.config,
                                 dataset_name=args.dataset_name, timeout_s=args.timeout_s,
                                 pack=args.pack, curve=curve)
    except KmtrError as exc:
        print(f"kmtr-stream send: {one_line(str(exc))}", file=sys.stderr)
        return 2
    received = ", ".join(f"{n} {k}" for k, n in sorted(summary.received.items())) or "nothing"
    print(f"sent {summary.sent} messages; received {received}; saved in {summary.output_dir}")
    if summary.header_from_sent:
        print("the server returned no XML header; output.h5 holds the one sent")
    if summary.errors:
        print(f"kmtr-stream send: {error_line(summary.errors, str(args.out))}", file=sys.stderr)
        return 1
    return 0
