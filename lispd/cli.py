"""The `lispd` command line."""

from __future__ import annotations

import argparse
import sys

from lispd import __version__

# Each command names the issue that builds it; until then it says so and
# exits non-zero rather than pretend.
_NOT_BUILT = {
    "run": "the daemon is not built yet (data-plane issue)",
    "check-config": "configuration checking is not built yet (operations issue)",
    "demo": "the demo is not built yet (operations issue): `make test` runs what exists",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lispd", description="LISP/VXLAN overlay daemon")
    parser.add_argument("--version", action="version", version=f"lispd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", default="/etc/lispd/lispd.toml")
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    commands.add_parser("demo", help="multi-site overlay demo in network namespaces")
    args = parser.parse_args(argv)
    print(f"lispd {args.command}: {_NOT_BUILT[args.command]}", file=sys.stderr)
    return 2
