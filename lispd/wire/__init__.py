"""Sans-IO codecs: bytes to frozen dataclasses and back, nothing else.

No sockets, no clock, no logging. Every decoder returns a value or raises
WireError (DecodeError for bad input, EncodeError for a message that cannot
be sent), on any input whatsoever.
"""

from lispd.wire.errors import DecodeError, EncodeError, WireError

__all__ = ["DecodeError", "EncodeError", "WireError"]
