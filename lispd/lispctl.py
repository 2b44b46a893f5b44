"""`lispctl`: ask a running lispd over its control socket; human tables by
default, JSON with --json.

Exit status: 0 answered; 1 lispd answered with an error (a refused reload,
a bad prefix); 2 no answer (no socket, no permission, no daemon) or a usage
error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lispd import __version__, ctl
from lispd.answers import SHOW

__all__ = ["DEFAULT_SOCKET", "SHOWN", "main", "render", "table"]

DEFAULT_SOCKET = Path("/run/lispd/control.sock")
TIMEOUT = 5.0
RELOAD_TIMEOUT = 30.0
"""A reload re-reads the file and changes devices and routes: it may take a while."""

Row = Mapping[str, Any]


# -- the table formatter --------------------------------------------------------------------


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned, numbers to the right; "(none)" under the headers of an empty table."""
    cells = [list(row) for row in rows]
    if not cells:
        return "  ".join(headers) + "\n(none)"
    widths = [max(len(header), *(len(row[i]) for row in cells))
              for i, header in enumerate(headers)]
    # A column of numbers, "-" standing in for a missing one, is aligned right.
    right = [
        all(_number(row[i]) or row[i] == "-" for row in cells)
        and any(_number(row[i]) for row in cells)
        for i in range(len(headers))
    ]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=True)
        ).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])


def _sections(*parts: tuple[str, str]) -> str:
    return "\n\n".join(f"{title}:\n{text}" for title, text in parts)


# -- cells ----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _when(seconds: float | None, never: str = "-") -> str:
    """A point in time the daemon gave relative to its answer."""
    if seconds is None:
        return never
    return f"{_duration(seconds)} ago" if seconds < 0 else f"in {_duration(seconds)}"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def _locators(locators: Iterable[Row], address: str = "address") -> str:
    """RLOCs as "address priority/weight", the ones believed down marked."""
    shown = [
        f"{loc[address]} {loc['priority']}/{loc['weight']}"
        + ("" if loc.get("up", loc.get("reachable", True)) else " down")
        for loc in locators
    ]
    return ", ".join(shown) or "-"


def _eid(row: Row) -> str:
    """An EID prefix of a config record: the instance-id in front, as lispd writes prefixes."""
    return f"[{row['instance-id']}]{row['eid-prefix']}"


# -- the views ------------------------------------------------------------------------------


def _map_cache(rows: list[Row]) -> str:
    return table(
        ("EID-PREFIX", "RLOCS (PRIORITY/WEIGHT)", "TTL", "EXPIRES", "ACTION"),
        (
            (
                row["eid-prefix"],
                _locators(row["rlocs"]),
                "static" if row["static"] else _duration(row["ttl"]),
                _when(row["expires-at"], never="never"),
                "-" if row["action"] == "no_action" else row["action"],
            )
            for row in rows
        ),
    )


def _registration_state(row: Row) -> str:
    if row["yielded"]:
        return "yielded (moved away)"
    return "registered" if row["acknowledged"] else "pending"


def _own_registrations(rows: list[Row]) -> str:
    """An xTR's registrations, one per (map-server, mapping)."""
    return table(
        ("MAP-SERVER", "EID-PREFIX", "STATE", "ATTEMPTS", "LAST-SENT", "ACKNOWLEDGED"),
        (
            (
                row["server"], _eid(row), _registration_state(row), str(row["attempts"]),
                _when(row["last-sent"]), _when(row["acknowledged-at"]),
            )
            for row in rows
        ),
    )


def _database(result: Row) -> str:
    mappings = table(
        ("EID-PREFIX", "RLOCS (PRIORITY/WEIGHT)", "WHERE"),
        (
            (
                _eid(row),
                _locators(row["rlocs"]),
                "on the TUN" if row["assign"] else (row["interface"] or "-"),
            )
            for row in result["mappings"]
        ),
    )
    return _sections(("Mappings", mappings),
                     ("Registrations", _own_registrations(result["registrations"])))


def _registrations(rows: list[Row]) -> str:
    # A map-server's table has sites; an xTR's own registrations name map-servers.
    if rows and "site" not in rows[0]:
        return _own_registrations(rows)
    return table(
        ("EID-PREFIX", "SITE", "RLOCS (PRIORITY/WEIGHT)", "SOURCE", "REGISTERED", "EXPIRES"),
        (
            (
                row["prefix"], row["site"], _locators(row["record"]["locators"], "locator"),
                row["source"], _when(row["registered-at"]), _when(row["expires-at"]),
            )
            for row in rows
        ),
    )


def _vxlan(result: Row) -> str:
    segments = table(
        ("VNI", "DEVICE", "LOCAL", "FLOOD", "LEARNING", "AGEING"),
        (
            (
                str(row["vni"]), row["device"], row["local"], ", ".join(row["flood"]) or "-",
                _yes(row["learning"]), _duration(row["ageing"]),
            )
            for row in result["segments"]
        ),
    )
    fdb = table(
        ("VNI", "MAC", "VTEP", "TYPE"),
        (
            (str(row["vni"]), row["mac"], row["vtep"], "static" if row["static"] else "learnt")
            for row in result["fdb"]
        ),
    )
    return _sections(("Segments", segments), ("Forwarding database", fdb))


def _probes(rows: list[Row]) -> str:
    return table(
        ("EID-PREFIX", "LOCATOR", "STATE", "MISSES", "SENT", "LAST-REPLY", "RTT-MS"),
        (
            (
                row["prefix"], row["locator"], "up" if row["up"] else "down",
                str(row["misses"]), str(row["probes-sent"]), _when(row["last-reply"]),
                "-" if row["rtt"] is None else f"{row['rtt'] * 1000:.1f}",
            )
            for row in rows
        ),
    )


def _peers(result: Row) -> str:
    def registered(server: Row) -> str:
        rows = server["registrations"]
        done = sum(1 for row in rows if row["acknowledged"])
        return f"{done}/{len(rows)}"

    servers = table(
        ("ADDRESS", "KEY-ID", "PROXY-REPLY", "REGISTERED"),
        (
            (row["address"], row["key-id"], _yes(row["proxy-reply"]), registered(row))
            for row in result["map-servers"]
        ),
    )
    resolvers = table(
        ("ADDRESS", "PENDING"),
        ((row["address"], str(row["pending"])) for row in result["map-resolvers"]),
    )
    proxies = table(("ADDRESS",), ((address,) for address in result["proxy-etrs"]))
    probes = "off" if result["probes"] is None else _probes(result["probes"])
    return _sections(("Map-servers", servers), ("Map-resolvers", resolvers),
                     ("Proxy-ETRs", proxies), ("RLOC probes", probes))


def _stats(counters: Mapping[str, int]) -> str:
    """Every counter by name, the ones that moved first."""
    ordered = sorted(counters.items(), key=lambda item: (item[1] == 0, item[0]))
    return table(("COUNTER", "VALUE"), ((name, str(value)) for name, value in ordered))


def _subscriptions(rows: list[Row]) -> str:
    return table(
        ("EID-PREFIX", "SUBSCRIBER", "SITE", "CONFIRMED", "EXPIRES"),
        (
            (row["prefix"], f"{row['subscriber']}:{row['port']}", row["site"],
             _yes(row["confirmed"]), _when(row["expires-at"]))
            for row in rows
        ),
    )


def _resolver(rows: list[Row]) -> str:
    return table(
        ("EID-PREFIX", "REASON", "ATTEMPTS", "MAP-RESOLVER", "QUEUED", "NEXT"),
        (
            (row["prefix"], row["reason"], str(row["attempts"]), row["map-resolver"] or "-",
             str(row["queued"]), _when(row["due"]))
            for row in rows
        ),
    )


SHOWN: dict[str, Callable[[Any], str]] = {
    "map-cache": _map_cache,
    "database": _database,
    "registrations": _registrations,
    "vxlan": _vxlan,
    "peers": _peers,
    "stats": _stats,
    "subscriptions": _subscriptions,
    "resolver": _resolver,
    "probes": _probes,
}
"""How each `show` answer reads to a human (one for each of answers.SHOW)."""


def render(request: Sequence[str], result: Any) -> str:
    """The human form of the answer to `request`."""
    match list(request):
        case ["show", shown, *_]:
            return SHOWN[shown](result)
        case ["map-cache", "flush", *_]:
            count = result["flushed"]
            return f"flushed {count} map-cache {'entry' if count == 1 else 'entries'}"
        case ["reload"]:
            return "\n".join(result["applied"]) or "reloaded: nothing changed"
        case ["version"]:
            return (
                f"lispd {result['version']} (python {result['python']}, pid {result['pid']},"
                f" roles: {', '.join(result['roles']) or 'none'}, data path"
                f" {result['dataplane']}, config {result['config']})\n"
                f"lispctl {__version__}"
            )
    raise ValueError(f"no human form for {' '.join(request)!r}")


# -- the command line -----------------------------------------------------------------------


def _options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--socket and --json, before or after the command: the command's parser
    takes them with no default, so it keeps what came before it."""
    socket_default = os.environ.get("LISPD_SOCKET", str(DEFAULT_SOCKET))
    parser.add_argument(
        "--socket", type=Path,
        default=Path(socket_default) if defaults else argparse.SUPPRESS,
        help=f"lispd's control socket (default: $LISPD_SOCKET or {DEFAULT_SOCKET})",
    )
    parser.add_argument("--json", action="store_true",
                        default=False if defaults else argparse.SUPPRESS,
                        help="print the answer as JSON, for machines")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lispctl",
                                     description="Ask a running lispd over its control socket.")
    _options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    show = commands.add_parser("show", help="show a table: " + ", ".join(SHOW))
    show.add_argument("table", choices=SHOW)
    show.add_argument("prefix", nargs="?",
                      help="map-cache only: the entries within this EID prefix")
    flush = commands.add_parser("map-cache", help="map-cache flush [PREFIX]: forget learnt "
                                "entries (all, or those PREFIX covers); static ones stay")
    flush.add_argument("action", choices=("flush",))
    flush.add_argument("prefix", nargs="?", help='an EID prefix: "192.0.2.0/24", "[iid]..."')
    reload = commands.add_parser("reload", help="re-read the configuration file and apply it")
    version = commands.add_parser("version", help="lispd's and lispctl's versions")
    for command in (show, flush, reload, version):
        _options(command, defaults=False)
    return parser


def _request(args: argparse.Namespace) -> tuple[str, ...]:
    if args.command == "show":
        return ("show", args.table, *([args.prefix] if args.prefix else []))
    if args.command == "map-cache":
        return ("map-cache", args.action, *([args.prefix] if args.prefix else []))
    return (args.command,)


def _why(error: OSError, timeout: float) -> str:
    """What a failure to get an answer most likely means."""
    if isinstance(error, FileNotFoundError):
        return "no such socket (is lispd running? is this the control-socket of its config?)"
    if isinstance(error, PermissionError):
        return "permission denied (run as root, as lispd's user or in the socket's group)"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused (is lispd running? the socket may be a stopped one's)"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout:g} s (is lispd stuck?)"
    return error.strerror or str(error)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    request = _request(args)
    timeout = RELOAD_TIMEOUT if request == ("reload",) else TIMEOUT
    try:
        result = ctl.request(args.socket, *request, timeout=timeout)
    except ctl.RequestError as error:
        print(f"lispctl: lispd refused {' '.join(request)!r}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"lispctl: no answer from lispd at {args.socket}: {_why(error, timeout)}",
              file=sys.stderr)
        return 2
    try:
        print(json.dumps(result, indent=2) if args.json else render(request, result))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) has what it wanted; nothing more to write at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0

