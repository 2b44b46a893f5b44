"""Typed wrappers around the C forwarding tables (native/fib.c, native/fdb.c).

The Python map-cache, database and VXLAN FDB are authoritative; these are
the copies the C fast path reads. `Fib` is a longest-prefix-match table keyed
by (instance-id, prefix); `Fdb` maps (VNI, MAC) to a remote VTEP. Both are
bounded by the limit given at construction. `handle` is the raw C pointer
for the fast path (lispd_dp_new); the wrapper owns it and frees it with the
object, so keep the wrapper alive as long as anything uses the handle.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from lispd.dataplane.entries import (
    FdbEntry,
    FibAction,
    FibEntry,
    FibKey,
    FibLocator,
    IPAddress,
    IPNetwork,
    Learned,
)
from lispd.ffi import buffer_in as _in
from lispd.ffi import ffi as _ffi
from lispd.ffi import lib as _lib

__all__ = [
    "Fdb",
    "FdbEntry",
    "Fib",
    "FibAction",
    "FibEntry",
    "FibKey",
    "FibLocator",
    "InvalidEntryError",
    "Learned",
    "TableError",
    "TableFull",
]

MAX_LOCATORS: int = _lib.LISPD_MAX_LOCATORS
_U24 = 0xFFFFFF
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_FAMILY_V4 = 4
_FAMILY_V6 = 6
_DRAIN_CHUNK = 1024


class TableError(Exception):
    """A C table refused a change."""


class InvalidEntryError(TableError, ValueError):
    """The key or entry is not one the table can hold (the C -1)."""


class TableFull(TableError):  # noqa: N818 - reads as a state, like queue.Full
    """The table holds its limit of entries (the C -2)."""


def _family(address: IPAddress | IPNetwork) -> int:
    return _FAMILY_V4 if address.version == 4 else _FAMILY_V6


def _check(what: str, value: int, limit: int) -> None:
    if not 0 <= value <= limit:
        raise InvalidEntryError(f"{what} {value} out of range 0..{limit}")


def _raise_for(result: int, what: str) -> None:
    if result == -1:
        raise InvalidEntryError(f"invalid {what}")
    if result == -2:
        raise TableFull(f"table full: cannot add {what}")
    if result < 0:
        raise TableError(f"{what}: error {result}")


def _address(family: int, octets: Any) -> IPAddress:
    if family == _FAMILY_V4:
        return IPv4Address(bytes(_ffi.buffer(octets, 4)))
    return IPv6Address(bytes(_ffi.buffer(octets, 16)))


def key_in(key: FibKey, out: Any) -> None:
    _check("instance-id", key.instance_id, _U24)
    packed = key.prefix.network_address.packed
    out.instance_id = key.instance_id
    out.family = _family(key.prefix)
    out.prefix_len = key.prefix.prefixlen
    _ffi.memmove(out.prefix, packed, len(packed))


def _key_out(key: Any) -> FibKey:
    family = key.family
    network: IPNetwork
    if family == _FAMILY_V4:
        network = IPv4Network((bytes(_ffi.buffer(key.prefix, 4)), key.prefix_len))
    else:
        network = IPv6Network((bytes(_ffi.buffer(key.prefix, 16)), key.prefix_len))
    return FibKey(int(key.instance_id), network)


def _entry_in(entry: FibEntry, out: Any) -> None:
    if len(entry.locators) > MAX_LOCATORS:
        raise InvalidEntryError(f"{len(entry.locators)} locators, at most {MAX_LOCATORS}")
    _check("locator-status-bits", entry.lsbs, _U32)
    out.action = int(entry.action)
    out.reencap = int(entry.reencap)
    out.lsbs = entry.lsbs
    out.n_locators = len(entry.locators)
    for i, locator in enumerate(entry.locators):
        slot = out.locators[i]
        _check("weight", locator.weight, _U32)
        packed = locator.address.packed
        slot.family = _family(locator.address)
        _ffi.memmove(slot.address, packed, len(packed))
        slot.weight = locator.weight


def _entry_out(entry: Any) -> FibEntry:
    locators = tuple(
        FibLocator(_address(slot.family, slot.address), int(slot.weight))
        for slot in entry.locators[0 : entry.n_locators]
    )
    return FibEntry(FibAction(entry.action), locators, int(entry.lsbs), bool(entry.reencap))


class Fib:
    """A longest-prefix-match table for at most `limit` entries."""

    def __init__(self, limit: int) -> None:
        _check("limit", limit, _U32)
        self.limit = limit
        raw = _lib.lispd_fib_new(limit)
        if raw == _ffi.NULL:
            raise MemoryError("lispd_fib_new")
        self._fib: Any = _ffi.gc(raw, _lib.lispd_fib_free)
        self._matched: Any = _ffi.new("struct lispd_fib_key *")

    @property
    def handle(self) -> Any:
        """The struct lispd_fib* for the fast path; owned by this object."""
        return self._fib

    def __len__(self) -> int:
        size: int = _lib.lispd_fib_size(self._fib)
        return size

    def set(self, key: FibKey, entry: FibEntry) -> None:
        """Insert or replace. InvalidEntryError (a ValueError) or TableFull."""
        c_key: Any = _ffi.new("struct lispd_fib_key *")
        c_entry: Any = _ffi.new("struct lispd_fib_entry *")
        key_in(key, c_key)
        _entry_in(entry, c_entry)
        _raise_for(_lib.lispd_fib_set(self._fib, c_key, c_entry), f"FIB entry {key}")

    def delete(self, key: FibKey) -> bool:
        """Remove key; False when there was no such entry."""
        if not 0 <= key.instance_id <= _U24:
            return False
        c_key: Any = _ffi.new("struct lispd_fib_key *")
        key_in(key, c_key)
        return bool(_lib.lispd_fib_delete(self._fib, c_key) == 0)

    def clear(self) -> None:
        _lib.lispd_fib_clear(self._fib)

    def lookup(self, instance_id: int, address: IPAddress) -> tuple[FibKey, FibEntry] | None:
        """The longest prefix covering address in instance_id, with its entry.

        Counts as a hit for drain_used, like a lookup by the fast path."""
        if not 0 <= instance_id <= _U24:
            return None
        found = _lib.lispd_fib_lookup(
            self._fib, instance_id, _family(address), _in(address.packed), self._matched
        )
        if found == _ffi.NULL:
            return None
        return _key_out(self._matched), _entry_out(found)

    def find(self, instance_id: int, address: IPAddress) -> tuple[FibKey, FibEntry] | None:
        """As lookup, but not a hit (drain_used does not see it)."""
        if not 0 <= instance_id <= _U24:
            return None
        found = _lib.lispd_fib_find(
            self._fib, instance_id, _family(address), _in(address.packed), self._matched
        )
        if found == _ffi.NULL:
            return None
        return _key_out(self._matched), _entry_out(found)

    def drain_used(self) -> list[FibKey]:
        """The keys of entries hit since the last drain; forgets them."""
        keys: list[FibKey] = []
        out: Any = _ffi.new("struct lispd_fib_key[]", _DRAIN_CHUNK)
        while True:
            n: int = _lib.lispd_fib_drain_used(self._fib, out, _DRAIN_CHUNK)
            keys.extend(_key_out(out[i]) for i in range(n))
            if n < _DRAIN_CHUNK:
                return keys


def _mac(mac: bytes) -> bytes:
    if len(mac) != 6:
        raise InvalidEntryError(f"a MAC address is 6 octets, not {len(mac)}")
    return bytes(mac)


def _fdb_entry_out(entry: Any) -> FdbEntry:
    return FdbEntry(
        vni=int(entry.vni),
        mac=bytes(_ffi.buffer(entry.mac, 6)),
        vtep=_address(entry.family, entry.vtep),
        static=bool(entry.is_static),
        last_seen_ms=int(entry.last_seen_ms),
    )


class Fdb:
    """The VXLAN forwarding database for at most `limit` (VNI, MAC) entries."""

    def __init__(self, limit: int) -> None:
        _check("limit", limit, _U32)
        self.limit = limit
        raw = _lib.lispd_fdb_new(limit)
        if raw == _ffi.NULL:
            raise MemoryError("lispd_fdb_new")
        self._fdb: Any = _ffi.gc(raw, _lib.lispd_fdb_free)

    @property
    def handle(self) -> Any:
        """The struct lispd_fdb* for the fast path; owned by this object."""
        return self._fdb

    def __len__(self) -> int:
        size: int = _lib.lispd_fdb_size(self._fdb)
        return size

    def set(self, entry: FdbEntry) -> None:
        """Insert or replace (a static entry, or a learned one restored).
        InvalidEntryError (a ValueError: VNI, multicast MAC) or TableFull."""
        _check("VNI", entry.vni, _U24)
        _check("last seen", entry.last_seen_ms, _U64)
        c: Any = _ffi.new("struct lispd_fdb_entry *")
        c.vni = entry.vni
        _ffi.memmove(c.mac, _mac(entry.mac), 6)
        c.family = _family(entry.vtep)
        packed = entry.vtep.packed
        _ffi.memmove(c.vtep, packed, len(packed))
        c.is_static = int(entry.static)
        c.last_seen_ms = entry.last_seen_ms
        _raise_for(_lib.lispd_fdb_set(self._fdb, c), f"FDB entry {entry}")

    def learn(self, vni: int, mac: bytes, vtep: IPAddress, now_ms: int) -> Learned:
        """Learn that mac sits behind vtep, as the fast path does from a
        received frame. InvalidEntryError for a multicast MAC, TableFull."""
        _check("VNI", vni, _U24)
        _check("time", now_ms, _U64)
        result: int = _lib.lispd_fdb_learn(
            self._fdb, vni, _in(_mac(mac)), _family(vtep), _in(vtep.packed), now_ms
        )
        _raise_for(result, f"learned MAC {mac.hex(':')} in VNI {vni}")
        return Learned(result)

    def delete(self, vni: int, mac: bytes) -> bool:
        if not 0 <= vni <= _U24 or len(mac) != 6:
            return False
        return bool(_lib.lispd_fdb_delete(self._fdb, vni, _in(mac)) == 0)

    def lookup(self, vni: int, mac: bytes) -> FdbEntry | None:
        if not 0 <= vni <= _U24 or len(mac) != 6:
            return None
        found = _lib.lispd_fdb_lookup(self._fdb, vni, _in(mac))
        return None if found == _ffi.NULL else _fdb_entry_out(found)

    def age(self, now_ms: int, max_age_ms: int, vni: int | None = None) -> int:
        """Remove learned entries (of segment vni, or of every segment) not
        seen for more than max_age_ms."""
        _check("time", now_ms, _U64)
        _check("max age", max_age_ms, _U64)
        if vni is not None:
            _check("VNI", vni, _U24)
        which = _lib.LISPD_ANY_VNI if vni is None else vni
        removed: int = _lib.lispd_fdb_age(self._fdb, which, now_ms, max_age_ms)
        return removed

    def dump(self) -> list[FdbEntry]:
        """Every entry, in no particular order."""
        size = len(self)
        out: Any = _ffi.new("struct lispd_fdb_entry[]", max(size, 1))
        n: int = _lib.lispd_fdb_dump(self._fdb, out, size)
        return [_fdb_entry_out(out[i]) for i in range(n)]
