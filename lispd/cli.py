"""The `lispd` command line."""

from __future__ import annotations

import argparse
import sys

import uvloop

from lispd import __version__, daemon, log
from lispd.config import Config, ConfigError, load


def _load(path: str) -> Config | None:
    try:
        return load(path)
    except ConfigError as error:  # unreadable files too: load() says why
        print(error, file=sys.stderr)
        return None


def _run(path: str) -> int:
    config = _load(path)
    if config is None:
        return 1
    log.configure(config.daemon.log_format, config.daemon.log_level)
    return uvloop.run(daemon.run(config))


def _check(path: str) -> int:
    if _load(path) is None:
        return 1
    print(f"{path}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        # The demo has options of its own and needs none of the daemon's.
        from lispd import demo  # noqa: PLC0415

        return demo.main(argv[1:])
    parser = argparse.ArgumentParser(prog="lispd", description="LISP/VXLAN overlay daemon")
    parser.add_argument("--version", action="version", version=f"lispd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", default="/etc/lispd/lispd.toml")
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    commands.add_parser("demo", help="the multi-site overlay demo in network namespaces "
                        "(lispd demo --help)")
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args.config)
    return _check(args.file)
