"""Command line entry point: `python -m etcd_layers demo` (also the `etcd-layers` script)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="etcd-layers", description="etcd_layers: an etcd v3 client with composable layers"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="a narrated tour of the layers against an embedded etcd (or --endpoints)",
    )
    demo.add_argument(
        "--endpoints",
        help="comma-separated host:port of an existing cluster; the demo then works only "
        "under a fresh random prefix, which it removes at the end",
    )
    demo.add_argument("--reads", type=int, default=300, help="reads per timing in the cache step")
    args = parser.parse_args(argv)
    from etcd_layers._demo import run_demo  # noqa: PLC0415  # `--help` needs no gRPC

    endpoints = [e for e in (args.endpoints or "").split(",") if e.strip()]
    return run_demo(endpoints or None, reads=args.reads, out=sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
