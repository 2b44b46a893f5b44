"""OpenOverlayRouter (Debian `openoverlayrouter`) as an independent peer:
a Map-Server and two xTRs in namespaces on one bridged underlay.

Underlay 198.18.0.0/24 on a bridge in a hub namespace that also forwards
(OOR sends its control traffic via the default gateway of its RLOC
interface). EIDs: 192.0.2.0/26 behind xTR 1, 192.0.2.64/26 behind xTR 2.
The hub and the OOR config pieces serve test_lisp_interop's peer too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lispd.lab import Lab

KEY = "lispd-oor-key"  # the shared key of the captures; key-type 1 only
GATEWAY = "198.18.0.1"
MS_RLOC = "198.18.0.10"
XTRS = {"x1": ("198.18.0.11", "192.0.2.0/26", "192.0.2.1"),
        "x2": ("198.18.0.12", "192.0.2.64/26", "192.0.2.65")}
LISP_TRAFFIC = "udp port 4342 or udp port 4341"  # control and data


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


def mapping(kind: str, prefix: str, rloc: str) -> str:
    """An OOR mapping block (kind: database-mapping, static-map-cache) of
    prefix at one RLOC, priority 1, weight 100."""
    return f"""
{kind} {{
    eid-prefix = {prefix}
    iid = 0
    rloc-address {{
        address = {rloc}
        priority = 1
        weight = 100
    }}
}}
"""


def _xtr_config(rloc: str, prefix: str) -> str:
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
""" + mapping("database-mapping", prefix, rloc)


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
    lab.ns(name, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
    lab.ns(name, "ip", "route", "add", "default", "via", GATEWAY)
    return name


def start(lab: Lab, namespace: str, workdir: Path, role: str,
          config: str) -> subprocess.Popen[bytes]:
    """OOR with config in namespace; config and log are workdir/oor-{role}.*."""
    path = workdir / f"oor-{role}.conf"
    path.write_text(config)
    with (workdir / f"oor-{role}.log").open("wb") as log:
        # Line-buffered, so the log is complete when the namespace is killed.
        return lab.popen(namespace, "stdbuf", "-oL", "-eL", "oor", "-f", str(path),
                         stdout=log, stderr=subprocess.STDOUT, cwd=workdir)


def build(lab: Lab, workdir: Path) -> dict[str, str]:
    """Create the namespaces and start the three OOR daemons; returns role -> namespace."""
    roles = {"hub": hub(lab)}
    for role, address in [("ms", MS_RLOC)] + [(r, v[0]) for r, v in XTRS.items()]:
        roles[role] = attach(lab, roles["hub"], role, address)
    for role, (_, _, host) in XTRS.items():
        # The host EID sits on lo (this kernel may lack the dummy driver).
        lab.ns(roles[role], "ip", "addr", "add", f"{host}/32", "dev", "lo")
    configs = {"ms": _ms_config("eth0")}
    configs.update({r: _xtr_config(v[0], v[1]) for r, v in XTRS.items()})
    for role, text in configs.items():
        start(lab, roles[role], workdir, role, text)
    return roles
