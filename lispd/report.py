"""What a running node reports of itself, besides counters: the one-line
status systemd shows, and the gauges of the metrics endpoint (their names
are catalogued in lispd.metrics_catalogue)."""

from __future__ import annotations

from collections.abc import Sequence

from lispd.config.model import Config, IPAddress
from lispd.control.plane import ControlPlane
from lispd.dataplane.tables import Fdb
from lispd.mapcache import MapCache

__all__ = ["gauges", "status_line"]


def status_line(config: Config, rlocs: Sequence[IPAddress], plane: ControlPlane,
                mapcache: MapCache, fdb: Fdb) -> str:
    parts: list[str] = []
    xtr = config.xtr
    if xtr is not None:
        parts.append(f"xTR at {', '.join(map(str, rlocs)) or 'no RLOC yet'}: "
                     f"{len(plane.database)} EID prefixes")
        held = plane.acknowledged_by()
        if held is not None:
            parts.append(f"registered with {len(held)}/{len(xtr.map_servers)} map-servers"
                         + ("" if held else " (not acknowledged)"))
        parts.append(f"map-cache {len(mapcache)} entries")
    if plane.node.map_server is not None:
        parts.append(f"map-server: {plane.node.map_server.registration_count()} registrations")
    if config.vxlan:
        parts.append(f"{len(config.vxlan)} VXLAN segments, {len(fdb)} MACs")
    return "; ".join(parts)


def gauges(plane: ControlPlane, mapcache: MapCache, fdb: Fdb) -> dict[str, float]:
    out: dict[str, float] = {"map_cache_entries": len(mapcache),
                             "map_cache_limit": mapcache.limit, "fdb_entries": len(fdb)}
    node = plane.node
    if node.map_server is not None:
        out["map_server_registrations"] = node.map_server.registration_count()
        out["map_server_subscriptions"] = len(node.map_server.subscriptions())
        out["map_server_pending_notifies"] = node.map_server.pending_notifies()
    if node.registrar is not None:
        status = node.registrar.status()
        out["registrar_registrations_yielded"] = sum(r.yielded for r in status)
        out["registrar_registrations_acknowledged"] = sum(
            r.acknowledged and not r.yielded for r in status)
        out["registrar_registrations_pending"] = sum(
            not r.acknowledged and not r.yielded for r in status)
    if node.resolver is not None:
        out["resolver_pending_requests"] = len(node.resolver.pending())
        out["resolver_queued_packets"] = node.resolver.queued_packets
    if node.prober is not None:
        states = node.prober.state()
        out["prober_locators_up"] = sum(s.up for s in states)
        out["prober_locators_down"] = sum(not s.up for s in states)
    return out
