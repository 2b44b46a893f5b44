"""Mapping-system interop with OpenOverlayRouter 1.3.0, both ways round:

1. lispd is the Map-Server/Map-Resolver: an OOR xTR (HMAC-SHA-1-96) and a
   lispd xTR (HMAC-SHA-256-128) register with it and resolve each other's
   EIDs through it.
2. OOR is the Map-Server/Map-Resolver: a lispd xTR (HMAC-SHA-1-96, the only
   key type OOR has) and an OOR xTR register with it, OOR acknowledges
   lispd's registrations with Map-Notifies, and each resolves the other's
   EIDs through it.

Each runs twice: "forwarded", the map-resolver hands every ECM Map-Request
on to the ETR that registered the EID, which answers; "proxy-reply", the xTR
of the other implementation registers with the P bit and the map-server
answers for it. Then the EIDs ping each other both ways, IPv4 and IPv6
EIDs over the IPv4 underlay 198.18.0.0/24 (tests/interop/oor.py's hub: a
bridge and a forwarding gateway, which OOR needs). lispd's xTR is the VM
that is its own xTR (EIDs on its TUN); OOR's EIDs sit on lo and OOR routes
what they source into its tunnel. Nothing is static: every mapping comes
from the mapping system. RLOC probing is off on OOR's side.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lispd.ctl import RequestError
from lispd.lab import Lab, Lispd, lab, map_server_config
from tests import traffic
from tests.interop import oor
from tests.needs import require_netns, require_program

pytestmark = [pytest.mark.interop, pytest.mark.netns]

MS = oor.MS_RLOC
LISPD_RLOC, OOR_RLOC = "198.18.0.20", "198.18.0.21"
LISPD_EID4, LISPD_EID6 = "192.0.2.10", "2001:db8::10"
OOR_PREFIX4, OOR_EID4 = "192.0.2.64/26", "192.0.2.65"
OOR_PREFIX6, OOR_EID6 = "2001:db8:1::/64", "2001:db8:1::1"
EID_SPACE = ("192.0.2.0/24", "2001:db8::/32")
LISPD_PREFIXES = {f"[0]{LISPD_EID4}/32", f"[0]{LISPD_EID6}/128"}
OOR_PREFIXES = {f"[0]{OOR_PREFIX4}", f"[0]{OOR_PREFIX6}"}
OOR_START = 15.0  # seconds OOR may take to install its EID routing (some 4 s)
REGISTRATION_WAIT = 10.0
PINGS = 3
PING_DEADLINE = 5  # seconds a ping may take to get its replies (resolution included)


def _strings(values: Any) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


LISPD_MS_CONFIG = map_server_config(MS, oor.KEY, EID_SPACE, site="interop")


def lispd_xtr_config(key_id: str, *, proxy_reply: bool) -> str:
    """lispd's xTR: its EIDs on its TUN, registered with and resolved through MS."""
    return f"""
[underlay]
rlocs = ["{LISPD_RLOC}"]

[xtr]
eid-space = {_strings(EID_SPACE)}
map-resolvers = ["{MS}"]
register-interval = 60

[[xtr.map-server]]
address = "{MS}"
key = "{oor.KEY}"
key-id = "{key_id}"
proxy-reply = {str(proxy_reply).lower()}

[[xtr.database-mapping]]
eid-prefix = "{LISPD_EID4}/32"
assign = true

[[xtr.database-mapping]]
eid-prefix = "{LISPD_EID6}/128"
assign = true
"""


@dataclass
class Scene:
    """The hub and three nodes: the mapping system (ms), lispd's xTR (lx) and OOR's (ox)."""

    topology: Lab
    workdir: Path
    ms: str
    lx: str
    ox: str
    daemons: dict[str, Lispd] = field(default_factory=dict)
    oors: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def lispd(self, namespace: str, config: str, name: str) -> Lispd:
        self.daemons[name] = self.topology.lispd(namespace, config, self.workdir, name)
        return self.daemons[name]

    def oor(self, namespace: str, role: str, config: str) -> None:
        self.oors[role] = self.topology.oor(namespace, config, self.workdir, role)

    def oor_xtr(self, proxy_reply: bool) -> None:
        """OOR's xTR, registering with and resolving through MS; returns once it routes."""
        self.topology.ns(self.ox, "ip", "addr", "add", f"{OOR_EID4}/32", "dev", "lo")
        self.topology.ns(self.ox, "ip", "addr", "add", f"{OOR_EID6}/128", "dev", "lo", "nodad")
        # RLOC probing off: what is under test here is the mapping system.
        config = oor.xtr_config(MS, [(OOR_PREFIX4, OOR_RLOC), (OOR_PREFIX6, OOR_RLOC)],
                                proxy_reply=proxy_reply, probe_interval=0)
        self.oor(self.ox, "xtr", config)
        prefixes = (OOR_PREFIX4, OOR_PREFIX6)
        if not traffic.wait_for(lambda: self.topology.oor_routed(self.ox, prefixes), OOR_START):
            pytest.fail(f"OOR did not install its EID routing:\n{self.report()}")

    def pings(self) -> dict[str, str]:
        """EID to EID, both ways, both families: each ping's output."""
        def ping(namespace: str, source: str, target: str) -> str:
            # From the EID (OOR only encapsulates what its EIDs source); the
            # first echoes may go while the ITR resolves: -w bounds the wait.
            done = self.topology.ns(namespace, "ping", "-c", str(PINGS), "-i", "0.2",
                                    "-w", str(PING_DEADLINE), "-I", source, target,
                                    check=False)
            return done.stdout + done.stderr

        return {
            "lispd->oor v4": ping(self.lx, LISPD_EID4, OOR_EID4),
            "oor->lispd v4": ping(self.ox, OOR_EID4, LISPD_EID4),
            "lispd->oor v6": ping(self.lx, LISPD_EID6, OOR_EID6),
            "oor->lispd v6": ping(self.ox, OOR_EID6, LISPD_EID6),
        }

    def report(self) -> str:
        parts = []
        for name, daemon in self.daemons.items():
            stats = {k: v for k, v in _stats(daemon).items() if v}
            parts.append(f"--- lispd {name} stats {stats}\n{daemon.log()[-2500:]}")
        for role in self.oors:
            text = (self.workdir / f"oor-{role}.log").read_text(errors="replace")
            parts.append(f"--- OOR {role}\n{text[-2500:]}")
        return "\n".join(parts)

    def stop(self) -> dict[str, int]:
        """Stop the lispd daemons (xTRs before the map-server): their exit codes."""
        codes = {name: daemon.stop() for name, daemon in reversed(self.daemons.items())}
        for process in self.oors.values():
            process.kill()
            process.wait(timeout=10)
        return codes


def _stats(daemon: Lispd) -> dict[str, int]:
    """The daemon's counters, none when it no longer answers (for a report)."""
    try:
        return daemon.stats()
    except (OSError, ValueError, RequestError):
        return {}


@pytest.fixture
def scene(tmp_path: Path) -> Iterator[Scene]:
    require_netns()
    require_program("oor", "openoverlayrouter")
    require_program("ethtool", "ethtool")
    require_program("ping", "iputils-ping")
    require_program("stdbuf", "coreutils")
    with lab() as topology:
        hub = oor.hub(topology)
        yield Scene(topology, tmp_path, oor.attach(topology, hub, "ms", MS),
                    oor.attach(topology, hub, "lx", LISPD_RLOC),
                    oor.attach(topology, hub, "ox", OOR_RLOC))


def _check_pings(outputs: dict[str, str], report: str) -> None:
    for what, output in outputs.items():
        assert traffic.replies(output) >= PINGS, f"{what}:\n{output}\n{report}"


def _check_cache(cache: list[dict[str, Any]], report: str) -> None:
    """lispd's xTR resolved OOR's prefixes to OOR's RLOC."""
    rlocs = {row["eid-prefix"]: [r["address"] for r in row["rlocs"]] for row in cache}
    for prefix in OOR_PREFIXES:
        assert rlocs.get(prefix) == [OOR_RLOC], f"{rlocs}\n{report}"


# forwarded: the map-server forwards each ECM Map-Request to the ETR that
# registered the EID, which answers; proxy-reply: the xTR of the other
# implementation registers with the P bit (RFC 9301 section 5.6) and the
# map-server answers for it.
RESOLUTION = pytest.mark.parametrize("proxy_reply", [False, True],
                                     ids=["forwarded", "proxy-reply"])


@RESOLUTION
def test_oor_xtr_registers_with_and_resolves_through_lispd(scene: Scene,
                                                           proxy_reply: bool) -> None:
    server = scene.lispd(scene.ms, LISPD_MS_CONFIG, "ms")
    xtr = scene.lispd(scene.lx, lispd_xtr_config("hmac-sha256", proxy_reply=False), "lx")
    scene.oor_xtr(proxy_reply)

    def registrations() -> dict[str, dict[str, Any]]:
        return {row["prefix"]: row for row in server.request("show", "registrations")}

    assert traffic.wait_for(lambda: set(registrations()) >= LISPD_PREFIXES | OOR_PREFIXES,
                            REGISTRATION_WAIT), f"{registrations()}\n{scene.report()}"
    outputs = scene.pings()
    rows = registrations()
    cache = xtr.request("show", "map-cache")
    server_stats, xtr_stats = server.stats(), xtr.stats()
    report = scene.report()
    codes = scene.stop()
    _check_pings(outputs, report)
    assert set(rows) == LISPD_PREFIXES | OOR_PREFIXES, rows
    for prefix in OOR_PREFIXES:
        # OOR signed with HMAC-SHA-1-96 (Key ID 1), from its RLOC, locator its RLOC.
        row = rows[prefix]
        assert (row["key-id"], row["source"], row["proxy-reply"]) == (
            1, OOR_RLOC, proxy_reply), row
        assert [loc["locator"] for loc in row["record"]["locators"]] == [OOR_RLOC], row
    for prefix in LISPD_PREFIXES:
        assert (rows[prefix]["key-id"], rows[prefix]["source"]) == (2, LISPD_RLOC), rows[prefix]
    # Each xTR asked lispd's map-resolver for the other's EIDs, once per family
    # at least: OOR's questions went on to lispd's ETR, lispd's to OOR's ETR
    # (OOR answered them) or were answered by the map-server for OOR.
    forwarded = server_stats.get("map_server_map_request_forwarded", 0)
    proxied = server_stats.get("map_server_proxy_reply", 0)
    if proxy_reply:
        assert forwarded >= 2 and proxied >= 2, server_stats
    else:
        assert forwarded >= 4 and proxied == 0, server_stats
    assert server_stats.get("map_server_negative_reply", 0) == 0, server_stats
    for refused in ("malformed", "bad_auth", "unknown_key_id", "outside_site", "unexpected"):
        assert server_stats.get(f"map_server_{refused}", 0) == 0, server_stats
    _check_cache(cache, report)
    assert xtr_stats["etr_packets"] >= 2 * PINGS, xtr_stats
    assert all(code == 0 for code in codes.values()), (codes, report)


@RESOLUTION
def test_lispd_xtr_registers_with_and_resolves_through_oor(scene: Scene,
                                                           proxy_reply: bool) -> None:
    scene.oor(scene.ms, "ms", oor.ms_config("eth0", EID_SPACE))
    xtr = scene.lispd(scene.lx, lispd_xtr_config("hmac-sha1", proxy_reply=proxy_reply), "lx")
    scene.oor_xtr(proxy_reply)

    def registrations() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = xtr.request("show", "database")["registrations"]
        return rows

    def acknowledged() -> bool:
        rows = registrations()
        return len(rows) == 2 and all(row["acknowledged"] for row in rows)

    # OOR's Map-Notify (HMAC-SHA-1-96, the nonce of lispd's Map-Register)
    # acknowledges each of lispd's registrations.
    assert traffic.wait_for(acknowledged, REGISTRATION_WAIT), (
        f"{registrations()}\n{scene.report()}")
    outputs = scene.pings()
    rows = registrations()
    cache = xtr.request("show", "map-cache")
    stats = xtr.stats()
    report = scene.report()
    codes = scene.stop()
    assert {(row["server"], row["eid-prefix"], row["acknowledged"]) for row in rows} == {
        (MS, f"{LISPD_EID4}/32", True), (MS, f"{LISPD_EID6}/128", True)}, rows
    _check_pings(outputs, report)
    _check_cache(cache, report)
    assert stats["registrar_acknowledged"] >= 2, stats
    # OOR's map-server forwarded OOR's Map-Requests to lispd's ETR, or (P bit)
    # answered them itself.
    replies_sent = stats.get("registrar_replies_sent", 0)
    assert replies_sent == 0 if proxy_reply else replies_sent >= 2, stats
    assert stats["etr_packets"] >= 2 * PINGS, stats
    assert all(code == 0 for code in codes.values()), (codes, report)
