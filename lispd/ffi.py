"""The one importer of the cffi extension lispd._native (native/*.c).

Everything else reaches the C core through the typed wrappers in
lispd.native (checksums, headers, flow hash, ICMP) and lispd.dataplane
(tables and the batched fast path), which take `ffi` and `lib` from here.
"""

from __future__ import annotations

from typing import Any

from lispd import _native  # type: ignore[attr-defined]

ffi: Any = _native.ffi
lib: Any = _native.lib


def buffer_in(data: bytes | bytearray | memoryview) -> Any:
    """A uint8_t* view of data for a C call, without copying."""
    return ffi.from_buffer("uint8_t[]", data)


def constants(prefix: str) -> dict[int, str]:
    """The C enum constants named prefix*, by value: names for counters."""
    return {
        getattr(lib, name): name[len(prefix) :].lower()
        for name in dir(lib)
        if name.startswith(prefix)
    }
