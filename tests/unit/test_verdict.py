"""The Python names of the fast path's verdicts and drop reasons are the C's."""

from __future__ import annotations

from lispd.dataplane import fastpath, reference
from lispd.dataplane.verdict import VerdictKind
from lispd.ffi import ffi, lib


def test_verdict_kinds_are_the_c_values() -> None:
    for kind in VerdictKind:
        assert getattr(lib, f"LISPD_VERDICT_{kind.name}") == kind.value


def test_every_c_drop_reason_has_a_name_in_the_twin() -> None:
    assert set(fastpath.DROP_REASONS.values()) >= {str(d) for d in reference.Drop}
    assert len(fastpath.DROP_REASONS) == lib.LISPD_DROP_COUNT


def test_every_c_counter_has_its_name() -> None:
    fields = {name for name, _ in ffi.typeof("struct lispd_counters").fields} - {"drops"}
    assert set(fastpath.COUNTERS) == fields
    assert len(fastpath.COUNTERS) == len(fields)


def test_drop_reasons_keep_their_numbers() -> None:
    """Names outside this package (stats, tests/netns/sites.py) rely on them:
    new reasons go at the end."""
    assert fastpath.DROP_REASONS[lib.LISPD_DROP_MISS] == "miss"
    assert fastpath.DROP_REASONS[5] == "miss"
    assert fastpath.DROP_REASONS[16] == "not_overlay"
    assert fastpath.DROP_REASONS[17] == "ttl_expired"
