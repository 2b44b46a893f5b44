"""Answers to control-socket requests, from a running node's state.

The daemon is seen through `NodeView`, the few things a request may read or
do; this keeps the answers testable without a host to configure. The
requests and their answers are documented in docs/control-socket.md.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from lispd import __version__, ctl
from lispd.control import queries
from lispd.mapcache import EidPrefix, MapCache, MapEntry

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from lispd.config.model import Config
    from lispd.control.plane import ControlPlane
    from lispd.dataplane.tables import Fdb

__all__ = ["COMMANDS", "SHOW", "NodeView", "answer"]


SHOW_LIMIT = 10000
"""Map-cache entries one `show map-cache` answers with at most."""


class NodeView(Protocol):
    config: Config
    mapcache: MapCache
    fdb: Fdb
    plane: ControlPlane | None
    dataplane_path: str

    def counters(self) -> dict[str, int]: ...

    def flush(self, prefix: EidPrefix | None) -> int: ...

    def reload(self) -> Awaitable[list[str]]: ...


def answer(node: NodeView, command: str, args: list[str], *, now: float | None = None) -> Any:
    """The result of one request (an awaitable of it for `reload`); raises
    ctl.RequestError for a bad one. `now` is the monotonic clock's reading
    that the answer's times are relative to (the clock's now by default)."""
    now = time.monotonic() if now is None else now
    match [command, *args]:
        case ["show", table] if table in _TABLES:
            return _TABLES[table](node, now)
        case ["show", "map-cache", text]:
            return _map_cache(node, now, _prefix("show map-cache", text))
        case ["map-cache", "flush"]:
            return {"flushed": node.flush(None)}
        case ["map-cache", "flush", text]:
            return {"flushed": node.flush(_prefix("map-cache flush", text))}
        case ["reload"]:
            return _reload(node)
        case ["version"]:
            return _version(node)
        case ["help"]:
            return list(COMMANDS)
    asked = " ".join([command, *args])
    raise ctl.RequestError(f"unknown request {asked!r}; known: {'; '.join(COMMANDS)}")


def _prefix(request: str, text: str) -> EidPrefix:
    try:
        return EidPrefix.parse(text)
    except ValueError as error:
        raise ctl.RequestError(f"{request}: {error}") from None


async def _reload(node: NodeView) -> dict[str, list[str]]:
    return {"applied": await node.reload()}


def _version(node: NodeView) -> dict[str, Any]:
    config = node.config
    roles = [name for name, present in (
        ("xtr", config.xtr is not None),
        ("map-server", config.map_server is not None),
        ("vxlan", bool(config.vxlan)),
    ) if present]
    return {
        "version": __version__,
        "python": platform.python_version(),
        "pid": os.getpid(),
        "config": config.source,
        "roles": roles,
        "dataplane": node.dataplane_path,
    }


# -- show ---------------------------------------------------------------------


def _plane(node: NodeView) -> ControlPlane:
    if node.plane is None:
        raise ctl.RequestError("the control plane is not running yet: ask again in a moment")
    return node.plane


def _map_cache(node: NodeView, now: float,
               within: EidPrefix | None = None) -> list[dict[str, Any]]:
    """The entries (those `within` covers); refused past SHOW_LIMIT, which
    would hold the event loop, and the traffic, for a second or more."""
    entries = list(node.mapcache) if within is None else node.mapcache.within(within)
    _bounded(len(entries), "map-cache entries", " (show map-cache PREFIX)")
    return [_entry_json(entry, now) for entry in entries]


def _bounded(count: int, what: str, narrower: str = "") -> None:
    """Refuse an answer of more than SHOW_LIMIT rows: building it would hold the
    event loop, and the traffic with it, for a second or more."""
    if count > SHOW_LIMIT:
        raise ctl.RequestError(f"{count} {what}, more than the {SHOW_LIMIT} shown at once: "
                               f"ask for fewer{narrower}")


def _entry_json(entry: MapEntry, now: float) -> dict[str, Any]:
    """A map-cache entry; `expires-at` is seconds from now (None: static, never)."""
    expires = entry.expires_at
    return {
        "eid-prefix": str(entry.prefix),
        "ttl": entry.ttl,
        "expires-at": None if expires is None else round(expires - now, 3),
        "static": entry.static,
        "action": entry.action.name.lower(),
        "rlocs": [
            {"address": str(r.address), "priority": r.priority, "weight": r.weight, "up": r.up}
            for r in entry.locators
        ],
    }


def _vxlan(node: NodeView, now: float) -> dict[str, Any]:
    segments = [
        {
            "vni": segment.vni,
            "device": segment.device,
            "local": str(segment.local),
            "flood": [str(vtep) for vtep in segment.flood],
            "learning": segment.learning,
            "ageing": segment.ageing,
        }
        for segment in node.config.vxlan
    ]
    _bounded(len(node.fdb), "FDB entries")
    entries = sorted(node.fdb.dump(), key=lambda e: (e.vni, e.mac))
    fdb = [
        {"vni": e.vni, "mac": e.mac.hex(":"), "vtep": str(e.vtep), "static": e.static}
        for e in entries
    ]
    return {"segments": segments, "fdb": fdb}


def _control(view: Callable[[ControlPlane, float], Any]) -> Callable[[NodeView, float], Any]:
    """A control-plane table as a show answer."""
    return lambda node, now: view(_plane(node), now)


_TABLES: dict[str, Callable[[NodeView, float], Any]] = {
    "map-cache": _map_cache,
    "database": _control(queries.database),
    "registrations": _control(queries.registrations),
    "vxlan": _vxlan,
    "peers": _control(queries.peers),
    "stats": lambda node, _now: node.counters(),
    "subscriptions": _control(queries.subscriptions),
    "resolver": _control(queries.resolver),
    "probes": _control(queries.probes),
}
SHOW = tuple(_TABLES)
"""What `show` shows."""
COMMANDS = (
    *(f"show {table}" for table in SHOW),
    "show map-cache PREFIX",
    "map-cache flush [PREFIX]",
    "reload",
    "version",
    "help",
)
"""Every request, as `help` lists them."""
