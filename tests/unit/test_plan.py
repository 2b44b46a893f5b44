"""What the daemon would do to the host, worked out from configurations."""

from __future__ import annotations

from ipaddress import ip_address, ip_network
from pathlib import Path

from lispd.config import parse
from lispd.dataplane.plan import Address, Route, Rule, Tun, plan, tap_mtu, tun_mtu

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

OWN_XTR = """
[underlay]
rlocs = ["198.18.0.1"]
[xtr]
eid-space = ["192.0.2.0/24"]
[[xtr.database-mapping]]
eid-prefix = "192.0.2.10/32"
assign = true
rlocs = [{ address = "198.18.0.1" }]
[[vxlan]]
device = "vxl1"
vni = 1
local = "192.0.2.10"
[[vxlan]]
device = "vxl2"
vni = 2
local = "198.18.0.1"
"""


def test_own_xtr_puts_the_eid_on_the_tun_and_routes_eid_space_into_it() -> None:
    config = parse(OWN_XTR)
    host = plan(config)
    assert host.tuns == (Tun("lisp0", 0, 1500 - 36),)
    assert host.addresses == (Address("lisp0", "192.0.2.10/32"),)
    assert host.routes == (Route(ip_network("192.0.2.0/24"), "lisp0", None),)
    assert host.rules == ()
    assert not host.forwarding


def test_mtus_leave_room_for_the_encapsulation() -> None:
    config = parse(OWN_XTR)
    assert tun_mtu(config) == 1464
    vxlan_over_lisp, vxlan_on_underlay = config.vxlan
    # A VTEP on an EID pays for LISP and VXLAN; one on an RLOC only for VXLAN.
    assert tap_mtu(config, vxlan_over_lisp) == 1464 - 50
    assert tap_mtu(config, vxlan_on_underlay) == 1500 - 50
    with_ipv6 = parse(OWN_XTR.replace('rlocs = ["198.18.0.1"]',
                                      'rlocs = ["198.18.0.1", "2001:2::1"]'))
    assert tun_mtu(with_ipv6) == 1500 - 56


def test_site_gateway_routes_lans_forwards_and_separates_instances() -> None:
    config = parse((EXAMPLES / "site-gateway.toml").read_text())
    host = plan(config)
    assert [(tun.name, tun.instance_id) for tun in host.tuns] == [("lisp0", 0), ("lisp7", 7)]
    assert host.forwarding
    assert Route(ip_network("198.51.100.0/25"), "lan0", None) in host.routes
    assert Route(ip_network("203.0.113.0/25"), "lan7", 107) in host.routes
    assert Route(ip_network("203.0.113.0/24"), "lisp7", 107) in host.routes
    # Both the tenant's LAN and its TUN look up the tenant's table, in both
    # families, each rule with its own explicit priority.
    assert {(rule.iif, rule.family) for rule in host.rules} == {
        ("lisp7", 4), ("lisp7", 6), ("lan7", 4), ("lan7", 6)
    }
    assert all(rule.table == 107 for rule in host.rules)
    assert len({(rule.priority, rule.family) for rule in host.rules}) == len(host.rules)
    assert all(isinstance(rule, Rule) for rule in host.rules)
    assert ip_address("198.18.1.1") in config.underlay.rlocs


def test_an_assigned_eid_of_a_tenant_routes_in_the_tenants_table() -> None:
    config = parse("""
[underlay]
rlocs = ["198.18.0.1"]
[xtr]
eid-space = ["192.0.2.0/24"]
[[xtr.instance]]
instance-id = 7
tun = "lisp7"
table = 107
eid-space = ["198.51.100.0/24"]
[[xtr.database-mapping]]
eid-prefix = "198.51.100.10/32"
instance-id = 7
assign = true
rlocs = [{ address = "198.18.0.1" }]
""")
    host = plan(config)
    assert Address("lisp7", "198.51.100.10/32") in host.addresses
    sourced = [rule for rule in host.rules if rule.source is not None]
    assert [(r.source, r.table, r.family) for r in sourced] == [
        (ip_network("198.51.100.10/32"), 107, 4)
    ]
    assert len({(rule.priority, rule.family) for rule in host.rules}) == len(host.rules)


def test_an_eid_space_prefix_that_is_all_local_is_not_routed_into_the_tun() -> None:
    """The kernel keeps one route per prefix and table: a TUN route beside a
    LAN's or a segment's own for the same prefix was "File exists" at start-up
    (and has nothing remote to carry)."""
    config = parse("""
[underlay]
rlocs = ["198.18.2.2"]
[xtr]
eid-space = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/40"]
proxy-etrs = ["198.18.3.2"]
[[xtr.instance]]
instance-id = 7
tun = "lisp7"
table = 107
eid-space = ["203.0.113.0/24", "198.51.100.0/24"]
interfaces = ["lan7"]
[[xtr.database-mapping]]
eid-prefix = "198.51.100.0/24"
interface = "lan0"
[[xtr.database-mapping]]
eid-prefix = "203.0.113.0/24"
instance-id = 7
interface = "lan7"
[[vxlan]]
device = "vni11"
vni = 11
local = "198.18.2.2"
address = ["192.0.2.1/24", "2001:db8:11::1/64"]
""")
    routes = plan(config).routes
    assert Route(ip_network("198.51.100.0/24"), "lan0", None) in routes
    assert Route(ip_network("203.0.113.0/24"), "lan7", 107) in routes
    into_tuns = {(str(r.prefix), r.device, r.table) for r in routes if r.device.startswith("lisp")}
    assert into_tuns == {
        ("2001:db8::/40", "lisp0", None),
        # The same prefix as instance 0's LAN, but in another table.
        ("198.51.100.0/24", "lisp7", 107),
        # What no route of the main table holds goes to the proxy-ETRs.
        ("0.0.0.0/0", "lisp0", 4341), ("::/0", "lisp0", 4341),
        ("0.0.0.0/0", "lisp7", 107), ("::/0", "lisp7", 107),
    }
