"""Answers to control-socket requests, from a running node's state.

The daemon is seen through `NodeView`, the few things a request may read or
do; this keeps the answers testable without a host to configure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from lispd import ctl
from lispd.control import queries
from lispd.mapcache import EidPrefix, MapCache, MapEntry

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from lispd.config.model import Config
    from lispd.control.plane import ControlPlane
    from lispd.dataplane.tables import Fdb

__all__ = ["NodeView", "answer"]


class NodeView(Protocol):
    config: Config
    mapcache: MapCache
    fdb: Fdb
    plane: ControlPlane | None

    def counters(self) -> dict[str, int]: ...

    def flush(self, prefix: EidPrefix | None) -> int: ...

    def reload(self) -> Awaitable[list[str]]: ...


def answer(node: NodeView, command: str, args: list[str]) -> Any:
    """The result of one request; raises ctl.RequestError for a bad one."""
    if command == "show" and args == ["stats"]:
        return node.counters()
    if command == "show" and args and node.plane is not None:
        shown = queries.show(node.plane, args)
        if shown is not None:
            return shown
    if command == "show" and args == ["map-cache"]:
        return [_entry_json(entry) for entry in node.mapcache]
    if command == "show" and args == ["vxlan"]:
        return [
            {"vni": e.vni, "mac": e.mac.hex(":"), "vtep": str(e.vtep), "static": e.static}
            for e in node.fdb.dump()
        ]
    raise ctl.RequestError(f"unknown request: {command} {' '.join(args)}".strip())


def _entry_json(entry: MapEntry) -> dict[str, Any]:
    return {
        "eid-prefix": str(entry.prefix),
        "ttl": entry.ttl,
        "action": entry.action.name.lower(),
        "rlocs": [
            {"address": str(r.address), "priority": r.priority, "weight": r.weight, "up": r.up}
            for r in entry.locators
        ],
    }
