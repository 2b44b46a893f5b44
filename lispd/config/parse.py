"""Text to `Config`: TOML syntax, then each section, then the checks between them."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Any

from lispd.config import checks
from lispd.config.model import (
    Config,
    MapServerConfig,
    ProxyConfig,
    UnderlayConfig,
    VxlanConfig,
    XtrConfig,
)
from lispd.config.positions import key_lines
from lispd.config.problems import ConfigError, Problem
from lispd.config.reader import Array, Key, Node, Sink, Table
from lispd.config.sections import DAEMON, MAP_SERVER, PROXY, UNDERLAY, VXLAN, XTR

# A section present turns its role on: no [xtr], no LISP; no [[vxlan]], no VTEP.
ROOT = Table(
    Config,
    (
        Key("daemon", DAEMON),
        Key("underlay", UNDERLAY, missing="required section: this node's RLOCs (rlocs = [...])"),
        Key("xtr", XTR),
        Key("vxlan", Array(VXLAN)),
        Key("map-server", MAP_SERVER, field="map_server"),
        Key("proxy", PROXY),
    ),
)

_AT = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)$")


def parse(text: str, source: str = "<string>") -> Config:
    """Read and check a configuration; ConfigError lists every problem found."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError((_syntax_problem(str(error), text),), source) from None
    sink = Sink(key_lines(text))
    root = Node(sink)
    parts, complete = ROOT.read(root, document)
    if not {"xtr", "vxlan", "map-server"} & document.keys():
        root.report(
            "nothing to do: configure [xtr] (LISP), [[vxlan]] (VXLAN) and/or [map-server]"
        )
    _between_sections(root, parts, document.keys())
    if sink.problems or not complete:
        raise ConfigError(sink.problems, source)
    return Config(**parts, source=source)


def load(path: Path | str) -> Config:
    """Read and check the configuration file at `path`."""
    source = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError((Problem("", f"cannot read: {reason}"),), source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError((Problem("", "not UTF-8 text", line),), source) from None
    return parse(text, source)


def _syntax_problem(message: str, text: str) -> Problem:
    """tomllib puts the position at the end of its message; move it to the line field."""
    match = _AT.search(message)
    if match is None:
        return Problem("", message)
    line = int(match[1]) if match[1] else text.count("\n") + 1
    return Problem("", f"TOML syntax: {message[: match.start()]}", line)


def _between_sections(root: Node, parts: Mapping[str, Any], present: Container[str]) -> None:
    # `parts` holds only the sections that were built, by the model's types.
    underlay: UnderlayConfig | None = parts.get("underlay")
    xtr: XtrConfig | None = parts.get("xtr")
    vxlans: tuple[VxlanConfig, ...] | None = parts.get("vxlan")
    # An [xtr] in the file that did not build is unknown, not absent: without
    # its EIDs a VXLAN local address cannot be judged.
    xtr_known = xtr is not None or "xtr" not in present
    if underlay is not None and xtr is not None:
        checks.database_rlocs(root, underlay, xtr)
    if underlay is not None and xtr_known and vxlans:
        checks.vxlan_locals(root, underlay, xtr, vxlans)
    if vxlans:
        checks.vnis(root, vxlans)
        if xtr_known:
            checks.gateways(root, xtr, vxlans)
    proxy: ProxyConfig | None = parts.get("proxy")
    if proxy is not None and xtr_known:
        checks.proxy(root, xtr, proxy)
    map_server: MapServerConfig | None = parts.get("map_server")
    if underlay is not None and map_server is not None:
        checks.listen_addresses(root, underlay, map_server)
    if underlay is not None and xtr is not None:
        checks.control_peers(root, underlay, xtr)
    checks.device_names(root, underlay, xtr, vxlans)
