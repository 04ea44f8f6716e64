"""``kmtr-stream trace FILE.jsonl``: per-stage latency table of a chain trace."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kmtr_stream.chain.trace_report import format_table, read_trace, stage_table
from kmtr_stream.errors import KmtrError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``trace``."""
    parser.add_argument("trace", help="trace file written by serve --trace (one per connection)")
    parser.add_argument("--warmup", type=int, default=200,
                        help="skip messages with a lower index (start-up, first allocations)")
    parser.add_argument("--json", default=None, help="also write the table here as JSON")


def run(args: argparse.Namespace) -> int:
    """Print the table (and write JSON); 2 on an unreadable trace."""
    try:
        head, records = read_trace(args.trace)
    except (KmtrError, OSError) as exc:
        print(f"error: {exc}")
        return 2
    table = {"connection": head.get("connection"), **stage_table(records, args.warmup)}
    print(format_table(table))
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
        print(f"wrote {args.json}")
    return 0
