"""``kmtr-stream send``: stream a recorded ISMRMRD HDF5 dataset and save the replies."""

from __future__ import annotations

import argparse
import logging

from kmtr_stream.errors import KmtrError
from kmtr_stream.transport.dataset_io import MESSAGES_JSONL, OUTPUT_H5, stream_dataset

log = logging.getLogger("kmtr_stream.send")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``send``."""
    parser.add_argument("dataset", help="ISMRMRD HDF5 file to stream")
    parser.add_argument("--to", required=True,
                        help="tcp://host:port (ZeroMQ) or mrd://host:port (MRD/TCP)")
    parser.add_argument("--out", required=True,
                        help=f"result directory ({OUTPUT_H5} and {MESSAGES_JSONL})")
    parser.add_argument("--config", default=None, help="server-side chain name to select")
    parser.add_argument("--dataset-name", default="dataset", help="HDF5 group of the dataset")
    parser.add_argument("--timeout-s", type=float, default=120.0,
                        help="how long to wait for the server's CLOSE")
    parser.add_argument("--pack", type=int, default=16,
                        help="messages per ZeroMQ message / socket write (1: one each)")


def run(args: argparse.Namespace) -> int:
    """Stream, save, print a summary; exit 1 if the server reported errors."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = stream_dataset(args.dataset, args.to, args.out, config=args.config,
                                 dataset_name=args.dataset_name, timeout_s=args.timeout_s,
                                 pack=args.pack)
    except KmtrError as exc:
        log.error("%s", exc)
        return 2
    received = ", ".join(f"{n} {k}" for k, n in sorted(summary.received.items())) or "nothing"
    print(f"sent {summary.sent} messages; received {received}; saved in {summary.output_dir}")
    for err in summary.errors:
        print(f"server error: {err}")
    return 1 if summary.errors else 0
