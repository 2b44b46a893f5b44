"""The configuration of the paper's router topology: gateway [[vxlan]]
segments (address, instance-id, dynamic-eid), [proxy], proxy-etr-table."""

from __future__ import annotations

from ipaddress import ip_interface, ip_network

import pytest

from lispd.config import ConfigError, parse
from lispd.config.model import DatabaseMapping

ROUTER = """\
[underlay]
rlocs = ["198.18.4.2"]

[xtr]
eid-space = ["192.0.2.0/24", "2001:db8::/40"]
map-resolvers = ["198.18.1.2"]
proxy-etrs = ["198.18.3.2"]
"""

SEGMENT = """
[[vxlan]]
device = "vni11"
vni = 11
local = "198.18.4.2"
address = ["192.0.2.1/26", "2001:db8:11::1/64"]
dynamic-eid = ["192.0.2.0/24", "2001:db8::/40"]
dynamic-eid-timeout = 30
"""

PXTR = """\
[underlay]
rlocs = ["198.18.3.2"]

[xtr]
eid-space = ["192.0.2.0/24"]
map-resolvers = ["198.18.1.2"]

[proxy]
served-itrs = ["198.18.0.0/15"]
"""


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as refused:
        parse(text, "test.toml")
    return {problem.path: problem.message for problem in refused.value.problems}


def test_a_gateway_segment_is_read_and_its_prefixes_are_local_eids() -> None:
    config = parse(ROUTER + SEGMENT)
    (segment,) = config.vxlan
    assert segment.address == (ip_interface("192.0.2.1/26"), ip_interface("2001:db8:11::1/64"))
    assert segment.prefixes == (ip_network("192.0.2.0/26"), ip_network("2001:db8:11::/64"))
    assert segment.dynamic_eid == (ip_network("192.0.2.0/24"), ip_network("2001:db8::/40"))
    assert segment.dynamic_eid_timeout == 30.0 and segment.instance_id == 0
    assert config.database() == (
        DatabaseMapping(eid_prefix=ip_network("192.0.2.0/26")),
        DatabaseMapping(eid_prefix=ip_network("2001:db8:11::/64")),
    )


def test_a_proxy_xtr_is_read() -> None:
    config = parse(PXTR)
    assert config.proxy is not None and config.proxy.pitr
    assert config.proxy.served_itrs == (ip_network("198.18.0.0/15"),)
    assert config.database() == ()


@pytest.mark.parametrize(("change", "path", "says"), [
    (('"192.0.2.1/26"', '"192.0.2.0/26"'), "vxlan[0].address[0]", "network"),
    (('"192.0.2.1/26"', '"192.0.2.1"'), "vxlan[0].address[0]", "length"),
    (('"192.0.2.1/26", ', '"192.0.2.1/26", "192.0.2.65/26", '), "vxlan[0].address[1]",
     "duplicate address family IPv4"),
    (('dynamic-eid = ["192.0.2.0/24", ', 'dynamic-eid = ["192.0.2.0/28", '),
     "vxlan[0].dynamic-eid[0]", "inside the segment's own prefix"),
    (('address = ["192.0.2.1/26", "2001:db8:11::1/64"]', 'address = ["192.0.2.1/26"]'),
     "vxlan[0].dynamic-eid[1]", "no IPv6 address"),
    (('dynamic-eid = ["192.0.2.0/24", "2001:db8::/40"]\n', ''),
     "vxlan[0].dynamic-eid-timeout", "no effect"),
    (('vni = 11\n', 'vni = 11\ninstance-id = 7\n'), "vxlan[0].instance-id",
     "no [[xtr.instance]]"),
])
def test_gateway_segment_mistakes_are_named(change: tuple[str, str], path: str,
                                            says: str) -> None:
    text = ROUTER + SEGMENT.replace(*change)
    assert text != ROUTER + SEGMENT
    found = problems(text)
    assert path in found, found
    assert says in found[path]


def test_a_gateway_segment_needs_the_lisp_role() -> None:
    text = '[underlay]\nrlocs = ["198.18.4.2"]\n' + SEGMENT
    assert "[xtr]" in problems(text)["vxlan[0].address"]


def test_a_segment_prefix_that_is_already_a_local_eid_prefix() -> None:
    text = ROUTER + ('\n[[xtr.database-mapping]]\neid-prefix = "192.0.2.0/26"\n'
                     'interface = "lan0"\n') + SEGMENT
    assert "already a local EID prefix" in problems(text)["vxlan[0].address[0]"]


def test_an_instance_id_without_an_address() -> None:
    text = ROUTER + '\n[[vxlan]]\ndevice = "vx0"\nvni = 5\nlocal = "198.18.4.2"\ninstance-id = 0\n'
    parse(text)  # 0 is the default: said or not, nothing to report
    text = text.replace("instance-id = 0", "instance-id = 3")
    assert "without an address" in problems(text)["vxlan[0].instance-id"]


@pytest.mark.parametrize(("text", "path", "says"), [
    ('[underlay]\nrlocs = ["198.18.3.2"]\n\n[proxy]\nserved-itrs = ["198.18.0.0/15"]\n',
     "proxy", "[xtr]"),
    (PXTR.replace('served-itrs = ["198.18.0.0/15"]', "pitr = false"), "proxy", "nothing to do"),
    (PXTR.replace('map-resolvers = ["198.18.1.2"]\n', ""), "proxy.pitr", "map-resolvers"),
    (PXTR.replace('"198.18.0.0/15"', ", ".join(f'"198.18.{i}.0/24"' for i in range(17))),
     "proxy.served-itrs", "at most 16"),
    (PXTR.replace("[proxy]", "[proxy]\nmirror = true"), "proxy.mirror", ""),
])
def test_proxy_mistakes_are_named(text: str, path: str, says: str) -> None:
    found = problems(text)
    assert path in found, found
    assert says in found[path]


@pytest.mark.parametrize(("table", "says"), [(254, "Linux's own"), (107, "already the table")])
def test_the_proxy_etr_table_must_be_free(table: int, says: str) -> None:
    text = ROUTER + (f"proxy-etr-table = {table}\n\n[[xtr.instance]]\ninstance-id = 7\n"
                     'tun = "lisp7"\ntable = 107\neid-space = ["198.51.100.0/24"]\n')
    assert says in problems(text)["xtr.proxy-etr-table"]
