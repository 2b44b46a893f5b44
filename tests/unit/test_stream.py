"""The numbered stream's arithmetic: loss and outage."""

from __future__ import annotations

import json

from lispd.stream import Arrivals, outage


def arrivals(*seqs: int) -> Arrivals:
    return Arrivals.parse(json.dumps({"arrivals": [[s, s / 1000] for s in seqs]}))


def test_loss_counts_what_nobody_received() -> None:
    got = arrivals(0, 1, 2, 5, 6, 6)
    assert got.lost(8) == 3  # 3, 4 and 7; the duplicate 6 counts once
    assert got.sequence_numbers == {0, 1, 2, 5, 6}


def test_outage_over_two_receivers_and_to_the_end() -> None:
    old, new = arrivals(0, 1, 2), arrivals(6, 7)
    assert outage([old, new], 10, 1000) == 0.003  # 3, 4, 5 (8 and 9 are only two)
    assert outage([old], 10, 1000) == 0.007  # never recovered: 3 to 9
    assert outage([arrivals(*range(10))], 10, 1000) == 0.0
