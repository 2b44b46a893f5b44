"""A bounds-checked cursor over received bytes.

Every read either returns exactly what was asked for or raises DecodeError
with the offset, so decoders need no length arithmetic of their own.
"""

from __future__ import annotations

import struct

from lispd.wire.errors import DecodeError

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class Reader:
    __slots__ = ("_data", "_end", "offset")

    def __init__(self, data: bytes, offset: int = 0, end: int | None = None) -> None:
        self._data = data
        self.offset = offset
        self._end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self._end - self.offset

    def fail(self, reason: str) -> DecodeError:
        return DecodeError(reason, self.offset)

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.offset + n > self._end:
            raise self.fail(f"truncated {what}: need {n} bytes, have {self.remaining}")
        chunk = self._data[self.offset : self.offset + n]
        self.offset += n
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = _U16.unpack(self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = _U32.unpack(self.take(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = _U64.unpack(self.take(8, what))[0]
        return value

    def sub(self, n: int, what: str) -> Reader:
        """A reader over the next n bytes; this reader moves past them."""
        start = self.offset
        self.take(n, what)
        return Reader(self._data, start, start + n)

    def expect_end(self, what: str) -> None:
        if self.remaining:
            raise self.fail(f"{self.remaining} unexpected bytes after {what}")
