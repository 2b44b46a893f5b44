"""`show ...` answers about the control plane, as JSON-ready values (for lispctl).

The machines keep their times on the daemon's monotonic clock, which means
nothing outside the process; an answer gives every point in time relative
to the moment of the answer instead: -12.5 is 12.5 s ago, 30.0 is in 30 s.
A table the node's configuration does not turn on is a RequestError that
says which part of the configuration would.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from lispd.ctl import RequestError
from lispd.mapcache import EidPrefix

if TYPE_CHECKING:
    from lispd.config.model import XtrConfig
    from lispd.control.plane import ControlPlane

__all__ = [
    "CLOCK_FIELDS", "database", "jsonable", "peers", "probes", "registrations", "resolver",
    "subscriptions",
]

CLOCK_FIELDS = frozenset({
    "acknowledged_at", "created", "due", "expires_at", "last_reply", "last_sent",
    "refreshed_at", "registered_at", "subscribed_at",
})
"""The fields of the machines' records that are points in time on the monotonic clock."""


def jsonable(value: Any, now: float | None = None) -> Any:
    """Dataclasses, addresses, prefixes and enums as JSON values; with `now`, the
    CLOCK_FIELDS as seconds from now. Keys never appear: the machines keep
    them in fields left out of repr, which this skips too."""
    if isinstance(value, IPv4Address | IPv6Address | IPv4Network | IPv6Network | EidPrefix):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.replace("_", "-"): _field(f.name, getattr(value, f.name), now)
            for f in dataclasses.fields(value)
            if f.repr
        }
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, tuple | list | frozenset | set):
        return [jsonable(v, now) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v, now) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


def _field(name: str, value: Any, now: float | None) -> Any:
    if now is not None and name in CLOCK_FIELDS and isinstance(value, int | float):
        return round(value - now, 3) + 0.0  # + 0.0: never -0.0
    return jsonable(value, now)


def _xtr(plane: ControlPlane) -> XtrConfig:
    if plane.config.xtr is None:
        raise RequestError("this node is no xTR (the configuration has no [xtr] section)")
    return plane.config.xtr


def database(plane: ControlPlane, now: float) -> dict[str, Any]:
    """The local mappings (RLOCs as announced now) and where their registrations stand."""
    _xtr(plane)
    registrar = plane.node.registrar
    status = registrar.status() if registrar is not None else ()
    return {"mappings": jsonable(plane.database), "registrations": jsonable(status, now)}


def registrations(plane: ControlPlane, now: float) -> list[Any]:
    """A map-server's registration table; an xTR's own registrations otherwise."""
    node = plane.node
    if node.map_server is not None:
        return list(jsonable(node.map_server.registrations(), now))
    if node.registrar is not None:
        return list(jsonable(node.registrar.status(), now))
    raise RequestError(
        "this node neither is a map-server ([map-server]) nor registers with one"
        " ([[xtr.map-server]])"
    )


def subscriptions(plane: ControlPlane, now: float) -> list[Any]:
    """A map-server's subscribers (RFC 9437)."""
    if plane.node.map_server is None:
        raise RequestError("this node is no map-server (the configuration has no [map-server])")
    return list(jsonable(plane.node.map_server.subscriptions(), now))


def resolver(plane: ControlPlane, now: float) -> list[Any]:
    """The outstanding Map-Requests, oldest first."""
    if plane.node.resolver is None:
        raise RequestError("this node resolves nothing (xtr.map-resolvers is empty)")
    return list(jsonable(plane.node.resolver.pending(), now))


def probes(plane: ControlPlane, now: float) -> list[Any]:
    """Every probed (EID prefix, RLOC) pair."""
    if plane.node.prober is None:
        raise RequestError("RLOC probing is off (xtr.rloc-probe-interval is 0)")
    return list(jsonable(plane.node.prober.state(), now))


def peers(plane: ControlPlane, now: float) -> dict[str, Any]:
    """The control peers of an xTR: map-servers (with the registration of every
    mapping there), map-resolvers (with their outstanding requests),
    proxy-ETRs, and the RLOC probes (None when probing is off)."""
    xtr = _xtr(plane)
    node = plane.node
    status = node.registrar.status() if node.registrar is not None else ()
    pending = Counter(
        request.map_resolver
        for request in (node.resolver.pending() if node.resolver is not None else ())
    )
    return {
        "map-servers": [
            jsonable(server) | {"registrations": jsonable(
                [s for s in status if s.server == server.address], now)}
            for server in xtr.map_servers
        ],
        "map-resolvers": [
            {"address": str(address), "pending": pending[address]}
            for address in xtr.map_resolvers
        ],
        "proxy-etrs": [str(address) for address in xtr.proxy_etrs],
        "probes": jsonable(node.prober.state(), now) if node.prober is not None else None,
    }
