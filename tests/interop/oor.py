"""OpenOverlayRouter (Debian `openoverlayrouter`) as an independent peer:
a Map-Server and two xTRs in namespaces on one bridged underlay.

Underlay 198.18.0.0/24 on a bridge in a hub namespace that also forwards
(OOR sends its control traffic via the default gateway of its RLOC
interface). EIDs: 192.0.2.0/26 behind xTR 1, 192.0.2.64/26 behind xTR 2.
The hub and the OOR config pieces serve test_lisp_interop's peer too; what
the throughput bench shares (starting OOR, its mapping blocks, whether it
routes yet) is in lispd.lab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lispd.lab import Lab
from lispd.lab import oor_mapping as mapping

KEY = "lispd-oor-key"  # the shared key of the captures; key-type 1 only
GATEWAY = "198.18.0.1"
MS_RLOC = "198.18.0.10"
XTRS = {"x1": ("198.18.0.11", "192.0.2.0/26", "192.0.2.1"),
        "x2": ("198.18.0.12", "192.0.2.64/26", "192.0.2.65")}
LISP_TRAFFIC = "udp port 4342 or udp port 4341"  # control and data


def ms_config(iface: str, prefixes: Sequence[str] = ("192.0.2.0/24",), key: str = KEY) -> str:
    """OOR as Map-Server (and Map-Resolver) on iface: one lisp-site per prefix,
    instance 0, more-specifics accepted, HMAC-SHA-1-96 (key-type 1, the only
    one OOR 1.3.0 has)."""
    sites = "".join(f"""
lisp-site {{
    eid-prefix = {prefix}
    key-type = 1
    key = {key}
    iid = 0
    accept-more-specifics = true
}}
""" for prefix in prefixes)
    return f"""
debug = 1
operating-mode = MS
control-iface = {iface}
encapsulation = LISP
""" + sites


def xtr_config(map_server: str, mappings: Sequence[tuple[str, str]], *,
               proxy_reply: bool = False, probe_interval: int | None = None,
               key: str = KEY) -> str:
    """An OOR xTR that registers its database mappings (prefix, RLOC) with
    map_server (key-type 1) and resolves through it as its map-resolver.
    probe_interval: RLOC probing every so many seconds (0: off); None keeps
    OOR's default."""
    probing = ("" if probe_interval is None
               else f"rloc-probing {{\n    rloc-probe-interval = {probe_interval}\n}}\n")
    return f"""
debug = 1
operating-mode = xTR
encapsulation = LISP
map-request-retries = 2
{probing}map-resolver = {{
    {map_server}
}}
map-server {{
    address = {map_server}
    key-type = 1
    key = {key}
    proxy-reply = {"on" if proxy_reply else "off"}
}}
""" + "".join(mapping("database-mapping", prefix, rloc) for prefix, rloc in mappings)


def hub(lab: Lab) -> str:
    """The hub namespace: the underlay bridge br0 with the gateway on it, forwarding."""
    name = lab.add("hub")
    lab.ns(name, "ip", "link", "add", "br0", "type", "bridge")
    lab.ns(name, "ip", "addr", "add", f"{GATEWAY}/24", "dev", "br0")
    lab.ns(name, "ip", "link", "set", "br0", "up")
    lab.ns(name, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return name


def attach(lab: Lab, hub: str, role: str, address: str) -> str:
    """A namespace for role on the hub's bridge: address on its eth0, the
    default route via the gateway."""
    name = lab.add(role)
    lab.link(name, "eth0", hub, f"p-{role}")
    lab.ns(hub, "ip", "link", "set", f"p-{role}", "master", "br0")
    # A switch port, not a veth: what leaves it is cut to the MTU, as on a
    # wire. A veth hands UDP_SEGMENT trains over whole, and OOR, which reads
    # its data packets from a raw socket, would see a train as one packet.
    lab.ns(hub, "ethtool", "-K", f"p-{role}", "tx-udp-segmentation", "off")
    lab.ns(name, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
    lab.ns(name, "ip", "route", "add", "default", "via", GATEWAY)
    return name


def build(lab: Lab, workdir: Path) -> dict[str, str]:
    """Create the namespaces and start the three OOR daemons; returns role -> namespace."""
    roles = {"hub": hub(lab)}
    for role, address in [("ms", MS_RLOC)] + [(r, v[0]) for r, v in XTRS.items()]:
        roles[role] = attach(lab, roles["hub"], role, address)
    for role, (_, _, host) in XTRS.items():
        # The host EID sits on lo (this kernel may lack the dummy driver).
        lab.ns(roles[role], "ip", "addr", "add", f"{host}/32", "dev", "lo")
    configs = {"ms": ms_config("eth0")}
    configs.update({r: xtr_config(MS_RLOC, [(v[1], v[0])]) for r, v in XTRS.items()})
    for role, text in configs.items():
        lab.oor(roles[role], text, workdir, role)
    return roles
