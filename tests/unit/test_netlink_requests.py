"""The requests lispd.netlink makes: those it hands pyroute2, held against
pyroute2's own message definitions (a keyword it has no attribute for is
left out of the message without a word, so a misspelt one would pass every
other test), and the sysctls it sets."""

from __future__ import annotations

import subprocess
from ipaddress import ip_network
from typing import Any

import pytest
from pyroute2.netlink.rtnl.fibmsg import fibmsg  # type: ignore[import-untyped]

from lispd.netlink import Netlink, RuleRecord, rule_request

RULE_FIELDS = {name for name, _ in fibmsg.fields}
RULE_ATTRIBUTES = {name for _, name, _ in fibmsg.nla_map}


def sent(spec: dict[str, object]) -> set[str]:
    """What pyroute2 puts in the message of each key: a header field or an NLA."""
    return {key if key in RULE_FIELDS else fibmsg.name2nla(key) for key in spec}


def test_every_rule_key_reaches_the_message() -> None:
    records = [
        RuleRecord("vni11", 254, 4, 1000, suppress_prefixlength=0),
        RuleRecord("vni11", 4341, 6, 1001),
        RuleRecord(None, 107, 4, 1002, ip_network("192.0.2.10/32")),
    ]
    for record in records:
        assert sent(rule_request(record)) <= RULE_FIELDS | RULE_ATTRIBUTES, record


def test_suppress_prefixlength_is_the_kernels_attribute() -> None:
    spec = rule_request(RuleRecord("lan0", 254, 4, 1000, suppress_prefixlength=0))
    assert "FRA_SUPPRESS_PREFIXLEN" in sent(spec)
    assert spec["suppress_prefixlen"] == 0
    assert "FRA_SUPPRESS_PREFIXLEN" not in sent(rule_request(RuleRecord("lan0", 4341, 4, 1001)))


def test_a_tun_sends_no_redirects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel sends a redirect where `all` or the device says so: a
    proxy xTR's TUN needs both at 0 (what it decapsulated for an EID goes back
    into the TUN, and a redirect from its RLOC reached the EID host)."""
    ran: list[list[str]] = []

    def run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        ran.append(args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    named = Netlink.__new__(Netlink)  # no rtnetlink socket: only sysctls here
    named.netns = "lab-pxtr"
    named.no_redirects("lisp0")
    (command,) = ran
    assert command[:4] == ["ip", "netns", "exec", "lab-pxtr"]
    assert set(command[-2:]) == {"net/ipv4/conf/all/send_redirects=0",
                                 "net/ipv4/conf/lisp0/send_redirects=0"}
