"""The Map-Server's tables: subscriptions (RFC 9437), pending Map-Notifies, registrations."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

import pytest

from lispd.control.events import Datagram
from lispd.control.notifier import NOTIFY_RETRANSMITS, Notifier
from lispd.control.registrations import Registration, RegistrationTable
from lispd.control.subscriptions import Subscription, SubscriptionTable
from lispd.mapcache import EidPrefix
from lispd.wire.records import LocatorRecord, MappingRecord

ITR = IPv4Address("198.18.9.9")


def _p(text: str) -> EidPrefix:
    return EidPrefix.parse(text)


def sub(prefix: str, xtr_id: int = 1, expires_at: float = 100.0) -> Subscription:
    return Subscription(
        _p(prefix), xtr_id, 0, ITR, 4342, "site", 2, nonce=10,
        subscribed_at=0.0, refreshed_at=0.0, expires_at=expires_at,
    )


# -- SubscriptionTable ---------------------------------------------------------------


def test_one_subscription_per_xtr_and_prefix() -> None:
    table = SubscriptionTable(limit=10)
    assert table.put(sub("192.0.2.10/32"))
    assert table.put(replace(sub("192.0.2.10/32"), nonce=11))  # a refresh replaces
    assert table.put(sub("192.0.2.10/32", xtr_id=2))  # another xTR is another entry
    assert len(table) == 2
    assert table.get((1, _p("192.0.2.10/32"))) == replace(sub("192.0.2.10/32"), nonce=11)
    assert table.get((3, _p("192.0.2.10/32"))) is None
    assert [s.xtr_id for s in table.of_xtr(1)] == [1]
    assert table.remove((1, _p("192.0.2.10/32"))) is not None
    assert table.remove((1, _p("192.0.2.10/32"))) is None
    assert len(table) == 1 and table.of_xtr(1) == []


def test_the_limit_refuses_new_entries_not_refreshes() -> None:
    table = SubscriptionTable(limit=1)
    assert table.put(sub("192.0.2.10/32"))
    assert not table.put(sub("192.0.2.11/32"))
    assert table.put(replace(sub("192.0.2.10/32"), nonce=99))
    assert len(table) == 1


def test_affected_finds_subscriptions_inside_and_around() -> None:
    table = SubscriptionTable()
    for prefix in ("192.0.2.10/32", "192.0.2.200/32", "192.0.2.0/24", "0.0.0.0/0", "10.0.0.1/32"):
        table.put(sub(prefix))
    table.put(sub("[5]192.0.2.10/32"))
    inside, around = table.affected(_p("192.0.2.0/25"))
    assert [str(s.prefix) for s in inside] == ["[0]192.0.2.10/32"]
    assert sorted(str(s.prefix) for s in around) == ["[0]0.0.0.0/0", "[0]192.0.2.0/24"]
    inside, around = table.affected(_p("192.0.2.0/24"))
    assert sorted(str(s.prefix) for s in inside) == [
        "[0]192.0.2.0/24", "[0]192.0.2.10/32", "[0]192.0.2.200/32",
    ]
    assert [str(s.prefix) for s in around] == ["[0]0.0.0.0/0"]


def test_expiry_follows_refreshes() -> None:
    table = SubscriptionTable()
    table.put(sub("192.0.2.10/32", expires_at=100.0))
    table.put(sub("192.0.2.11/32", expires_at=150.0))
    table.put(sub("192.0.2.10/32", expires_at=200.0))  # refreshed
    assert table.next_expiry() == 150.0
    assert [str(s.prefix) for s in table.expire(150.0)] == ["[0]192.0.2.11/32"]
    assert table.next_expiry() == 200.0
    table.remove((1, _p("192.0.2.10/32")))
    assert table.next_expiry() is None
    assert table.expire(1000.0) == []


# -- Notifier ------------------------------------------------------------------------


def datagram(n: int) -> Datagram:
    return Datagram(ITR, 4342, bytes([n]))


def test_retransmitted_every_second_then_given_up() -> None:
    counts: list[str] = []
    notifier = Notifier(count=counts.append)
    notifier.track(7, 7, "site", datagram(1), now=0.0)
    sent = []
    for when in (1.0, 2.0, 3.0):
        assert notifier.next_due() == when
        again, given_up = notifier.due(when)
        sent += again
        assert given_up == []
    assert sent == [datagram(1)] * NOTIFY_RETRANSMITS
    again, given_up = notifier.due(4.0)
    assert again == [] and [p.key for p in given_up] == [7]
    assert given_up[0].sends == 1 + NOTIFY_RETRANSMITS
    assert len(notifier) == 0 and notifier.next_due() is None
    assert counts == []


def test_done_stops_and_newer_supersedes() -> None:
    counts: list[str] = []
    notifier = Notifier(count=counts.append)
    key = (1, _p("192.0.2.10/32"))
    notifier.track(key, 10, "site", datagram(1), now=0.0)
    notifier.track(key, 11, "site", datagram(2), now=0.5)
    assert counts == ["map_notify_superseded"]
    assert notifier.with_nonce(10) == []
    (pending,) = notifier.with_nonce(11)
    assert pending.datagram == datagram(2)
    assert notifier.next_due() == 1.5
    assert notifier.due(1.5) == ([datagram(2)], [])
    assert notifier.done(key) is not None
    assert notifier.next_due() is None
    assert notifier.due(10.0) == ([], [])


def test_same_nonce_two_keys() -> None:
    notifier = Notifier()
    notifier.track(5, 5, "a", datagram(1), now=0.0)
    notifier.track((9, _p("10.0.0.0/8")), 5, "b", datagram(2), now=0.0)
    assert sorted(p.site for p in notifier.with_nonce(5)) == ["a", "b"]
    notifier.done(5)
    assert [p.site for p in notifier.with_nonce(5)] == ["b"]


def test_full_notifier_sends_once_untracked() -> None:
    counts: list[str] = []
    notifier = Notifier(limit=1, count=counts.append)
    notifier.track(1, 1, "site", datagram(1), now=0.0)
    notifier.track(2, 2, "site", datagram(2), now=0.0)
    assert counts == ["map_notify_untracked"]
    assert len(notifier) == 1 and notifier.with_nonce(2) == []


# -- RegistrationTable ------------------------------------------------------------------


def registration(
    prefix: str, expires_at: float, xtr_id: int | None = None, site: str = "s"
) -> Registration:
    rec = MappingRecord(_p(prefix).address, _p(prefix).length, (LocatorRecord(ITR),))
    return Registration(
        _p(prefix), site, rec, ITR, 4342, 2, proxy_reply=False, want_map_notify=False,
        registered_at=0.0, refreshed_at=0.0, expires_at=expires_at, xtr_id=xtr_id,
        site_id=None if xtr_id is None else 0,
    )


def test_registration_expiry_follows_refreshes_and_removals() -> None:
    table = RegistrationTable()
    table.install(registration("192.0.2.0/24", 180.0))
    table.install(registration("192.0.2.0/25", 100.0))
    table.install(registration("192.0.2.0/24", 280.0))  # refreshed
    assert table.next_expiry() == 100.0
    table.remove(_p("192.0.2.0/25"))
    assert table.next_expiry() == 280.0
    assert table.expire(279.0) == []
    assert [str(r.prefix) for r in table.expire(280.0)] == ["[0]192.0.2.0/24"]
    assert len(table) == 0 and table.next_expiry() is None


def test_the_site_of_an_xtr_id_is_its_latest_registration() -> None:
    table = RegistrationTable()
    table.install(registration("192.0.2.0/24", 180.0, xtr_id=7, site="a"))
    table.install(registration("192.0.2.0/25", 180.0, xtr_id=7, site="b"))
    assert table.site_of_xtr(7) == ("b", 2)
    table.remove(_p("192.0.2.0/25"))
    assert table.site_of_xtr(7) == ("b", 2)  # still registered by the /24
    table.install(registration("192.0.2.0/24", 180.0, xtr_id=None))  # the /24 lost it
    assert table.site_of_xtr(7) is None
    assert table.site_of_xtr(8) is None


@pytest.mark.parametrize("text", ["192.0.2.0/24", "2001:db8::/32", "02:00:00:00:00:00/8"])
def test_index_get_set_pop(text: str) -> None:
    table = RegistrationTable()
    assert table.get(_p(text)) is None
    table.install(registration(text, 1.0))
    assert table.get(_p(text)) is not None
    assert table.index.longest(0, _p(text).address) is not None
    assert table.remove(_p(text)) is not None
    assert table.index.longest(0, _p(text).address) is None
    assert table.remove(_p(text)) is None


def test_churn_leaves_the_expiry_heaps_bounded() -> None:
    """Subscribe/withdraw, register/deregister and notify/ack churn must not
    grow the lazy-deletion heaps without bound (a live entry stays due)."""
    subscriptions = SubscriptionTable()
    subscriptions.put(sub("192.0.2.1/32", xtr_id=1, expires_at=50.0))
    registrations = RegistrationTable()
    registrations.install(registration("192.0.2.0/26", 50.0))
    notifier = Notifier(count=lambda _: None)
    notifier.track(1, 1, "site", datagram(1), now=0.0)
    for n in range(2, 5000):
        subscriptions.put(sub("198.51.100.1/32", xtr_id=n))
        subscriptions.remove((n, _p("198.51.100.1/32")))
        registrations.install(registration("198.51.100.0/24", 100.0))
        registrations.remove(_p("198.51.100.0/24"))
        notifier.track(n, n, "site", datagram(n % 256), now=0.0)
        notifier.done(n)
    assert len(subscriptions._heap) < 200
    assert len(registrations._heap) < 200
    assert len(notifier._heap) < 200
    assert subscriptions.next_expiry() == 50.0 and registrations.next_expiry() == 50.0
    assert notifier.next_due() == 1.0
