"""``kmtr-stream gadgets``: print the reference of every installed gadget type."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kmtr_stream.chain.gadget_docs import render_gadget_docs
from kmtr_stream.errors import KmtrError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``gadgets``."""
    parser.add_argument("--built-in", action="store_true",
                        help="only the project's own gadgets (what docs/gadgets.md holds)")
    parser.add_argument("--out", default=None, help="write the page to this file instead")


def run(args: argparse.Namespace) -> int:
    """Print (or write) the page; exit 2 when a declared gadget does not load."""
    try:
        text = render_gadget_docs(built_in_only=args.built_in)
    except KmtrError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0
