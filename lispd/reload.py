"""Reload: what a new configuration changes on a running node, worked out
without touching anything; the daemon applies it.

A reload applies differences while the map-cache, the devices and the
traffic stay up: database-mappings (register, deregister, SMR, addresses and
routes), static mappings, map-servers, map-resolvers, proxy-ETRs, intervals,
the map-server's sites, VXLAN flood lists, static MACs and ageing, logging.
What would need devices, sockets or machines made or unmade (underlay,
TUNs, instances, offloads, a role or a segment added or removed) is refused, naming
the keys, and the old configuration keeps running: a half-applied reload
would be worse than none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from lispd.config.model import Config, VxlanConfig, XtrConfig
from lispd.control.plane import AWAY_LIMIT
from lispd.dataplane.plan import Address, Plan, Route, Rule
from lispd.gateway import HOST_LIMIT

__all__ = [
    "DATABASE_ROOM", "PlanDifference", "database_room", "plan_difference", "restart_needed",
    "summary",
]

DATABASE_ROOM = 1024
"""Local EID prefixes the C database table holds at least: reloads add to it."""


def database_room(config: Config) -> int:
    """How many local EID prefixes a node started with `config` can hold:
    the configured ones or more, every dynamic EID its segments can take, and
    the hosts of its prefixes it follows elsewhere."""
    dynamic = sum(HOST_LIMIT for segment in config.vxlan if segment.dynamic_eid)
    return max(DATABASE_ROOM, len(config.database())) + dynamic + AWAY_LIMIT


@dataclass(frozen=True)
class PlanDifference:
    """Host state to add and to remove; the devices themselves are equal."""

    add: tuple[Address | Route | Rule, ...]
    remove: tuple[Address | Route | Rule, ...]
    forwarding: bool
    """Whether forwarding must be turned on now (a LAN-facing mapping came)."""


def plan_difference(old: Plan, new: Plan) -> PlanDifference:
    def items(plan: Plan) -> list[Address | Route | Rule]:
        return [*plan.addresses, *plan.routes, *plan.rules]

    before, after = items(old), items(new)
    return PlanDifference(
        add=tuple(item for item in after if item not in before),
        # Newest first, as an undo would: a rule or route goes before its address.
        remove=tuple(item for item in reversed(before) if item not in after),
        forwarding=new.forwarding and not old.forwarding,
    )


def _machines(xtr: XtrConfig | None) -> dict[str, bool]:
    """Which control machines a configuration runs: these are made at start-up."""
    if xtr is None:
        return {}
    return {
        "xtr.map-resolvers": bool(xtr.map_resolvers),
        "xtr.map-server": bool(xtr.map_servers),
        "xtr.rloc-probe-interval": xtr.rloc_probe_interval > 0,
        "xtr.solicit-map-request": xtr.solicit_map_request,
        "xtr.subscribe": xtr.subscribe,
    }


def _segment_shape(segment: VxlanConfig) -> tuple[Any, ...]:
    """What a VXLAN segment's device, socket, fast-path slot and gateway are made of."""
    return (segment.device, segment.local, segment.mtu, segment.learning, segment.address,
            segment.instance_id, segment.dynamic_eid, segment.dynamic_eid_timeout)


def _xtr_value(attribute: str, config: Config) -> object:
    return None if config.xtr is None else getattr(config.xtr, attribute)


def restart_needed(old: Config, new: Config) -> tuple[str, ...]:
    """The key paths whose change a running node cannot take; empty if none."""
    keys: list[str] = []

    def differ(path: str, value: Callable[[Config], object]) -> None:
        if value(old) != value(new):
            keys.append(path)

    differ("daemon.control-socket", lambda c: c.daemon.control_socket)
    differ("daemon.metrics-listen", lambda c: c.daemon.metrics_listen)
    differ("daemon.offloads", lambda c: c.daemon.offloads)
    differ("underlay", lambda c: c.underlay)
    differ("xtr", lambda c: c.xtr is None)
    differ("map-server", lambda c: c.map_server is None)
    differ("map-server.listen", lambda c: c.map_server and c.map_server.listen)
    differ("proxy", lambda c: c.proxy)
    for path, attribute in (("xtr.tun", "tun"), ("xtr.eid-space", "eid_space"),
                            ("xtr.map-cache-limit", "map_cache_limit"),
                            ("xtr.tun-mtu", "tun_mtu"), ("xtr.instance", "instances")):
        differ(path, partial(_xtr_value, attribute))
    if database_room(new) > database_room(old):
        keys.append(f"xtr.database-mapping (more than the {database_room(old)} "
                    "the running table holds)")
    was, now = _machines(old.xtr), _machines(new.xtr)
    keys.extend(path for path in was if path in now and was[path] != now[path])
    old_segments = {s.vni: s for s in old.vxlan}
    new_segments = {s.vni: s for s in new.vxlan}
    if old_segments.keys() != new_segments.keys():
        keys.append("vxlan (a segment added or removed)")
    keys.extend(
        f"vxlan vni {vni} (device, local, mtu, learning or its gateway keys)"
        for vni, segment in new_segments.items()
        if vni in old_segments and _segment_shape(segment) != _segment_shape(old_segments[vni])
    )
    return tuple(keys)


def _listed(what: str, old: Iterable[Any], new: Iterable[Any],
            name: Callable[[Any], str] = str) -> list[str]:
    """Items added, changed and removed, each named by `name` (never by a key)."""
    before = {name(item): item for item in old}
    after = {name(item): item for item in new}
    lines = [f"{what} added: {n}" for n in after if n not in before]
    lines += [f"{what} changed: {n}" for n in after if n in before and after[n] != before[n]]
    lines += [f"{what} removed: {n}" for n in before if n not in after]
    return lines


def _prefix(mapping: Any) -> str:
    return f"[{mapping.instance_id}]{mapping.eid_prefix}"


def summary(old: Config, new: Config) -> list[str]:
    """One line per applied difference, for the log and `lispctl reload`; empty
    when the files mean the same."""
    lines: list[str] = []
    if (old.daemon.log_level, old.daemon.log_format) != (new.daemon.log_level,
                                                         new.daemon.log_format):
        lines.append(f"logging: {new.daemon.log_format}, {new.daemon.log_level}")
    if old.xtr is not None and new.xtr is not None:
        a, b = old.xtr, new.xtr
        lines += _listed("database-mapping", a.database_mappings, b.database_mappings, _prefix)
        lines += _listed("static-mapping", a.static_mappings, b.static_mappings, _prefix)
        lines += _listed("map-server", a.map_servers, b.map_servers, lambda p: str(p.address))
        lines += _listed("map-resolver", a.map_resolvers, b.map_resolvers)
        lines += _listed("proxy-etr", a.proxy_etrs, b.proxy_etrs)
        intervals: tuple[tuple[str, float, float], ...] = (
            ("register-interval", a.register_interval, b.register_interval),
            ("rloc-probe-interval", a.rloc_probe_interval, b.rloc_probe_interval),
        )
        lines += [f"{what}: {was} -> {now}" for what, was, now in intervals if was != now]
    if old.map_server is not None and new.map_server is not None:
        lines += _listed("map-server site", old.map_server.sites, new.map_server.sites,
                         lambda s: s.name)
        if old.map_server.register_interval != new.map_server.register_interval:
            lines.append(f"map-server register-interval: {old.map_server.register_interval}"
                         f" -> {new.map_server.register_interval}")
    old_segments = {s.vni: s for s in old.vxlan}
    for segment in new.vxlan:
        before = old_segments.get(segment.vni)
        if before is None:
            continue
        if before.flood != segment.flood:
            lines.append(f"vxlan vni {segment.vni} flood: "
                         f"{', '.join(map(str, segment.flood)) or 'none'}")
        lines += _listed(f"vxlan vni {segment.vni} static mac", before.static, segment.static,
                         lambda e: e.mac.hex(":"))
        if before.ageing != segment.ageing:
            lines.append(f"vxlan vni {segment.vni} ageing: {before.ageing} -> {segment.ageing}")
    return lines
