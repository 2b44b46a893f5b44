"""`show ...` answers about the control plane, as JSON-ready values (for lispctl)."""

from __future__ import annotations

import dataclasses
from enum import Enum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING, Any

from lispd.mapcache import EidPrefix

if TYPE_CHECKING:
    from lispd.control.plane import ControlPlane

__all__ = ["jsonable", "show"]


def jsonable(value: Any) -> Any:
    """Dataclasses, addresses, prefixes and enums as JSON values (keys never appear:
    the machines keep them in fields this skips)."""
    if isinstance(value, IPv4Address | IPv6Address | IPv4Network | IPv6Network | EidPrefix):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name.replace("_", "-"): jsonable(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr
        }
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, tuple | list | frozenset | set):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex()
    return value


def show(plane: ControlPlane, args: list[str]) -> Any:
    """The answer to `show ARGS`, or None when the control plane has no such table."""
    node = plane.node
    match args:
        case ["registrations"] if node.map_server is not None:
            return jsonable(node.map_server.registrations())
        case ["subscriptions"] if node.map_server is not None:
            return jsonable(node.map_server.subscriptions())
        case ["database"]:
            status = node.registrar.status() if node.registrar is not None else ()
            return {"mappings": jsonable(plane.database), "registrations": jsonable(status)}
        case ["resolver"] if node.resolver is not None:
            return jsonable(node.resolver.pending())
        case ["probes"] if node.prober is not None:
            return jsonable(node.prober.state())
    return None
