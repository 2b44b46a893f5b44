"""The one error family of the codecs.

`DecodeError` means the bytes came in wrong (the peer's fault); `EncodeError`
means we were asked to put something on the wire that cannot be there (our
fault). Both carry the byte offset at which the problem was found.
"""


class WireError(ValueError):
    """A codec could not turn bytes into a message or a message into bytes."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset


class DecodeError(WireError):
    """Received bytes are not a valid message: the sender's fault."""


class EncodeError(WireError):
    """A message cannot be encoded: the caller's fault."""


def check_bits(what: str, value: int, bits: int, offset: int) -> None:
    """Raise EncodeError unless value fits in an unsigned field of `bits` bits."""
    if not 0 <= value < (1 << bits):
        raise EncodeError(f"{what} {value} does not fit in {bits} bits", offset)
