"""``kmtr-stream keys``: CurveZMQ keypairs for the ZeroMQ endpoint (``serve --curve-keys``)."""

from __future__ import annotations

import argparse
import sys

from kmtr_stream.errors import KmtrError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``keys``."""
    sub = parser.add_subparsers(dest="keys_command", required=True)
    new = sub.add_parser("new", help="write a keypair: NAME.key (public) and NAME.key_secret")
    new.add_argument("directory", help="where to write the two files (created if missing)")
    new.add_argument("--name", default="server",
                     help="file name of the pair: 'server' for a server's key directory, "
                          "a client's name otherwise (its NAME.key goes into the server's "
                          "clients/ directory)")


def run(args: argparse.Namespace) -> int:
    """Write the keypair and say where it went and what to do with it."""
    from kmtr_stream.transport.curve_auth import fingerprint, new_keypair

    try:
        public, secret = new_keypair(args.directory, args.name)
    except KmtrError as exc:
        print(f"kmtr-stream keys: {exc}", file=sys.stderr)
        return 2
    import zmq.auth

    key, _ = zmq.auth.load_certificate(public)
    print(f"wrote {public} (public) and {secret} (secret, mode 600); "
          f"fingerprint {fingerprint(key)}")
    return 0
