"""OpenOverlayRouter (Debian `openoverlayrouter`) as an independent peer:
a Map-Server and two xTRs in namespaces on one bridged underlay.

Underlay 198.18.0.0/24 on a bridge in a hub namespace that also forwards
(OOR sends its control traffic via the default gateway of its RLOC
interface). EIDs: 192.0.2.0/26 behind xTR 1, 192.0.2.64/26 behind xTR 2.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from lispd.lab import Lab

KEY = "lispd-oor-key"  # the shared key of the captures; key-type 1 only
GATEWAY = "198.18.0.1"
MS_RLOC = "198.18.0.10"
XTRS = {"x1": ("198.18.0.11", "192.0.2.0/26", "192.0.2.1"),
        "x2": ("198.18.0.12", "192.0.2.64/26", "192.0.2.65")}


def _ms_config(iface: str) -> str:
    return f"""
debug = 1
operating-mode = MS
control-iface = {iface}
encapsulation = LISP
lisp-site {{
    eid-prefix = 192.0.2.0/24
    key-type = 1
    key = {KEY}
    iid = 0
    accept-more-specifics = true
}}
"""


def _xtr_config(iface: str, rloc: str, prefix: str) -> str:
    return f"""
debug = 1
operating-mode = xTR
encapsulation = LISP
map-request-retries = 2
map-resolver = {{
    {MS_RLOC}
}}
map-server {{
    address = {MS_RLOC}
    key-type = 1
    key = {KEY}
    proxy-reply = off
}}
database-mapping {{
    eid-prefix = {prefix}
    iid = 0
    rloc-address {{
        address = {rloc}
        priority = 1
        weight = 100
    }}
}}
"""


def build(lab: Lab, workdir: Path) -> dict[str, str]:
    """Create the namespaces and start the three OOR daemons; returns role -> namespace."""
    hub = lab.add("hub")
    lab.ns(hub, "ip", "link", "add", "br0", "type", "bridge")
    lab.ns(hub, "ip", "addr", "add", f"{GATEWAY}/24", "dev", "br0")
    lab.ns(hub, "ip", "link", "set", "br0", "up")
    lab.ns(hub, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    roles = {"hub": hub}
    for role, address in [("ms", MS_RLOC)] + [(r, v[0]) for r, v in XTRS.items()]:
        name = lab.add(role)
        roles[role] = name
        lab.link(name, "eth0", hub, f"p-{role}")
        lab.ns(hub, "ip", "link", "set", f"p-{role}", "master", "br0")
        lab.ns(name, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
        lab.ns(name, "ip", "route", "add", "default", "via", GATEWAY)
    for role, (_, _, host) in XTRS.items():
        # The host EID sits on lo (this kernel may lack the dummy driver).
        lab.ns(roles[role], "ip", "addr", "add", f"{host}/32", "dev", "lo")
    configs = {"ms": _ms_config("eth0")}
    configs.update({r: _xtr_config("eth0", v[0], v[1]) for r, v in XTRS.items()})
    for role, text in configs.items():
        path = workdir / f"oor-{role}.conf"
        path.write_text(text)
        log = (workdir / f"oor-{role}.log").open("wb")
        lab.popen(
            roles[role], "oor", "-f", str(path), stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    return roles


def capture(lab: Lab, hub: str, pcap: Path) -> subprocess.Popen[bytes]:
    """tcpdump on the underlay bridge: LISP control and data traffic only."""
    process = lab.popen(
        hub, "tcpdump", "-i", "br0", "-U", "-w", str(pcap), "-s", "0",
        "udp port 4342 or udp port 4341",
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return process
