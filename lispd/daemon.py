"""The composition root: `lispd run` puts the parts together and runs them.

Start-up carries out the host plan (devices, addresses, routes, rules) in an
executor, loads the static state into the tables, opens the underlay sockets
and hands every descriptor to the engine. Shutdown undoes it all in reverse,
so SIGTERM leaves the host as it found it; the devices are non-persistent, so
even a kill -9 leaves nothing behind that breaks the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import structlog

from lispd import answers, ctl, reload
from lispd import log as log_setup
from lispd.config import ConfigError
from lispd.config import load as load_config
from lispd.config.model import Config, IPAddress, StaticMapping
from lispd.control import setup
from lispd.control.plane import ControlPlane
from lispd.dataplane import plan as host_plan
from lispd.dataplane import sockets, sync
from lispd.dataplane.engine import Engine
from lispd.dataplane.fastpath import FastPath, FastPathError, Miss
from lispd.dataplane.tables import Fdb, FdbEntry, Fib
from lispd.host import Host
from lispd.mapcache import Change, EidPrefix, Locator, MapCache, MapEntry
from lispd.metrics import MetricsServer
from lispd.netlink import AddressWatch, NetlinkError
from lispd.sdnotify import Notifier
from lispd.supervision import Supervision
from lispd.wire.data import LISP_DATA_PORT, VXLAN_PORT
from lispd.wire.records import Action

log = structlog.get_logger("lispd")

DATAPLANE_PATH = "batched"
"""The data path in use: batched reads and sendmmsg, no TUN/UDP offloads (yet)."""
REFUSED = "reload refused, still running the old configuration"
HOUSEKEEPING_INTERVAL = 1.0
RLOC_SETTLE = 0.05
"""Seconds of netlink quiet before this node's RLOCs are looked up again."""
FDB_LIMIT = 65536
STATIC_ACTIONS = {
    "drop": Action.DROP_NO_REASON,
    "native-forward": Action.NATIVELY_FORWARD,
    "send-map-request": Action.SEND_MAP_REQUEST,
}


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def static_entry(mapping: StaticMapping) -> MapEntry:
    prefix = EidPrefix(
        mapping.instance_id, mapping.eid_prefix.network_address, mapping.eid_prefix.prefixlen
    )
    locators = tuple(Locator(r.address, r.priority, r.weight) for r in mapping.rlocs)
    return MapEntry(prefix, locators, ttl=None, action=STATIC_ACTIONS[mapping.action])


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        limit = config.xtr.map_cache_limit if config.xtr else 1
        self.mapcache = MapCache(limit)
        self.mapcache_fib = Fib(limit)
        # Room for the mappings a reload may add, not only today's.
        self.database_fib = Fib(reload.database_room(config))
        self.fdb = Fdb(FDB_LIMIT)
        self.fastpath = FastPath(self.mapcache_fib, self.database_fib, self.fdb)
        self.host = Host(host_plan.plan(config))
        self.sockets: list[socket.socket] = []
        self.engine: Engine | None = None
        self.control: ctl.ControlServer | None = None
        # pyroute2's sync IPRoute keeps per-thread state: one thread for all
        # netlink work, start to finish.
        self._netlink_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._stop = asyncio.Event()
        self._misses_logged = 0.0
        # This node's RLOCs now: the fixed ones, plus the addresses of the
        # followed interfaces as netlink last reported them.
        self.rlocs: tuple[IPAddress, ...] = config.underlay.rlocs
        self.tun_index: dict[int, int] = {}
        self._raw: dict[int, socket.socket] = {}
        self.segments: dict[int, int] = {}  # VNI -> the fast path's segment index
        self._reloading = asyncio.Lock()
        self.notifier = Notifier.from_environment()
        self.supervision: Supervision | None = None
        self.metrics: MetricsServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.plane: ControlPlane | None = None
        self._watch: AddressWatch | None = None
        self._settle: asyncio.TimerHandle | None = None

    # -- start-up ------------------------------------------------------------

    def _bring_up_host(self) -> None:
        """Runs on the netlink thread: netlink calls block."""
        self.host.bring_up()
        self.rlocs = self._current_rlocs()

    def _current_rlocs(self) -> tuple[IPAddress, ...]:
        """Runs on the netlink thread."""
        return self.host.rlocs(self.config.underlay)

    def _load_tables(self) -> None:
        xtr = self.config.xtr
        if xtr is not None:
            for mapping in setup.database(xtr, self.rlocs):
                self.database_fib.set(*sync.database_entry(mapping))
            # The control plane's policy, before it exists: a native-forward
            # static mapping goes to the proxy-ETRs like a learnt one.
            policy = sync.FibPolicy(proxy_etrs=xtr.proxy_etrs)
            for static in xtr.static_mappings:
                sync.apply(self.mapcache_fib,
                           self.mapcache.insert(static_entry(static), time.monotonic()), policy)
        for segment in self.config.vxlan:
            for pinned in segment.static:
                self.fdb.set(FdbEntry(segment.vni, pinned.mac, pinned.vtep, True, 0))

    def _open_sockets(self, engine: Engine) -> None:
        config = self.config
        self._raw = {version: self._keep(sockets.raw_sender(version)) for version in (4, 6)}
        self._set_underlay()
        by_name = {device.name: device for device in self.host.devices}
        for tun in self.host.plan.tuns:
            index = self.fastpath.add_tun(by_name[tun.name].fd, tun.instance_id)
            self.tun_index[tun.instance_id] = index
            engine.watch_tun(index, by_name[tun.name].fd, tun.name)
        if config.xtr is not None:
            # Addresses of followed interfaces come and go: listen on all of
            # them (the wildcard) rather than rebinding the data sockets.
            listen = ((IPv4Address(0), IPv6Address(0)) if config.underlay.interfaces
                      else config.underlay.rlocs)
            for rloc in listen:
                sock = self._keep(sockets.udp_receiver(rloc, LISP_DATA_PORT))
                engine.watch_lisp(sock.fileno(), f"lisp {rloc}")
        vteps: set[IPAddress] = set()
        for segment in config.vxlan:
            tap = by_name[segment.device]
            index = self.fastpath.add_segment(tap.fd, segment.vni, segment.local,
                                              segment.learning)
            self.segments[segment.vni] = index
            self.fastpath.set_flood(index, segment.flood)
            engine.watch_tap(index, tap.fd, segment.device)
            if segment.local not in vteps:
                vteps.add(segment.local)
                sock = self._keep(sockets.udp_receiver(segment.local, VXLAN_PORT))
                engine.watch_vxlan(sock.fileno(), f"vxlan {segment.local}")

    def _set_underlay(self) -> None:
        """The outer source addresses: this node's first RLOC of each family."""
        rloc4 = next((r for r in self.rlocs if isinstance(r, IPv4Address)), None)
        rloc6 = next((r for r in self.rlocs if isinstance(r, IPv6Address)), None)
        self.fastpath.set_underlay(
            rloc4, rloc6, self.config.underlay.mtu, self._raw[4].fileno(), self._raw[6].fileno()
        )

    def _keep(self, sock: socket.socket) -> socket.socket:
        self.sockets.append(sock)
        return sock

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._netlink_thread, self._bring_up_host)
        self._load_tables()
        self.engine = Engine(loop, self.fastpath, self._on_misses, _monotonic_ms)
        self._open_sockets(self.engine)
        self.plane = ControlPlane(
            loop, self.config, mapcache=self.mapcache, mapcache_fib=self.mapcache_fib,
            database_fib=self.database_fib, fastpath=self.fastpath, tuns=self.tun_index,
            rlocs=self.rlocs,
        )
        if self.plane.enabled:
            self.plane.start()
        if self.config.underlay.interfaces:
            self._watch = AddressWatch()
            loop.add_reader(self._watch.fileno(), self._addresses_changed)
        self.control = ctl.ControlServer(self.config.daemon.control_socket, self._query)
        await self.control.start()
        if self.config.daemon.metrics_listen is not None:
            address, port = self.config.daemon.metrics_listen
            self.metrics = MetricsServer(loop, address, port, self.counters, self.gauges,
                                         lambda: DATAPLANE_PATH)
            self.metrics.start()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._hangup)
        self.supervision = Supervision(
            loop, self.notifier, status=self.status_line, registered=self._registered,
            ready_timeout=self.config.daemon.ready_timeout,
        )
        self.supervision.start()
        log.info(
            "ready",
            tuns=[tun.name for tun in self.host.plan.tuns],
            taps=[tap.name for tap in self.host.plan.taps],
            rlocs=[str(r) for r in self.rlocs],
            static_mappings=len(self.mapcache),
        )

    # -- running -------------------------------------------------------------

    def status_line(self) -> str:
        """One line on what this node is doing, for systemd's STATUS=."""
        parts: list[str] = []
        xtr, plane = self.config.xtr, self.plane
        if xtr is not None:
            database = plane.database if plane is not None else xtr.database_mappings
            parts.append(f"xTR at {', '.join(map(str, self.rlocs)) or 'no RLOC yet'}: "
                         f"{len(database)} EID prefixes")
            registrar = plane.node.registrar if plane is not None else None
            if registrar is not None:
                acknowledged = sum(registrar.acknowledged(p.address) for p in xtr.map_servers)
                parts.append(f"registered with {acknowledged}/{len(xtr.map_servers)} "
                             "map-servers" + ("" if acknowledged else " (not acknowledged)"))
            parts.append(f"map-cache {len(self.mapcache)} entries")
        if plane is not None and plane.node.map_server is not None:
            parts.append(f"map-server: {len(plane.node.map_server.registrations())} "
                         "registrations")
        if self.config.vxlan:
            parts.append(f"{len(self.config.vxlan)} VXLAN segments, {len(self.fdb)} MACs")
        return "; ".join(parts)

    def _registered(self) -> bool | None:
        """Whether a map-server acknowledged a registration; None with none configured."""
        registrar = self.plane.node.registrar if self.plane is not None else None
        if registrar is None or self.config.xtr is None:
            return None
        return any(registrar.acknowledged(p.address) for p in self.config.xtr.map_servers)

    def _on_misses(self, misses: list[Miss]) -> None:
        if self.plane is not None and self.plane.node.resolver is not None:
            self.plane.misses(misses)
            return
        # Without map-resolvers a miss is a counted drop, logged at most once
        # a second so a flood of them cannot flood the log.
        now = time.monotonic()
        if now - self._misses_logged >= 1.0:
            self._misses_logged = now
            log.info("map_cache_miss", eid=str(misses[0].address),
                     instance_id=misses[0].instance_id, in_batch=len(misses))

    def _housekeeping(self) -> None:
        now = time.monotonic()
        used = sync.report_used(self.mapcache_fib, self.mapcache, now)
        if self.plane is not None:
            self.plane.used(used)
        # With a resolver, its timer expires entries on time; without one,
        # this does, once a second.
        if self.plane is None or self.plane.node.resolver is None:
            sync.apply(self.mapcache_fib, self.mapcache.expire(now))
        now_ms = _monotonic_ms()
        for segment in self.config.vxlan:
            self.fdb.age(now_ms, segment.ageing * 1000, segment.vni)
        if self.supervision is not None:
            self.supervision.refresh()

    def _addresses_changed(self) -> None:
        """A netlink event: look at what is true once the burst is over.

        A move comes as a burst (old address gone, link up, new address, new
        default route); acting on the first event would register an address
        that has no route yet, or none at all.
        """
        assert self._watch is not None
        self._watch.drain()
        if self._settle is not None:
            self._settle.cancel()
        self._settle = asyncio.get_running_loop().call_later(RLOC_SETTLE, self._look_up_rlocs)

    def _look_up_rlocs(self) -> None:
        self._settle = None
        future = asyncio.get_running_loop().run_in_executor(
            self._netlink_thread, self._current_rlocs
        )
        future.add_done_callback(self._rlocs_known)

    def _rlocs_known(self, future: asyncio.Future[tuple[IPAddress, ...]]) -> None:
        if future.cancelled() or future.exception() is not None:
            log.warning("rloc_lookup_failed", error=str(future.exception()))
            return
        rlocs = future.result()
        if rlocs == self.rlocs:
            return
        if not rlocs:
            # Off every network for now (mid-migration): nothing could be
            # sent anyway, so keep the old state until an address comes.
            log.warning("no_rloc", interfaces=list(self.config.underlay.interfaces))
            return
        self.rlocs = rlocs
        self._set_underlay()
        if self.plane is not None:
            self.plane.rlocs_changed(rlocs)

    def _query(self, command: str, args: list[str]) -> Any:
        return answers.answer(self, command, args)

    def counters(self) -> dict[str, int]:
        """Every counter of every part, flat (lispctl show stats, metrics)."""
        counters = self.fastpath.counters()
        if self.plane is not None:
            counters.update(self.plane.counters())
        for name, value in self.notifier.counters.items():
            counters[f"systemd_notify_{name}"] = value
        for name, value in self.mapcache.counters.items():
            counters[f"map_cache_{name}"] = value
        return counters

    def gauges(self) -> dict[str, float]:
        """Every gauge, flat (metrics; the names are catalogued in lispd.metrics)."""
        out: dict[str, float] = {"map_cache_entries": len(self.mapcache),
                                 "map_cache_limit": self.mapcache.limit,
                                 "fdb_entries": len(self.fdb)}
        node = self.plane.node if self.plane is not None else None
        if node is None:
            return out
        if node.map_server is not None:
            out["map_server_registrations"] = len(node.map_server.registrations())
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

    def flush(self, prefix: EidPrefix | None) -> int:
        """Remove the learnt map-cache entries (those `prefix` covers); how many went."""
        changes = self.mapcache.flush(prefix)
        if self.plane is not None:
            self.plane.apply_changes(tuple(changes))
        else:
            sync.apply(self.mapcache_fib, changes)
        return len(changes)

    async def reload(self) -> list[str]:
        """Re-read the configuration file and apply the difference (SIGHUP,
        `lispctl reload`): the lines of what changed. A file that fails its
        checks, or asks for what needs a restart, changes nothing and raises
        RequestError saying why; the old configuration keeps running."""
        async with self._reloading:
            if self.supervision is not None:
                self.supervision.reloading(self.config.source)
            try:
                return await self._reload()
            finally:
                if self.supervision is not None:
                    self.supervision.reloaded()

    async def _reload(self) -> list[str]:
        old, source = self.config, self.config.source
        try:
            new = load_config(source)
        except ConfigError as error:
            log.warning("reload_refused", source=source,
                        problems=[p.format(source) for p in error.problems])
            raise ctl.RequestError(f"{REFUSED}:\n{error}") from None
        restart = reload.restart_needed(old, new)
        if restart:
            log.warning("reload_refused", source=source, needs_restart=list(restart))
            raise ctl.RequestError(
                f"{REFUSED}: these changes need a restart: {', '.join(restart)}"
            )
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._netlink_thread, self.host.change, host_plan.plan(new)
            )
        except NetlinkError as error:
            log.warning("reload_refused", source=source, error=str(error))
            raise ctl.RequestError(f"{REFUSED}: {error}") from None
        self._reload_tables(old, new)
        if self.plane is not None:
            self.plane.reconfigure(new)
        self.config = new
        log_setup.configure(new.daemon.log_format, new.daemon.log_level)
        changes = reload.summary(old, new)
        log.info("reloaded", source=source, changes=changes)
        return changes or ["no changes"]

    def _reload_tables(self, old: Config, new: Config) -> None:
        """Static mappings into the map-cache; flood lists and static MACs into
        the fast path (ageing is read from the configuration as it goes)."""
        if old.xtr is not None and new.xtr is not None:
            now = time.monotonic()
            changes: list[Change] = []
            for mapping in old.xtr.static_mappings:
                if mapping not in new.xtr.static_mappings:
                    changes += self.mapcache.withdraw(static_entry(mapping).prefix)
            for mapping in new.xtr.static_mappings:
                if mapping not in old.xtr.static_mappings:
                    changes += self.mapcache.insert(static_entry(mapping), now)
            if self.plane is not None:
                self.plane.apply_changes(tuple(changes))
            else:
                sync.apply(self.mapcache_fib, changes)
        before = {segment.vni: segment for segment in old.vxlan}
        for segment in new.vxlan:
            was = before[segment.vni]  # segments added or removed need a restart
            if was.flood != segment.flood:
                self.fastpath.set_flood(self.segments[segment.vni], segment.flood)
            for pinned in was.static:
                if pinned not in segment.static:
                    self.fdb.delete(segment.vni, pinned.mac)
            for pinned in segment.static:
                if pinned not in was.static:
                    self.fdb.set(FdbEntry(segment.vni, pinned.mac, pinned.vtep, True, 0))

    def _hangup(self) -> None:
        """SIGHUP: reload in a task (the answer goes to the log)."""
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(ctl.RequestError):  # already logged, with the reason
            await self.reload()

    async def serve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HOUSEKEEPING_INTERVAL)
            self._housekeeping()

    # -- shutdown ------------------------------------------------------------

    async def stop(self) -> None:
        if self.supervision is not None:
            self.supervision.stopping()
        if self._settle is not None:
            self._settle.cancel()
        if self._watch is not None:
            asyncio.get_running_loop().remove_reader(self._watch.fileno())
            self._watch.close()
        if self.plane is not None:
            self.plane.stop()
        if self.engine is not None:
            self.engine.close()
        if self.control is not None:
            await self.control.close()
        if self.metrics is not None:
            self.metrics.close()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        await asyncio.get_running_loop().run_in_executor(
            self._netlink_thread, self.host.tear_down
        )
        self._netlink_thread.shutdown()
        if self.supervision is not None:
            self.supervision.close()
        log.info("stopped", **self.fastpath.counters())


async def run(config: Config) -> int:
    """Run until SIGTERM/SIGINT; the exit status (1: the host refused what
    start-up needed, said in one log line, and everything made is undone)."""
    daemon = Daemon(config)
    try:
        try:
            await daemon.start()
        except (OSError, NetlinkError, FastPathError) as error:
            log.error("start_failed", error=str(error))
            return 1
        await daemon.serve()
    finally:
        await daemon.stop()
    return 0
