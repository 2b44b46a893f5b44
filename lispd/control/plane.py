"""The control plane of a running node, joined to its data plane.

The daemon owns the host and the fast path; this owns the machines (through
ControlNode and its asyncio adapter) and carries their decisions into the
data plane: map-cache changes into the C table, released packets into the
ITR path, a displaced EID out of the local database. It also reacts to the
two kinds of mobility (issue 4):

1. this node's RLOCs changed (a followed interface got a new address): the
   outer source follows, the control sockets rebind, every mapping is
   registered again with the new locators at once, and the ITRs that sent us
   traffic lately are told with SMRs;
2. the map-server says another xTR took one of our EIDs over (a Map-Notify
   to the registrar): the EID stops being local here, packets still arriving
   for it are re-encapsulated towards its new locators instead of dropped,
   and the ITRs still sending to us are told with SMRs.

A dynamic EID (lispd.gateway: a host that moved onto a gateway segment
here) is a local EID like a configured one while it stays; when another xTR
registers it, it is the second case, and the segment's machine is told.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import structlog

from lispd.config.model import Config, DatabaseMapping, IPNetwork
from lispd.control import setup
from lispd.control.events import Datagram, Output, Released
from lispd.control.mapserver import MapServer
from lispd.control.node import ControlNode
from lispd.control.probing import RlocProber
from lispd.control.registrar import Displaced, Left, Registrar, Returned
from lispd.control.resolver import Resolver, entry_of
from lispd.control.service import ControlService
from lispd.control.smr import Solicitor
from lispd.control.udp import IPAddress
from lispd.dataplane import sync
from lispd.dataplane.fastpath import FastPath, Miss
from lispd.dataplane.tables import Fib, FibAction, FibEntry
from lispd.mapcache import Change, EidPrefix, Installed, MapCache
from lispd.wire.records import MappingRecord

__all__ = ["AWAY_LIMIT", "RECENT_ITR_WINDOW", "ControlPlane"]

log = structlog.get_logger("lispd.control")

AWAY_LIMIT = 1024
"""Hosts of our prefixes followed elsewhere at most (the C table has room for them)."""

RECENT_ITR_WINDOW = 60.0
"""Seconds: an ITR that sent us traffic this recently is told of a change by SMR."""


class ControlPlane:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        config: Config,
        *,
        mapcache: MapCache,
        mapcache_fib: Fib,
        database_fib: Fib,
        fastpath: FastPath,
        tuns: dict[int, int],
        rlocs: tuple[IPAddress, ...],
    ) -> None:
        self.config = config
        self.mapcache = mapcache
        self.mapcache_fib = mapcache_fib
        self.database_fib = database_fib
        self.fastpath = fastpath
        self.tuns = tuns
        self.rlocs = rlocs
        xtr = config.xtr
        self.policy = sync.FibPolicy(proxy_etrs=xtr.proxy_etrs if xtr else ())
        self.database = setup.database(config.database(), rlocs)
        xtr_id = secrets.randbits(128)
        peers = setup.map_server_peers(xtr) if xtr else ()
        map_server = (
            MapServer(setup.sites(config.map_server), config.map_server.register_interval)
            if config.map_server else None
        )
        # The registrar is also the ETR that answers Map-Requests and RLOC
        # probes for the local EIDs: it is there whenever there are any, map-
        # servers or not, or a static-only peer's prober would find no one
        # answering and mark this node's locators down.
        registrar = (
            Registrar(setup.local_mappings(self.database), peers, xtr.register_interval,
                      xtr_id=xtr_id)
            if xtr and (peers or self.database) else None
        )
        resolver = (
            Resolver(mapcache, map_resolvers=xtr.map_resolvers, itr_rlocs=rlocs,
                     map_servers=peers, subscribe=xtr.subscribe, xtr_id=xtr_id,
                     pitr=config.proxy is not None and config.proxy.pitr)
            if xtr and xtr.map_resolvers else None
        )
        prober = (
            RlocProber(mapcache, rlocs, interval=xtr.rloc_probe_interval)
            if xtr and xtr.rloc_probe_interval > 0 else None
        )
        solicitor = Solicitor() if xtr and xtr.solicit_map_request else None
        if solicitor is not None:
            solicitor.set_itr_rlocs(rlocs)
        self.node = ControlNode(
            map_server=map_server, registrar=registrar, resolver=resolver, prober=prober,
            solicitor=solicitor, local_prefixes=lambda: setup.local_prefixes(self.database),
            server_addresses=config.map_server.listen if config.map_server else (),
        )
        self._acknowledged: set[IPAddress] = set()
        # Dynamic EIDs (lispd.gateway): hosts that moved onto a gateway
        # segment here, each a host prefix of this node's until it leaves.
        self.dynamic: dict[EidPrefix, DatabaseMapping] = {}
        # Hosts inside our prefixes that another xTR registered (Left).
        self.away: set[EidPrefix] = set()
        # Told when the mapping system says a dynamic EID is elsewhere now.
        self.dynamic_moved_away: Callable[[EidPrefix], None] = lambda prefix: None
        # Told when one that left our prefix is registered elsewhere no more.
        self.dynamic_returned: Callable[[EidPrefix], None] = lambda prefix: None
        self.service = ControlService(loop, self.node, apply_changes=self.apply_changes,
                                      release=self._release, after=self._after)

    @property
    def enabled(self) -> bool:
        node = self.node
        return any(m is not None for m in (node.map_server, node.registrar, node.resolver))

    # -- life cycle ----------------------------------------------------------------

    def start(self) -> None:
        self.service.bind(self._addresses())
        registrar = self.node.registrar
        if registrar is not None:
            self.service.deliver(self._xtr(registrar.start(self.service.now())))
        self.service.rearm()

    def stop(self) -> None:
        """Deregister (TTL 0) so the mapping system forgets us at once, then close."""
        registrar = self.node.registrar
        if registrar is not None:
            for datagram in registrar.stop(self.service.now()):
                self.service.sockets.send(datagram)
        self.service.close()

    # -- from the data plane -------------------------------------------------------

    def misses(self, misses: list[Miss]) -> None:
        resolver = self.node.resolver
        if resolver is None:
            return
        now = self.service.now()
        out = Output()
        for miss in misses:
            out += resolver.miss(miss.instance_id, miss.address, miss.packet, now)
        # Once per batch: the timer re-arm looks at every machine.
        self.service.deliver(out)

    def used(self, prefixes: Iterable[EidPrefix]) -> None:
        now = self.service.now()
        wanted = tuple(prefixes)
        for machine in (self.node.resolver, self.node.prober):
            if machine is not None:
                machine.used(wanted, now)
        self.service.rearm()

    # -- mobility ------------------------------------------------------------------

    def rlocs_changed(self, rlocs: tuple[IPAddress, ...]) -> None:
        """Case 1: this node now sits at other RLOCs."""
        if rlocs == self.rlocs:
            return
        log.info("rlocs_changed", old=[str(r) for r in self.rlocs], new=[str(r) for r in rlocs])
        self.rlocs = rlocs
        now = self.service.now()
        xtr = self.config.xtr
        self.service.bind(self._addresses())
        for machine in (self.node.resolver, self.node.prober, self.node.solicitor):
            if machine is not None:
                machine.set_itr_rlocs(rlocs)
        if xtr is None:
            return
        self._set_database(now)
        self._solicit(setup.local_prefixes(self.database), now)

    # -- reload --------------------------------------------------------------------

    def reconfigure(self, config: Config) -> None:
        """A reload (the daemon checked that no machine is made or unmade):
        hand each machine its new settings; the state it holds stays."""
        now = self.service.now()
        self.config = config
        out = Output()
        xtr, node = config.xtr, self.node
        if xtr is not None:
            if xtr.proxy_etrs != self.policy.proxy_etrs:
                self.policy = replace(self.policy, proxy_etrs=xtr.proxy_etrs)
                # Negative entries already installed send elsewhere now.
                self.apply_changes(tuple(Installed(entry) for entry in self.mapcache))
            # The mappings first, with the map-servers registered so far; then
            # a new map-server gets the final set (never a mapping that went).
            before = {setup.prefix_of(m): m for m in self.database}
            self._set_database(now)
            after = {setup.prefix_of(m): m for m in self.database}
            peers = setup.map_server_peers(xtr)
            if node.registrar is not None:
                node.registrar.register_interval = xtr.register_interval
                out += self._xtr(node.registrar.set_peers(peers, now))
            if node.resolver is not None:
                node.resolver.set_map_resolvers(xtr.map_resolvers)
                node.resolver.set_map_servers(peers)
            if node.prober is not None:
                node.prober.interval = xtr.rloc_probe_interval
            changed = [p for p in before.keys() | after.keys() if before.get(p) != after.get(p)]
            # ITRs using us for a prefix that went or changed re-resolve it.
            self._solicit(changed, now)
        if node.map_server is not None and config.map_server is not None:
            node.map_server.register_interval = config.map_server.register_interval
            out += self._xtr(node.map_server.set_sites(setup.sites(config.map_server), now))
        self.service.deliver(out)

    def _set_database(self, now: float) -> None:
        """The local database from the configuration and this node's RLOCs now,
        into the C table and the registrar (which registers what changed)."""
        # An EID that moved away stays away: it is not ours to serve again.
        configured = (*self.config.database(), *self.dynamic.values())
        database = tuple(m for m in setup.database(configured, self.rlocs)
                         if setup.prefix_of(m) not in self.policy.reencap)
        kept = {setup.prefix_of(m) for m in database}
        for mapping in self.database:
            key = sync.fib_key(setup.prefix_of(mapping))
            if setup.prefix_of(mapping) not in kept and key is not None:
                self.database_fib.delete(key)
        self.database = database
        for mapping in database:
            self.database_fib.set(*sync.database_entry(mapping))
        registrar = self.node.registrar
        if registrar is not None:
            self.service.deliver(
                self._xtr(registrar.update(setup.local_mappings(database), now))
            )

    def _displaced(self, event: Displaced) -> None:
        """Case 2: another xTR registered one of our EIDs."""
        prefix = EidPrefix.of(event.instance_id, event.eid_prefix.network_address,
                              event.eid_prefix.prefixlen)
        log.info("eid_moved_away", eid=str(prefix))
        now = self.service.now()
        self.database = tuple(m for m in self.database if setup.prefix_of(m) != prefix)
        key = sync.fib_key(prefix)
        if key is not None:
            self.database_fib.delete(key)
        self._send_on(prefix, event.records, now)
        if self.dynamic.pop(prefix, None) is not None:
            # Not ours to register any more: the registrar forgets it.
            self._set_database(now)
            self.dynamic_moved_away(prefix)

    def _host_left(self, event: Left) -> None:
        """Another xTR registered a host inside one of our prefixes: the prefix
        stays ours, the host is served there (its home segment answers for it)."""
        prefix = EidPrefix.of(event.instance_id, event.eid_prefix.network_address,
                              event.eid_prefix.prefixlen)
        key = sync.fib_key(prefix)
        if key is None:
            return
        if prefix in self.away:  # moved on again: sent on to where it is now
            self._send_on(prefix, event.records, self.service.now())
            return
        if len(self.away) >= AWAY_LIMIT:
            log.warning("eid_left_not_followed", eid=str(prefix), limit=AWAY_LIMIT)
            return
        log.info("eid_left", eid=str(prefix))
        self.away.add(prefix)
        # Not local here, though inside a local prefix: the ETR step sends on
        # what still comes for it (the map-cache entry _send_on installs).
        self.database_fib.set(key, FibEntry(FibAction.DROP))
        self._send_on(prefix, event.records, self.service.now())
        self.dynamic_moved_away(prefix)

    def _host_returned(self, event: Returned) -> None:
        """A host that had left one of our prefixes is registered elsewhere no
        more: the prefix covers it again, as if it had never left."""
        prefix = EidPrefix.of(event.instance_id, event.eid_prefix.network_address,
                              event.eid_prefix.prefixlen)
        key = sync.fib_key(prefix)
        if prefix not in self.away or key is None:
            return
        log.info("eid_left_no_more", eid=str(prefix))
        self.away.discard(prefix)
        self.database_fib.delete(key)
        self.policy = replace(self.policy, reencap=self.policy.reencap - {prefix})
        self.apply_changes(tuple(self.mapcache.withdraw(prefix)))
        self.dynamic_returned(prefix)

    def _send_on(self, prefix: EidPrefix, records: Iterable[MappingRecord], now: float) -> None:
        """What arrives for prefix is re-encapsulated to the records' locators,
        and the ITRs that sent us traffic lately are told (SMR)."""
        self.policy = replace(self.policy, reencap=self.policy.reencap | {prefix})
        changes: list[Change] = []
        for record in records:
            entry = entry_of(record, now)
            # Installed at the moved prefix itself, the one marked for
            # re-encapsulation, even when the record is wider.
            if entry is not None and entry.prefix.length <= prefix.length and (
                entry.prefix.covers(prefix.instance_id, prefix.address)
            ):
                changes.extend(self.mapcache.insert(replace(entry, prefix=prefix), now))
        self.apply_changes(tuple(changes))
        self._solicit((prefix,), now)

    def add_dynamic(self, instance_id: int, network: IPNetwork) -> None:
        """A host arrived on a gateway segment: its address is a local EID."""
        prefix = EidPrefix.of(instance_id, network.network_address, network.prefixlen)
        if prefix in self.dynamic:
            return
        log.info("dynamic_eid_arrived", eid=str(prefix))
        now = self.service.now()
        self.dynamic[prefix] = DatabaseMapping(eid_prefix=network, instance_id=instance_id)
        self.away.discard(prefix)  # its LOCAL entry replaces the away one
        if prefix in self.policy.reencap:
            # It moved away earlier and has come back: not sent on any more.
            self.policy = replace(self.policy, reencap=self.policy.reencap - {prefix})
            self.apply_changes(tuple(self.mapcache.withdraw(prefix)))
        self._set_database(now)

    def remove_dynamic(self, instance_id: int, network: IPNetwork) -> None:
        """A host left a gateway segment (silent): deregistered."""
        prefix = EidPrefix.of(instance_id, network.network_address, network.prefixlen)
        if self.dynamic.pop(prefix, None) is None:
            return
        log.info("dynamic_eid_left", eid=str(prefix))
        now = self.service.now()
        self._set_database(now)
        self._solicit((prefix,), now)

    def _solicit(self, prefixes: Iterable[EidPrefix], now: float) -> None:
        solicitor = self.node.solicitor
        if solicitor is None:
            return
        since = int((now - RECENT_ITR_WINDOW) * 1000)
        itrs = [a for a in self.fastpath.recent_itrs(max(since, 0)) if a not in self.rlocs]
        wanted = tuple(prefixes)
        if itrs and wanted:
            log.info("smr_sent", eids=[str(p) for p in wanted], itrs=[str(a) for a in itrs])
        self.service.deliver(self._xtr(solicitor.solicit(wanted, itrs, now, self._behind(itrs))))

    def _behind(self, itrs: Iterable[IPAddress]) -> dict[tuple[IPAddress, int], EidPrefix]:
        """An EID prefix of the map-cache behind each ITR, by IP version, where
        there is one (what an SMR in OpenOverlayRouter's form names)."""
        wanted, found = set(itrs), dict[tuple[IPAddress, int], EidPrefix]()
        for entry in self.mapcache:
            address = entry.prefix.address
            if isinstance(address, IPv4Address | IPv6Address):
                for locator in entry.locators:
                    if locator.address in wanted:
                        found.setdefault((locator.address, address.version), entry.prefix)
        return found

    # -- into the data plane ---------------------------------------------------------

    def apply_changes(self, changes: tuple[Change, ...]) -> None:
        if log.is_enabled_for(logging.DEBUG):  # one line per entry: only when asked for
            for change in changes:
                if isinstance(change, Installed):
                    entry = change.entry
                    log.debug("map_cache_installed", eid=str(entry.prefix), ttl=entry.ttl,
                              action=entry.action.name.lower(),
                              rlocs=[f"{r.address}{'' if r.up else ' (down)'}"
                                     for r in entry.locators])
                else:
                    log.debug("map_cache_removed", eid=str(change.prefix),
                              reason=change.reason.name.lower())
        sync.apply(self.mapcache_fib, list(changes), self.policy)

    def _release(self, released: tuple[Released, ...]) -> None:
        for packet in released:
            tun = self.tuns.get(packet.instance_id)
            if tun is not None:
                self.fastpath.itr_send(tun, packet.packet)

    def _after(self) -> None:
        registrar = self.node.registrar
        if registrar is not None:
            for event in registrar.take_events():
                if isinstance(event, Displaced):
                    self._displaced(event)
                elif isinstance(event, Left):
                    self._host_left(event)
                else:
                    self._host_returned(event)
            self._note_acknowledgements()

    def acknowledged_by(self) -> tuple[IPAddress, ...] | None:
        """The map-servers that hold all our registrations (None: no registrar)."""
        registrar, xtr = self.node.registrar, self.config.xtr
        if registrar is None or xtr is None or not xtr.map_servers:
            return None
        return tuple(p.address for p in xtr.map_servers if registrar.acknowledged(p.address))

    def _note_acknowledgements(self) -> None:
        """Log when a map-server comes to hold all our registrations, or stops."""
        held = set(self.acknowledged_by() or ())
        for peer in held - self._acknowledged:
            log.info("registered", peer=str(peer),
                     eids=[str(p) for p in setup.local_prefixes(self.database)])
        configured = {p.address for p in self.config.xtr.map_servers} if self.config.xtr else set()
        for peer in (self._acknowledged - held) & configured:  # not one a reload removed
            log.info("registration_pending", peer=str(peer))
        self._acknowledged = held

    def _addresses(self) -> list[IPAddress]:
        """RLOCs first, in order, like the data plane's outer source, then listen addresses."""
        addresses: list[IPAddress] = []
        if self.config.xtr is not None:
            addresses.extend(self.rlocs)
        if self.config.map_server is not None:
            addresses.extend(self.config.map_server.listen)
        return list(dict.fromkeys(addresses))

    @staticmethod
    def _xtr(datagrams: Iterable[Datagram]) -> Output:
        return Output(tuple(datagrams))

    # -- for lispctl -------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        out: dict[str, int] = {}
        machines: dict[str, Any] = {
            "map_server": self.node.map_server, "registrar": self.node.registrar,
            "resolver": self.node.resolver, "prober": self.node.prober,
            "smr": self.node.solicitor, "control": self.node,
            "control_socket": self.service.sockets,
        }
        for name, machine in machines.items():
            if machine is not None:
                for key, value in machine.counters.items():
                    out[f"{name}_{key}"] = value
        return out
