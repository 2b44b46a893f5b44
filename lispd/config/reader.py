"""The machinery of the config reader: typed converters and declarative tables.

A section of the file is described, not coded: a `Table` lists its `Key`s,
each with a converter, and the dataclass it builds. Adding a key is one line
here plus one field in the model. Converters report what is wrong at the
exact path (`Node.fail`) and raise `ReportedError`, which only tells the caller
"no value"; the problem itself is already recorded. Tables and arrays convert
every member even after one failed, so a single pass finds every problem that
does not depend on another one.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import date, datetime, time
from ipaddress import ip_address, ip_interface, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

from lispd.config.model import IPAddress, IPInterface, IPNetwork
from lispd.config.problems import Problem

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")

Converter = Callable[["Node", object], T]


class ReportedError(Exception):
    """A value could not be built; its problem has already been reported."""


class Sink:
    """Collects problems and puts each on the line of its key."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.problems: list[Problem] = []
        self._lines = lines

    def report(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, self.line_of(path)))

    def line_of(self, path: str) -> int | None:
        """The line of `path`, else of its nearest ancestor found in the text.

        A missing key thus points at its table's header, a value inside an
        inline table at least at the key that holds it.
        """
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[: max(path.rfind("."), path.rfind("["), 0)]
        return None


@dataclass(frozen=True)
class Node:
    """A place in the document: where a value came from and where to report."""

    sink: Sink
    path: str = ""

    def key(self, name: str) -> Node:
        return Node(self.sink, f"{self.path}.{name}" if self.path else name)

    def item(self, index: int) -> Node:
        return Node(self.sink, f"{self.path}[{index}]")

    def report(self, message: str) -> None:
        self.sink.report(self.path, message)

    def fail(self, message: str) -> NoReturn:
        self.report(message)
        raise ReportedError(self.path)


# bool before int: a boolean is an int to Python, not to TOML.
_SCALARS = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"))


def kind(value: object, *, shown: bool = True) -> str:
    """How the TOML file spelled a value's type, for 'expected X, got Y'; with
    the value itself unless `shown` is False (a secret)."""
    for scalar, name in _SCALARS:
        if isinstance(value, scalar):
            if not shown:
                return name
            text = (str(value).lower() if isinstance(value, bool)
                    else repr(value) if isinstance(value, str) else str(value))
            return f"{name} ({text})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


_CLOSE = 0.6  # difflib's similarity ratio from which a word counts as a misspelling


def suggest(word: str, choices: Iterable[str]) -> str:
    """'; did you mean X?' for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=_CLOSE)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- scalar converters ----------------------------------------------------------


def string(node: Node, value: object) -> str:
    if not isinstance(value, str):
        node.fail(f"expected a string, got {kind(value)}")
    return value


def boolean(node: Node, value: object) -> bool:
    if not isinstance(value, bool):
        node.fail(f"expected true or false, got {kind(value)}")
    return value


def integer(low: int, high: int | None = None) -> Converter[int]:
    """An integer in low..high (inclusive; no upper bound when high is None)."""

    def convert(node: Node, value: object) -> int:
        # TOML has true/false for booleans; a bool where a number belongs is a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            node.fail(f"expected an integer, got {kind(value)}")
        if high is None and value < low:
            node.fail(f"{value} is too small: must be at least {low}")
        if high is not None and not low <= value <= high:
            node.fail(f"{value} is out of range {low}..{high}")
        return value

    return convert


def seconds(low: float, high: float) -> Converter[float]:
    """A duration in seconds, integer or decimal, in low..high."""

    def convert(node: Node, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            node.fail(f"expected a number of seconds, got {kind(value)}")
        if not low <= value <= high:
            node.fail(f"{value} is out of range {low:g}..{high:g} seconds")
        return float(value)

    return convert


def secret(node: Node, value: object) -> str:
    """A shared key: never echoed back in a problem, since problems get logged."""
    if not isinstance(value, str):
        node.fail(f"expected a string, got {kind(value, shown=False)}")
    if not value:
        node.fail("an empty key authenticates nothing")
    return value


def choice(*options: str) -> Converter[str]:
    def convert(node: Node, value: object) -> str:
        text = string(node, value)
        if text not in options:
            listed = ", ".join(repr(option) for option in options)
            node.fail(f"{text!r} is not one of {listed}{suggest(text, options)}")
        return text

    return convert


def absolute_path(node: Node, value: object) -> Path:
    text = string(node, value)
    # The daemon may run from any directory (systemd starts it in /), so a
    # relative path would mean something different from what was written.
    if not text.startswith("/"):
        node.fail(f"{text!r} must be an absolute path")
    return Path(text)


# Linux refuses these in dev_valid_name(): IFNAMSIZ is 16 with the NUL.
_IFNAME_MAX = 15


def ifname(node: Node, value: object) -> str:
    """A Linux network interface name."""
    name = string(node, value)
    if not 1 <= len(name.encode()) <= _IFNAME_MAX:
        node.fail(f"interface name {name!r} must be 1..{_IFNAME_MAX} bytes long")
    if name in (".", "..") or any(c in "/:" or c.isspace() or not c.isprintable() for c in name):
        node.fail(f"{name!r} is not a valid interface name (no '/', ':' or whitespace)")
    return name


def address(node: Node, value: object) -> IPAddress:
    text = string(node, value)
    try:
        return ip_address(text)
    except ValueError:
        node.fail(f"{text!r} is not an IPv4 or IPv6 address")


# An address and a port: [IPv6]:port or IPv4:port; the port is optional here so
# that leaving it out gets its own message.
_ADDRESS_PORT = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<v4>[^:\[\]]*))(?::(?P<port>[^:]*))?")
PORT_MAX = 65535


def address_port(node: Node, value: object) -> tuple[IPAddress, int]:
    """ADDRESS:PORT, an IPv6 address in brackets: 127.0.0.1:9100, [2001:db8::1]:9100."""
    text = string(node, value)
    match = _ADDRESS_PORT.fullmatch(text)
    if match is None:  # a colon outside brackets before the last one: IPv6 written bare
        node.fail(f"{text!r}: an IPv6 address goes in brackets, as in [2001:db8::1]:9100")
    bracketed = match["v6"] is not None
    host = match["v6"] if bracketed else match["v4"]
    try:
        parsed = ip_address(host)
    except ValueError:
        node.fail(f"{host!r} is not an IPv4 or IPv6 address")
    if bracketed and parsed.version == 4:
        node.fail(f"brackets are for an IPv6 address; write {host}:PORT")
    port = match["port"]
    if port is None:
        node.fail(f"{text} has no port; write {text}:PORT")
    if not (port.isascii() and port.isdigit()):
        node.fail(f"port {port!r} is not a number")
    if not 1 <= int(port) <= PORT_MAX:
        node.fail(f"port {int(port)} is out of range 1..{PORT_MAX}")
    return parsed, int(port)


def network(node: Node, value: object) -> IPNetwork:
    """A prefix with an explicit length and no host bits set."""
    text = string(node, value)
    if "/" not in text:
        # A bare address would silently become a /32 (or /128): more often a
        # forgotten length than a host route, so ask for it to be written.
        try:
            host = ip_address(text)
        except ValueError:
            node.fail(f"{text!r} is not an IPv4 or IPv6 prefix")
        node.fail(f"{text} has no prefix length; write {text}/{host.max_prefixlen} for one host")
    try:
        return ip_network(text)
    except ValueError:
        pass
    try:
        loose = ip_network(text, strict=False)
    except ValueError:
        node.fail(f"{text!r} is not an IPv4 or IPv6 prefix")
    node.fail(f"{text} has host bits set; did you mean {loose}?")


_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")


def interface_address(node: Node, value: object) -> IPInterface:
    """An address with the length of its network (192.0.2.1/26): a gateway's own."""
    text = string(node, value)
    if "/" not in text:
        node.fail(f"{text} has no prefix length; write the segment's, as in {text}/24")
    try:
        interface = ip_interface(text)
    except ValueError:
        node.fail(f"{text!r} is not an IPv4 or IPv6 address with a prefix length")
    if interface.ip == interface.network.network_address and interface.network.num_addresses > 2:
        node.fail(f"{text} is the network's own address, not one a gateway can have")
    return interface


def unicast_mac(node: Node, value: object) -> bytes:
    """A MAC written as 6 colon-separated octets that can be one station's address."""
    text = string(node, value)
    if not _MAC.fullmatch(text):
        node.fail(f"{text!r} is not a MAC address (6 octets: 02:00:00:00:00:01)")
    octets = bytes.fromhex(text.replace(":", ""))
    if octets[0] & 1:  # the I/G bit: a group address names many stations
        node.fail(f"{text} is a multicast MAC; a static entry needs a unicast one")
    if octets == bytes(6):
        node.fail(f"{text} is not a usable MAC address")
    return octets


def same_family(node: Node, value: IPAddress, reference: IPAddress, what: str) -> None:
    """Report (not raise) when `value` and `reference` are of different IP versions."""
    if value.version != reference.version:
        node.report(f"IPv{value.version} address {value}, but {what} is IPv{reference.version}")


# --- compound converters --------------------------------------------------------


def duplicates(node: Node, items: Iterable[T], key: Callable[[T], Hashable], what: str,
               at: str | None = None) -> None:
    """Report every item whose key an earlier item already had.

    `node` is the array; `at` names the sub-key to point at, if any.
    """
    first: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        value = key(item)
        if value in first:
            where = node.item(index)
            other = node.item(first[value])
            (where.key(at) if at else where).report(
                f"duplicate {what} {value} (also at {other.path})"
            )
        else:
            first[value] = index


@dataclass(frozen=True)
class Array(Generic[T]):
    """An array whose elements all convert; `unique` names what must not repeat.

    A class rather than a closure so that the schema can be walked (`Table.paths`).
    """

    element: Converter[T]
    at_least: int = field(default=0, kw_only=True)
    at_most: int | None = field(default=None, kw_only=True)
    unique: str | None = field(default=None, kw_only=True)

    def __call__(self, node: Node, value: object) -> tuple[T, ...]:
        if isinstance(value, dict) and isinstance(self.element, Table):
            node.fail(f"expected an array of tables: write [[{node.path}]], not [{node.path}]")
        if not isinstance(value, list):
            node.fail(f"expected an array, got {kind(value)}")
        least = self.at_least
        if len(value) < least:
            node.fail("must not be empty" if least == 1 else f"needs at least {least}")
        if self.at_most is not None and len(value) > self.at_most:
            node.fail(f"holds {len(value)} items; at most {self.at_most} fit")
        converted: list[T] = []
        failed = False
        for index, item in enumerate(value):
            try:
                converted.append(self.element(node.item(index), item))
            except ReportedError:
                failed = True
        if failed:
            raise ReportedError(node.path)
        if self.unique is not None:
            duplicates(node, converted, _itself, self.unique)
        return tuple(converted)


def _itself(value: T) -> T:
    return value


@dataclass(frozen=True)
class Key(Generic[T]):
    """One key of a table: its kebab-case name and how to read its value.

    `field` is the dataclass field it fills (default: the name in snake_case);
    `missing` is said when a key without a default is left out.
    """

    name: str
    convert: Converter[T]
    field: str = ""
    missing: str = "required key is missing"

    @property
    def attribute(self) -> str:
        return self.field or self.name.replace("-", "_")


# A check sees the built value and the set of keys the file actually gave
# (so it can tell "left at its default" from "written out").
Check = Callable[[Node, D, frozenset[str]], None]


@dataclass(frozen=True)
class Table(Generic[D]):
    """A TOML table read into the dataclass `build`.

    Keys the file leaves out take the dataclass defaults; a key without a
    default is required. Unknown keys are reported (with the closest known
    one) but do not stop the table being built, so the checks still run.
    """

    build: type[D]
    keys: tuple[Key[Any], ...]
    checks: tuple[Check[D], ...] = ()

    def __post_init__(self) -> None:
        # A key that fills no field is a slip in `sections`: fail at import, not on a file.
        known = {f.name for f in fields(self.build)}
        stray = [key.name for key in self.keys if key.attribute not in known]
        if stray:
            raise TypeError(f"{self.build.__name__} has no field for keys {stray}")

    def __call__(self, node: Node, value: object) -> D:
        parts, complete = self.read(node, value)
        if not complete:
            raise ReportedError(node.path)
        built = self.build(**parts)
        given = frozenset(self.names()).intersection(value if isinstance(value, dict) else ())
        for check in self.checks:
            check(node, built, given)
        return built

    def names(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys)

    def paths(self, prefix: str = "") -> tuple[str, ...]:
        """Every key this table accepts, nested ones included, as a path under `prefix`.

        An array of tables reads `name[]` (`xtr.database-mapping[].rlocs[].weight`);
        tables themselves are not listed, only the keys that hold values.
        """
        found: list[str] = []
        for key in self.keys:
            path = f"{prefix}.{key.name}" if prefix else key.name
            convert = key.convert
            if isinstance(convert, Array) and isinstance(convert.element, Table):
                path, convert = f"{path}[]", convert.element
            if isinstance(convert, Table):
                found.extend(convert.paths(path))
            else:
                found.append(path)
        return tuple(found)

    def read(self, node: Node, value: object) -> tuple[dict[str, Any], bool]:
        """The fields that converted, and whether all of them did.

        The document root uses this directly so that one broken section does
        not keep the checks between the others from running.
        """
        if not isinstance(value, dict):
            node.fail(f"expected a table, got {kind(value)}")
        names = self.names()
        misspelt: set[str] = set()
        for name in value:
            if name not in names:
                node.key(name).report(f"unknown key {name!r}{suggest(name, names)}")
                misspelt.update(difflib.get_close_matches(name, names, n=1, cutoff=_CLOSE))
        required = {
            f.name for f in fields(self.build)
            if f.default is MISSING and f.default_factory is MISSING
        }
        parts: dict[str, Any] = {}
        complete = True
        for key in self.keys:
            if key.name in value:
                try:
                    parts[key.attribute] = key.convert(node.key(key.name), value[key.name])
                except ReportedError:
                    complete = False
            elif key.attribute in required:
                # "eid_prefix: did you mean 'eid-prefix'?" already says it.
                if key.name not in misspelt:
                    node.key(key.name).report(key.missing)
                complete = False
        return parts, complete
