"""The catalogue of metrics: for every flat counter and gauge name the code
can produce (`Daemon.counters()`, `Daemon.gauges()`), the Prometheus family
and label values it is exported under (lispd.metrics serves them).

The machines' counter dicts grow lazily, and a series that appears out of
nowhere breaks `rate()` and alerts: every catalogued series is exported from
the first scrape, at zero until counted. A unit test holds the catalogue
against the code (tests/unit/test_metrics.py). A name missing from it goes
to `lispd_uncatalogued_total{counter="<name>"}` (or the gauge twin), which is
valid for any name and cannot collide with a catalogued family.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CATALOGUE", "DROP_REASONS", "UNCATALOGUED", "Family", "series_of"]


@dataclass(frozen=True)
class Family:
    """One metric family and the flat names exported in it.

    `series` maps a flat name to its label values. `prefixes` is for names
    made at run time (an errno name, say): a flat name starting with one of
    them gets the given label values followed by the rest of the name.
    """

    name: str  # as exposed: a counter's ends in _total
    kind: Literal["counter", "gauge"]
    help: str
    labels: tuple[str, ...] = ()
    series: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    prefixes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _counter(
    name: str,
    doc: str,
    labels: tuple[str, ...] = (),
    series: Mapping[str, tuple[str, ...]] | None = None,
    *,
    key: str | None = None,
    prefixes: Mapping[str, tuple[str, ...]] | None = None,
) -> Family:
    """A counter family; `key` alone is the flat name of an unlabelled one."""
    return Family(name, "counter", doc, labels,
                  {key: ()} if key is not None else dict(series or {}), dict(prefixes or {}))


def _gauge(
    name: str,
    doc: str,
    labels: tuple[str, ...] = (),
    series: Mapping[str, tuple[str, ...]] | None = None,
    *,
    key: str | None = None,
) -> Family:
    return Family(name, "gauge", doc, labels,
                  {key: ()} if key is not None else dict(series or {}))


def _each(prefix: str, values: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """Flat names `prefix + key`, each with the one label value `values[key]`."""
    return {prefix + key: (value,) for key, value in values.items()}


# The fast path's LISPD_DROP_* reasons (native/lispd_native.h), written out
# so that a renamed reason is a visible change here, not a silent new series.
DROP_REASONS = (
    "truncated", "bad_inner", "bad_flags", "unknown_instance", "not_local_eid", "miss",
    "negative", "native_forward", "too_big", "no_rloc", "send_error", "write_error",
    "unknown_vni", "bad_frame", "no_destination", "ecn", "not_overlay", "ttl_expired",
    "bad_offload",
)
# Fast-path counter stem -> (path, direction); tx is into the underlay, rx from it.
_PATHS = {
    "itr": ("itr", "tx"),
    "etr": ("etr", "rx"),
    "etr_reencap": ("etr_reencap", "tx"),
    "vxlan_tx": ("vxlan", "tx"),
    "vxlan_rx": ("vxlan", "rx"),
}
# The Route values of lispd.control.node, for the node's unrouted_<route>.
_ROUTES = ("map-server", "registrar", "resolver", "prober", "map-notify", "none")
_MACHINES = ("map_server", "registrar", "resolver", "prober")

_FASTPATH = (
    _counter(
        "lispd_packets_total",
        "Packets the fast path moved, by path and direction (tx: into the underlay, rx: out"
        " of it). itr: encapsulated from a TUN; etr: decapsulated onto a TUN; etr_reencap:"
        " re-encapsulated towards the new locators of an EID that moved away; vxlan: bridged"
        " frames (flood copies included).",
        ("path", "direction"), {f"{stem}_packets": pd for stem, pd in _PATHS.items()},
    ),
    _counter(
        "lispd_bytes_total",
        "Bytes of lispd_packets_total: outer (encapsulated) bytes for tx, inner bytes for rx.",
        ("path", "direction"), {f"{stem}_bytes": pd for stem, pd in _PATHS.items()},
    ),
    _counter("lispd_dropped_packets_total",
             "Packets the fast path dropped, by reason (LISPD_DROP_* in native/lispd_native.h).",
             ("reason",), {f"drop_{reason}": (reason,) for reason in DROP_REASONS}),
    _counter("lispd_vxlan_flood_copies_total",
             "Head-end replicas of VXLAN frames sent to the flood peers of a segment.",
             key="flood_copies"),
    _counter("lispd_map_cache_misses_total",
             "Packets the fast path found no map-cache entry for, handed to the resolver.",
             key="misses"),
    _counter("lispd_icmp_too_big_total",
             "ICMP Packet Too Big / Fragmentation Needed answers written back to a TUN.",
             key="icmp_too_big"),
    _counter("lispd_icmp_too_big_bytes_total", "Bytes of lispd_icmp_too_big_total.",
             key="icmp_too_big_bytes"),
    _counter("lispd_fdb_learned_total",
             "MAC addresses learned (or moved) in the VXLAN forwarding database.",
             key="fdb_learned"),
    _counter("lispd_fdb_learn_full_total",
             "MAC addresses not learned: the VXLAN forwarding database was full.",
             key="fdb_learn_full"),
    _counter("lispd_fastpath_batches_total", "Fast-path wake-ups that moved a packet.",
             key="batches"),
    _counter("lispd_offload_super_reads_total",
             "GSO super-packets (TCP/UDP of up to 64 KiB) read from a TUN/TAP opened with"
             " IFF_VNET_HDR, cut into segments by the fast path.",
             key="super_reads"),
    _counter("lispd_offload_gso_trains_total",
             "UDP_SEGMENT sends: trains of encapsulated segments handed to the kernel in one"
             " sendmsg.", key="gso_trains"),
    _counter("lispd_offload_gso_segments_total", "Datagrams in lispd_offload_gso_trains_total.",
             key="gso_segments"),
    _counter("lispd_offload_gso_fallbacks_total",
             "Trains the kernel refused, sent again one datagram at a time.",
             key="gso_fallbacks"),
    _counter("lispd_offload_gro_trains_total",
             "UDP_GRO receives that carried more than one datagram.", key="gro_trains"),
    _counter("lispd_offload_gro_segments_total", "Datagrams in lispd_offload_gro_trains_total.",
             key="gro_segments"),
    _counter("lispd_offload_super_writes_total",
             "Coalesced TCP super-packets written to a TUN/TAP with a GSO header.",
             key="super_writes"),
    _counter("lispd_offload_super_segments_total",
             "Decapsulated segments carried by lispd_offload_super_writes_total.",
             key="super_segments"),
)

_MAP_CACHE = (
    _counter("lispd_map_cache_insertions_total",
             "Map-cache entries installed for a prefix the cache did not hold.",
             key="map_cache_insertions"),
    _counter("lispd_map_cache_replacements_total",
             "Map-cache entries that replaced the entry of the same prefix (refreshes).",
             key="map_cache_replacements"),
    _counter(
        "lispd_map_cache_removals_total",
        "Map-cache entries removed, by reason: evicted (least recently used, to make room),"
        " expired (TTL), withdrawn (record TTL 0), flushed (lispctl map-cache flush).",
        ("reason",),
        _each("map_cache_", {"evictions": "evicted", "expirations": "expired",
                             "withdrawals": "withdrawn", "flushes": "flushed"}),
    ),
    _counter("lispd_map_cache_full_total",
             "Map-cache insertions refused: the cache was full of static entries.",
             key="map_cache_refused_full"),
)

_CONTROL = (
    _counter(
        "lispd_control_malformed_total",
        "Control messages dropped as malformed, by the machine that got them and kind:"
        " message (did not decode, or lacks a required part), map_reply and map_notify"
        " (no usable record).",
        ("machine", "kind"),
        {
            **{f"{m}_malformed": (m, "message") for m in _MACHINES},
            "resolver_reply_malformed": ("resolver", "map_reply"),
            "resolver_notify_malformed": ("resolver", "map_notify"),
        },
    ),
    _counter(
        "lispd_control_unexpected_total",
        "Well-formed control messages of a type the machine that got them does not take.",
        ("machine",),
        {"map_server_unexpected": ("map_server",), "registrar_unexpected_type": ("registrar",),
         "resolver_unexpected": ("resolver",), "prober_unexpected": ("prober",)},
    ),
    _counter("lispd_control_encode_errors_total",
             "Control messages that could not be encoded, so were not sent (a bug: report it).",
             ("machine",), {f"{m}_encode_error": (m,) for m in _MACHINES}),
    _counter(
        "lispd_control_unrouted_total",
        "Control datagrams dropped because the machine they are for does not run here,"
        " by that machine.",
        ("route",), _each("control_unrouted_", {r: r for r in _ROUTES}),
        prefixes={"control_unrouted_": ()},
    ),
    _counter("lispd_control_datagrams_total",
             "Datagrams sent and received on the LISP control port.", ("direction",),
             {"control_socket_sent": ("tx",), "control_socket_received": ("rx",)}),
    _counter(
        "lispd_control_socket_errors_total",
        "Control-port socket errors, by operation and errno name (no_socket: no socket of"
        " the destination's address family).",
        ("operation", "error"), {"control_socket_send_no_socket": ("send", "no_socket")},
        prefixes={"control_socket_send_error_": ("send",),
                  "control_socket_receive_error_": ("receive",)},
    ),
)

_MAP_SERVER = (
    _counter(
        "lispd_map_server_map_registers_total",
        "Map-Registers received, by result: accepted, or why refused (malformed ones count"
        " in lispd_control_malformed_total).",
        ("result",),
        _each("map_server_", {"map_register": "accepted", "bad_auth": "bad_auth",
                              "unknown_key_id": "unknown_key_id",
                              "outside_site": "outside_site",
                              "more_specific_refused": "more_specific_refused"}),
    ),
    _counter(
        "lispd_map_server_registration_events_total",
        "Registered EID records, by event: registered (new), refreshed, deregistered"
        " (record TTL 0), expired (not refreshed in time), withdrawn (no configured site"
        " admits it any more).",
        ("event",),
        {
            **_each("map_server_", {e: e for e in ("registered", "refreshed", "deregistered",
                                                   "expired")}),
            "map_server_withdrawn_by_configuration": ("withdrawn",),
        },
    ),
    _counter("lispd_map_server_eid_moves_total",
             "Refreshes that moved an EID prefix to another xTR (the old one is told).",
             key="map_server_moved"),
    _counter("lispd_map_server_more_specifics_told_total",
             "Registrants of covering prefixes told of a more specific one registered at"
             " other RLOCs (a host that left their prefix).",
             key="map_server_more_specific_told"),
    _counter("lispd_map_server_more_specifics_gone_told_total",
             "Registrants of covering prefixes told that a more specific one they had been"
             " told of is registered no more.",
             key="map_server_more_specific_gone_told"),
    _counter("lispd_map_server_deregistrations_ignored_total",
             "Deregistrations ignored: not from the registrant and naming other locators.",
             key="map_server_deregister_ignored"),
    _counter(
        "lispd_map_server_map_notifies_total",
        "Map-Notifies sent by the map-server, by event: sent, retransmitted, acked,"
        " unacknowledged (given up), superseded (a newer one replaced it), untracked"
        " (sent once: too many awaited their Ack).",
        ("event",),
        _each("map_server_map_notify_", {e: e for e in (
            "sent", "retransmitted", "acked", "unacknowledged", "superseded", "untracked")}),
    ),
    _counter("lispd_map_server_map_notify_acks_refused_total",
             "Map-Notify-Acks refused, by reason.", ("reason",),
             _each("map_server_map_notify_ack_", {"unknown": "unknown_nonce",
                                                  "bad_auth": "bad_auth"})),
    _counter(
        "lispd_map_server_map_requests_total",
        "Map-Requests answered as map-resolver, by answer: proxy_reply (for the ETR),"
        " negative_reply (nothing registered covers the EID), forwarded (to the ETR).",
        ("answer",),
        _each("map_server_", {"proxy_reply": "proxy_reply", "negative_reply": "negative_reply",
                              "map_request_forwarded": "forwarded"}),
    ),
    _counter(
        "lispd_map_server_subscription_events_total",
        "Subscriptions (RFC 9437), by event: subscribed, refreshed, unsubscribed, expired,"
        " unconfirmed (the first Map-Notify was never acknowledged), site_removed (reload).",
        ("event",),
        _each("map_server_", {"subscribed": "subscribed", "subscription_refreshed": "refreshed",
                              "unsubscribed": "unsubscribed",
                              "subscription_expired": "expired",
                              "subscription_unconfirmed": "unconfirmed",
                              "subscription_site_removed": "site_removed"}),
    ),
    _counter(
        "lispd_map_server_subscriptions_refused_total",
        "Subscription requests refused, by reason.", ("reason",),
        _each("map_server_subscribe_", {"no_xtr_id": "no_xtr_id", "unknown_xtr": "unknown_xtr",
                                        "no_itr_rloc": "no_itr_rloc", "refused_full": "full"}),
    ),
    _counter("lispd_map_server_publications_total",
             "Map-Notifies publishing a mapping change to a subscriber (RFC 9437).",
             key="map_server_subscription_notify"),
)

_REGISTRAR = (
    _counter("lispd_registrar_map_registers_sent_total",
             "Map-Registers sent (refreshes, retries and deregistrations included).",
             key="registrar_registers_sent"),
    _counter("lispd_registrar_register_retries_total",
             "Map-Registers sent again for want of a Map-Notify.",
             key="registrar_register_retries"),
    _counter("lispd_registrar_deregisters_sent_total", "Deregistrations (record TTL 0) sent.",
             key="registrar_deregisters_sent"),
    _counter(
        "lispd_registrar_map_notifies_total",
        "Map-Notifies received by the registrar, by result: acknowledged (a registration),"
        " displaced (another xTR took one of our EIDs), left (another xTR registered a host"
        " inside one of our prefixes), returned (and no longer does), displaced_repeat,"
        " unknown_nonce (about nothing of"
        " ours), unknown_source (no configured map-server), bad_auth.",
        ("result",),
        _each("registrar_", {r: r for r in ("acknowledged", "displaced", "left", "returned",
                                            "displaced_repeat", "unknown_nonce",
                                            "unknown_source", "bad_auth")}),
    ),
    _counter("lispd_registrar_map_notify_acks_sent_total", "Map-Notify-Acks sent.",
             key="registrar_notify_acks_sent"),
    _counter(
        "lispd_registrar_yields_ended_total",
        "EID prefixes yielded to another xTR that became ours again, by reason:"
        " mapping_changed (configuration or locators), reclaimed.",
        ("reason",),
        _each("registrar_", {"yield_ended": "mapping_changed", "reclaimed": "reclaimed"}),
    ),
    _counter("lispd_registrar_not_running_total",
             "Datagrams that reached the registrar while it was stopped.",
             key="registrar_not_running"),
)

_RESOLVER = (
    _counter("lispd_resolver_map_requests_sent_total", "Map-Requests sent (retries included).",
             key="resolver_map_requests_sent"),
    _counter("lispd_resolver_map_request_retries_total", "Map-Requests sent again.",
             key="resolver_retries"),
    _counter(
        "lispd_resolver_map_replies_total",
        "Map-Replies received by the resolver, by result: accepted (answered a request),"
        " unknown_nonce (late or unsolicited), prefix_mismatch (not what was asked),"
        " probe_ignored (an RLOC-probe reply: the prober's).",
        ("result",),
        _each("resolver_", {"replies_accepted": "accepted", "unknown_nonce": "unknown_nonce",
                            "reply_prefix_mismatch": "prefix_mismatch",
                            "probe_reply_ignored": "probe_ignored"}),
    ),
    _counter("lispd_resolver_resolutions_failed_total",
             "Resolutions given up: unanswered after the last retry, or nothing to send with.",
             key="resolver_resolution_failed"),
    _counter(
        "lispd_resolver_requests_refused_total",
        "Resolutions not started or abandoned, by reason: no_map_resolver, no_itr_rloc"
        " (no RLOC of ours to answer to), pending_full (too many in progress).",
        ("reason",), _each("resolver_", {r: r for r in ("no_map_resolver", "no_itr_rloc",
                                                         "pending_full")}),
    ),
    _counter(
        "lispd_resolver_rate_limited_total",
        "Map-Requests held back by a rate limit: eid (per EID) or global.", ("scope",),
        _each("resolver_", {"rate_limited": "eid", "rate_limited_global": "global"}),
    ),
    _counter("lispd_resolver_refreshes_total",
             "Resolutions started to refresh an entry in use before it expires.",
             key="resolver_refreshes_started"),
    _counter(
        "lispd_resolver_held_packets_total",
        "Missed packets held while their EID is resolved, by event: queued, released,"
        " released_at_once (the mapping had just come), dropped_no_request (none could be"
        " started), dropped_queue_full, dropped_unresolved (the resolution failed).",
        ("event",),
        _each("resolver_", {"packets_queued": "queued", "packets_released": "released",
                            "released_at_once": "released_at_once",
                            "packets_dropped": "dropped_no_request",
                            "queue_overflow": "dropped_queue_full",
                            "queued_dropped": "dropped_unresolved"}),
    ),
    _counter(
        "lispd_resolver_records_total",
        "Mapping records received in Map-Replies and publications, by outcome: installed,"
        " withdrawn (record TTL 0), static_kept (a static mapping outranks it), unusable"
        " (no IP locator), mapcache_full.",
        ("outcome",),
        _each("resolver_", {"entries_installed": "installed", "entries_withdrawn": "withdrawn",
                            "static_kept": "static_kept", "unusable_record": "unusable",
                            "mapcache_full": "mapcache_full"}),
    ),
    _counter("lispd_resolver_entries_expired_total",
             "Map-cache entries expired by the resolver's timer.",
             key="resolver_entries_expired"),
    _counter(
        "lispd_resolver_map_notifies_total",
        "Publications (Map-Notifies, RFC 9437) received by the resolver, by result.",
        ("result",),
        _each("resolver_notify_", {r: r for r in ("accepted", "unknown_source", "bad_auth",
                                                   "wrong_xtr_id")}),
    ),
    _counter("lispd_resolver_map_notify_acks_sent_total", "Map-Notify-Acks sent.",
             key="resolver_notify_acks_sent"),
    _counter("lispd_resolver_smrs_received_total", "Solicit-Map-Requests received.",
             key="resolver_smr_received"),
    _counter(
        "lispd_resolver_smr_records_total",
        "EID records of received SMRs, by result: invoked (a Map-Request follows), ignored"
        " (not cached, static, or already asked).",
        ("result",), _each("resolver_smr_", {"invoked": "invoked", "ignored": "ignored"}),
    ),
)

_PROBER = (
    _counter("lispd_prober_probes_sent_total", "RLOC-probe Map-Requests sent.",
             key="prober_probes_sent"),
    _counter(
        "lispd_prober_replies_total",
        "RLOC-probe replies received, by result: accepted, unknown_nonce, wrong_source"
        " (the nonce of a probe, from another address).",
        ("result",),
        _each("prober_", {"probe_replies": "accepted", "unknown_nonce": "unknown_nonce",
                          "wrong_source": "wrong_source"}),
    ),
    _counter("lispd_prober_probe_timeouts_total", "RLOC probes that went unanswered.",
             key="prober_probe_timeouts"),
    _counter("lispd_prober_locator_changes_total",
             "Locators the prober marked up or down.", ("state",),
             _each("prober_", {"locator_up": "up", "locator_down": "down"})),
    _counter("lispd_prober_no_itr_rloc_total",
             "RLOC probes not sent: no RLOC of ours to answer to.", key="prober_no_itr_rloc"),
    _counter("lispd_prober_limit_reached_total",
             "Locators left unprobed: the bound on probed locators was reached.",
             key="prober_probe_limit"),
)

_SMR = (
    _counter("lispd_smr_sent_total", "Solicit-Map-Requests sent to ITRs.", key="smr_smr_sent"),
    _counter("lispd_smr_not_sent_total",
             "Solicit-Map-Requests not sent, by reason: not_ip (a MAC EID), no_rloc.",
             ("reason",), _each("smr_smr_", {"not_ip": "not_ip", "no_rloc": "no_rloc"})),
)

_GATEWAY = (
    _counter("lispd_gateway_frames_total",
             "ARP and Neighbor Discovery frames the gateway segments' dynamic-EID machines "
             "read, by what became of them: read, malformed (dropped).", ("result",),
             _each("gateway_", {"frames": "read", "malformed": "malformed"})),
    _counter("lispd_gateway_dynamic_eid_events_total",
             "Dynamic EIDs of the gateway segments: arrived, left_silent (probed in vain), "
             "left_moved (registered by another xTR), full (not tracked: the limit), "
             "mac_flaps (a new MAC too soon after the last: kept the old).",
             ("event",), _each("gateway_", {e: e for e in ("arrived", "left_silent",
                                                          "left_moved", "full",
                                                          "mac_flaps")})),
    _counter("lispd_gateway_answers_total",
             "ARP replies and Neighbor Advertisements sent for addresses off a segment or away.",
             key="gateway_answered"),
    _counter("lispd_gateway_probes_total",
             "Unicast ARP requests and Neighbor Solicitations to silent dynamic EIDs.",
             key="gateway_probes"),
)

_DAEMON = (
    _counter("lispd_systemd_notifications_total",
             "Notifications to systemd (READY, STATUS, WATCHDOG...), by result.", ("result",),
             _each("systemd_notify_", {"sent": "sent", "send_failed": "failed"})),
)

_GAUGES = (
    _gauge("lispd_map_cache_entries", "Entries in the map-cache (static ones included).",
           key="map_cache_entries"),
    _gauge("lispd_map_cache_limit", "The most entries the map-cache holds.",
           key="map_cache_limit"),
    _gauge("lispd_fdb_entries", "MAC addresses in the VXLAN forwarding database.",
           key="fdb_entries"),
    _gauge("lispd_map_server_registrations", "EID prefixes registered with this map-server.",
           key="map_server_registrations"),
    _gauge("lispd_map_server_subscriptions", "Subscriptions held by this map-server.",
           key="map_server_subscriptions"),
    _gauge("lispd_map_server_pending_map_notifies", "Map-Notifies awaiting their Ack.",
           key="map_server_pending_notifies"),
    _gauge("lispd_registrar_registrations",
           "Registrations of this xTR (per map-server and EID prefix), by state.", ("state",),
           _each("registrar_registrations_", {s: s for s in ("acknowledged", "pending",
                                                              "yielded")})),
    _gauge("lispd_resolver_pending_map_requests", "Resolutions in progress.",
           key="resolver_pending_requests"),
    _gauge("lispd_resolver_queued_packets", "Missed packets held until their EID resolves.",
           key="resolver_queued_packets"),
    _gauge("lispd_prober_locators", "Locators the prober watches, by state.", ("state",),
           _each("prober_locators_", {"up": "up", "down": "down"})),
    _gauge("lispd_gateway_dynamic_eids", "Hosts on the gateway segments that are dynamic EIDs.",
           key="gateway_dynamic_eids"),
)

CATALOGUE: tuple[Family, ...] = (
    *_FASTPATH, *_MAP_CACHE, *_CONTROL, *_MAP_SERVER, *_REGISTRAR, *_RESOLVER, *_PROBER, *_SMR,
    *_GATEWAY, *_DAEMON, *_GAUGES,
)

UNCATALOGUED = {
    "counter": _counter("lispd_uncatalogued_total",
                        "A counter lispd's metrics catalogue misses (a bug: report it).",
                        ("counter",)),
    "gauge": _gauge("lispd_uncatalogued_gauge",
                    "A gauge lispd's metrics catalogue misses (a bug: report it).", ("gauge",)),
}

_EXACT: dict[tuple[str, str], tuple[Family, tuple[str, ...]]] = {
    (family.kind, flat): (family, values)
    for family in CATALOGUE
    for flat, values in family.series.items()
}
# Longest first, so that a more specific prefix wins.
_PREFIXES = sorted(
    ((family.kind, prefix, family, values)
     for family in CATALOGUE for prefix, values in family.prefixes.items()),
    key=lambda item: -len(item[1]),
)


def series_of(
    flat: str, kind: Literal["counter", "gauge"] = "counter"
) -> tuple[Family, tuple[str, ...]]:
    """The family and label values a flat counter (or gauge) name is exported under."""
    found = _EXACT.get((kind, flat))
    if found is not None:
        return found
    for prefix_kind, prefix, family, values in _PREFIXES:
        if prefix_kind == kind and flat.startswith(prefix) and len(flat) > len(prefix):
            return family, (*values, flat[len(prefix):])
    return UNCATALOGUED[kind], (flat,)
