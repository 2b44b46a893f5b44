"""The composition root: `lispd run` puts the parts together and runs them.

Start-up carries out the host plan (devices, addresses, routes, rules) in an
executor, loads the static state into the tables, opens the underlay sockets
and hands every descriptor to the engine. Shutdown undoes it all in reverse,
so SIGTERM leaves the host as it found it; the devices are non-persistent, so
even a kill -9 leaves nothing behind that breaks the next start. A reload
(SIGHUP, `lispctl reload`) re-reads the file and applies only the difference
(lispd.reload says what may change); systemd hears how it goes through
lispd.supervision.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import structlog

from lispd import answers, ctl, reload, report
from lispd import log as log_setup
from lispd.config import ConfigError
from lispd.config import load as load_config
from lispd.config.model import Config, IPAddress
from lispd.control import setup
from lispd.control.plane import ControlPlane
from lispd.dataplane import plan as host_plan
from lispd.dataplane import sockets, sync
from lispd.dataplane.engine import Engine
from lispd.dataplane.fastpath import FastPath, FastPathError, Miss
from lispd.dataplane.tables import Fdb, FdbEntry, Fib
from lispd.gateways import Gateways
from lispd.host import Host
from lispd.mapcache import Change, EidPrefix, MapCache
from lispd.metrics import MetricsServer
from lispd.netlink import AddressWatch, Netlink, NetlinkError
from lispd.sdnotify import Notifier
from lispd.supervision import Supervision
from lispd.wire.data import LISP_DATA_PORT, VXLAN_PORT

log = structlog.get_logger("lispd")

OFFLOAD_PATH = "offload"
"""TUN/TAP super-packets cut into UDP_SEGMENT trains, UDP_GRO trains coalesced."""
BATCHED_PATH = "batched"
"""Batched reads and sendmmsg, one packet at a time: offloads off or refused."""
REFUSED = "reload refused, still running the old configuration"
HOUSEKEEPING_INTERVAL = 1.0
RLOC_SETTLE = 0.05
"""Seconds of netlink quiet before this node's RLOCs are looked up again."""
FDB_LIMIT = 65536


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


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
        self.host = Host(host_plan.plan(config), offloads=config.daemon.offloads == "auto")
        self.sockets: list[socket.socket] = []
        self.engine: Engine | None = None
        self.server: ctl.ControlServer | None = None
        # pyroute2's sync IPRoute keeps per-thread state: one thread for all
        # netlink work, start to finish.
        self._netlink_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._stop = asyncio.Event()
        self._stopping = False  # stop() has begun: no reload, no RLOC change any more
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
        self.dataplane_path = BATCHED_PATH
        self._tasks: set[asyncio.Task[Any]] = set()
        self.plane: ControlPlane | None = None
        self.gateways: Gateways | None = None
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

    def _load_database(self) -> None:
        for mapping in setup.database(self.config.database(), self.rlocs):
            self.database_fib.set(*sync.database_entry(mapping))

    def _open_train_senders(self, refused: list[str]) -> bool:
        """UDP_SEGMENT senders for each outer family, where the kernel has
        them (what it refused goes to `refused`): whether there are any."""
        opened = False
        for version in (4, 6):
            try:
                senders = [self._keep(sock) for sock in sockets.train_senders(version)]
            except OSError as error:
                refused.append(f"IPv{version} UDP_SEGMENT: {error.strerror or error}")
                continue
            self.fastpath.set_train_senders(
                version, [(sock.fileno(), sock.getsockname()[1]) for sock in senders])
            opened = True
        return opened

    def _receiver(self, address: IPAddress, port: int, refused: list[str]) -> socket.socket:
        sock = self._keep(sockets.udp_receiver(address, port))
        if self.config.daemon.offloads == "auto" and not sockets.enable_gro(sock):
            refused.append(f"UDP_GRO on {address} port {port}")
        return sock

    def _uso(self, device: str) -> bool:
        """Whether the kernel takes UDP super-packets on the device."""
        return "uso4" in self.host.offloaded.get(device, ())

    def _open_sockets(self, engine: Engine) -> None:
        config = self.config
        self._raw = {version: self._keep(sockets.raw_sender(version)) for version in (4, 6)}
        self._set_underlay()
        refused: list[str] = []
        trains = config.daemon.offloads == "auto" and self._open_train_senders(refused)
        by_name = {device.name: device for device in self.host.devices}
        for tun in self.host.plan.tuns:
            device = by_name[tun.name]
            index = self.fastpath.add_tun(device.fd, tun.instance_id)
            self.fastpath.set_vnet(3, index, device.vnet_hdr, udp=self._uso(tun.name))
            self.tun_index[tun.instance_id] = index
            engine.watch_tun(index, device.fd, tun.name)
        if config.xtr is not None:
            # Addresses of followed interfaces come and go: listen on all of
            # them (the wildcard) rather than rebinding the data sockets.
            listen = ((IPv4Address(0), IPv6Address(0)) if config.underlay.interfaces
                      else config.underlay.rlocs)
            for rloc in listen:
                sock = self._receiver(rloc, LISP_DATA_PORT, refused)
                engine.watch_lisp(sock.fileno(), f"lisp {rloc}")
            if config.proxy is not None:
                self.fastpath.set_served_itrs(config.proxy.served_itrs)
        vteps: set[IPAddress] = set()
        for segment in config.vxlan:
            tap = by_name[segment.device]
            index = self.fastpath.add_segment(tap.fd, segment.vni, segment.local,
                                              segment.learning)
            self.fastpath.set_vnet(2, index, tap.vnet_hdr, udp=self._uso(segment.device))
            self.segments[segment.vni] = index
            engine.watch_tap(index, tap.fd, segment.device)
            if segment.local not in vteps:
                vteps.add(segment.local)
                sock = self._receiver(segment.local, VXLAN_PORT, refused)
                engine.watch_vxlan(sock.fileno(), f"vxlan {segment.local}")
        self._choose_path(trains, refused)

    def _choose_path(self, trains: bool, refused: list[str]) -> None:
        """Say which data path is in use, and what the kernel refused."""
        offloaded = self.host.offloaded
        refused += [f"offloads on {name}" for name, got in offloaded.items() if not got]
        if self.config.daemon.offloads == "off":
            self.dataplane_path = BATCHED_PATH
            log.info("dataplane_path", path=BATCHED_PATH, reason="offloads = off")
            return
        self.dataplane_path = (OFFLOAD_PATH if trains and any(offloaded.values())
                               else BATCHED_PATH)
        log.info("dataplane_path", path=self.dataplane_path,
                 devices={name: list(got) for name, got in offloaded.items()},
                 refused=refused)

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
        # First of all: a stop signal during start-up must still undo it all.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._hangup)
        await loop.run_in_executor(self._netlink_thread, self._bring_up_host)
        self._load_database()
        self.engine = Engine(loop, self.fastpath, self._on_misses, _monotonic_ms)
        self._open_sockets(self.engine)
        self.plane = ControlPlane(
            loop, self.config, mapcache=self.mapcache, mapcache_fib=self.mapcache_fib,
            database_fib=self.database_fib, fastpath=self.fastpath, tuns=self.tun_index,
            rlocs=self.rlocs,
        )
        bare = replace(self.config, vxlan=(), xtr=self.config.xtr and replace(
            self.config.xtr, static_mappings=()))
        self._change_tables(bare, self.config)
        # Before the control plane starts: what it hears of moved hosts must
        # reach the segments' machines.
        await self._open_gateways(loop)
        if self.plane.enabled:
            self.plane.start()
        if self.config.underlay.interfaces:
            self._watch = AddressWatch()
            loop.add_reader(self._watch.fileno(), self._addresses_changed)
        self.server = ctl.ControlServer(self.config.daemon.control_socket, self._query)
        await self.server.start()
        if self.config.daemon.metrics_listen is not None:
            address, port = self.config.daemon.metrics_listen
            self.metrics = MetricsServer(loop, address, port, self.counters, self.gauges,
                                         lambda: self.dataplane_path)
            self.metrics.start()
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

    async def _open_gateways(self, loop: asyncio.AbstractEventLoop) -> None:
        """The dynamic-EID machines of the gateway segments that have ranges."""
        devices = [s.device for s in self.config.vxlan if s.dynamic_eid]
        if not devices:
            return
        macs = await loop.run_in_executor(
            self._netlink_thread,
            lambda: {name: self.host.netlink.link_mac(name) for name in devices})
        self.gateways = Gateways(loop, self.control_plane, self._on_netlink_thread)
        self.gateways.open(self.config, macs)

    def _on_netlink_thread(self, work: Callable[[Netlink], None]) -> None:
        """Run work(netlink) on the netlink thread; a failure is logged."""
        future = asyncio.get_running_loop().run_in_executor(
            self._netlink_thread, work, self.host.netlink)
        future.add_done_callback(
            lambda done: done.cancelled() or done.exception() is None
            or log.warning("netlink_failed", error=str(done.exception())))

    # -- running -------------------------------------------------------------

    @property
    def control_plane(self) -> ControlPlane:
        """The control plane: there from start-up on (nothing here runs before)."""
        assert self.plane is not None, "the daemon has not started"
        return self.plane

    def status_line(self) -> str:
        """One line on what this node is doing, for systemd's STATUS=."""
        return report.status_line(self.config, self.rlocs, self.control_plane, self.mapcache,
                                  self.fdb)

    def _registered(self) -> bool | None:
        """Whether a map-server acknowledged our registrations; None with none configured."""
        held = self.control_plane.acknowledged_by()
        return None if held is None else bool(held)

    def _on_misses(self, misses: list[Miss]) -> None:
        if self.control_plane.node.resolver is not None:
            self.control_plane.misses(misses)
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
        self.control_plane.used(sync.report_used(self.mapcache_fib, self.mapcache, now))
        # With a resolver, its timer expires entries on time; without one,
        # this does, once a second.
        if self.control_plane.node.resolver is None:
            self.control_plane.apply_changes(tuple(self.mapcache.expire(now)))
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
        if self._stopping:
            return  # the sockets and the control plane are going or gone
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
        self.control_plane.rlocs_changed(rlocs)

    def _query(self, command: str, args: list[str]) -> Any:
        return answers.answer(self, command, args)

    def counters(self) -> dict[str, int]:
        """Every counter of every part, flat (lispctl show stats, metrics)."""
        counters = self.fastpath.counters()
        counters.update(self.control_plane.counters())
        for name, value in self.notifier.counters.items():
            counters[f"systemd_notify_{name}"] = value
        for name, value in self.mapcache.counters.items():
            counters[f"map_cache_{name}"] = value
        if self.gateways is not None:
            for name, value in self.gateways.counters().items():
                counters[f"gateway_{name}"] = value
        return counters

    def gauges(self) -> dict[str, float]:
        """Every gauge, flat (metrics)."""
        gauges = report.gauges(self.control_plane, self.mapcache, self.fdb)
        if self.gateways is not None:
            gauges["gateway_dynamic_eids"] = self.gateways.dynamic_eids()
        return gauges

    def flush(self, prefix: EidPrefix | None) -> int:
        """Remove the learnt map-cache entries (those `prefix` covers); how many went."""
        # An EID that moved away keeps the entry it is re-encapsulated with.
        changes = self.mapcache.flush(prefix, keep=self.control_plane.policy.reencap)
        self.control_plane.apply_changes(tuple(changes))
        return len(changes)

    async def reload(self) -> list[str]:
        """Re-read the configuration file and apply the difference (SIGHUP,
        `lispctl reload`): the lines of what changed. A file that fails its
        checks, or asks for what needs a restart, changes nothing and raises
        RequestError saying why; the old configuration keeps running."""
        async with self._reloading:
            supervision = self.supervision
            if supervision is None or self._stopping:
                log.warning("reload_ignored", reason="starting or stopping")
                raise ctl.RequestError("lispd is starting or stopping: no reload now")
            supervision.reloading(self.config.source)
            try:
                return await self._reload()
            finally:
                supervision.reloaded()

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
        self._change_tables(old, new)
        self.control_plane.reconfigure(new)
        self.config = new
        log_setup.configure(new.daemon.log_format, new.daemon.log_level)
        changes = reload.summary(old, new)
        log.info("reloaded", source=source, changes=changes)
        return changes or ["no changes"]

    def _change_tables(self, old: Config, new: Config) -> None:
        """Static mappings into the map-cache; flood lists and static MACs into
        the fast path (ageing is read from the configuration as it goes). At
        start-up `old` is the configuration with none of them."""
        was = old.xtr.static_mappings if old.xtr is not None else ()
        now = new.xtr.static_mappings if new.xtr is not None else ()
        changes: list[Change] = []
        for mapping in was:
            if mapping not in now:
                changes += self.mapcache.withdraw(setup.static_entry(mapping).prefix)
        for mapping in now:
            if mapping not in was:
                changes += self.mapcache.insert(setup.static_entry(mapping), time.monotonic())
        self.control_plane.apply_changes(tuple(changes))
        before = {segment.vni: segment for segment in old.vxlan}
        for segment in new.vxlan:
            pinned_before = before[segment.vni].static if segment.vni in before else ()
            flood_before = before[segment.vni].flood if segment.vni in before else ()
            if segment.flood != flood_before:
                self.fastpath.set_flood(self.segments[segment.vni], segment.flood)
            for pinned in pinned_before:
                if pinned not in segment.static:
                    self.fdb.delete(segment.vni, pinned.mac)
            for pinned in segment.static:
                if pinned not in pinned_before:
                    self.fdb.set(FdbEntry(segment.vni, pinned.mac, pinned.vtep, True, 0))

    def _hangup(self) -> None:
        """SIGHUP: reload in a task (the answer goes to the log)."""
        task = asyncio.get_running_loop().create_task(self._reload_quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except ctl.RequestError:
            pass  # already logged, with the reason
        except Exception:
            log.exception("reload_failed")

    async def serve(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), HOUSEKEEPING_INTERVAL)
            self._housekeeping()

    # -- shutdown ------------------------------------------------------------

    async def stop(self) -> None:
        # The SIGHUP handler stays (removing it would restore the default
        # action, which kills the process mid-teardown); it ignores signals now.
        self._stopping = True
        if self.supervision is not None:
            self.supervision.stopping()
        for task in list(self._tasks):  # a reload under way must not outlive the host
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._settle is not None:
            self._settle.cancel()
        if self._watch is not None:
            asyncio.get_running_loop().remove_reader(self._watch.fileno())
            self._watch.close()
        if self.gateways is not None:
            self.gateways.close()
        if self.plane is not None:
            self.plane.stop()
        if self.engine is not None:
            self.engine.close()
        if self.server is not None:
            await self.server.close()
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
