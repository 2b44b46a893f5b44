"""The Python names of the fast path's verdicts and drop reasons are the C's."""

from __future__ import annotations

from lispd.dataplane import fastpath, reference
from lispd.dataplane.verdict import VerdictKind
from lispd.ffi import lib


def test_verdict_kinds_are_the_c_values() -> None:
    for kind in VerdictKind:
        assert getattr(lib, f"LISPD_VERDICT_{kind.name}") == kind.value


def test_every_c_drop_reason_has_a_name_in_the_twin() -> None:
    assert set(fastpath.DROP_REASONS.values()) >= {str(d) for d in reference.Drop}
    assert len(fastpath.DROP_REASONS) == lib.LISPD_DROP_COUNT
