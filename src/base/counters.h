#pragma once
// Every gateway counter, declared once (Envoy's ALL_*_STATS X-macro). Names are the
// dotted names of SPEC R-OBS-1/2; `drop.*` counts each discarded guest frame exactly once.
#include <array>
#include <cstdint>
#include <string_view>

namespace moat {

// clang-format off
#define MOAT_DROP_REASONS(X) \
  X(runt) X(oversize) X(framing) X(vnet_hdr) X(ethertype) X(not_for_us) X(bad_arp) X(bad_ip) \
  X(bad_src) X(martian) X(ext_header) X(fragment_unsupported) X(fragment_invalid) X(bad_tcp)   \
  X(bad_udp) X(bad_icmp) X(bad_ndp) X(dhcp_malformed) X(dns_malformed) X(foreign_peer)         \
  X(queue_full) X(rate_limit) X(memory) X(policy) X(table_full) X(inactive_family)            \
  X(unsupported_proto) X(no_handler)

#define MOAT_COUNTERS(X) \
  X(link_from_guest_frames, "link.from_guest.frames")   \
  X(link_from_guest_bytes, "link.from_guest.bytes")     \
  X(link_to_guest_frames, "link.to_guest.frames")       \
  X(link_to_guest_bytes, "link.to_guest.bytes")         \
  X(link_to_guest_gso_frames, "link.to_guest.gso_frames") \
  X(link_to_guest_csum_partial, "link.to_guest.csum_partial") \
  X(queue_to_guest_high_water, "queue.to_guest.high_water") \
  X(transport_framing_errors, "transport.framing_errors") \
  X(arp_replies, "arp.replies")                         \
  X(arp_requests_sent, "arp.requests_sent")             \
  X(arp_rate_limited, "arp.rate_limited")               \
  X(ndp_replies, "ndp.replies")                         \
  X(ndp_rate_limited, "ndp.rate_limited")               \
  X(ndp_foreign_mac, "ndp.foreign_mac")                 \
  X(ra_sent, "ndp.ra_sent")                             \
  X(dhcp_offers, "dhcp.offers")                         \
  X(dhcp_acks, "dhcp.acks")                             \
  X(dhcp_naks, "dhcp.naks")                             \
  X(dhcp_releases, "dhcp.releases")                     \
  X(dhcp_rate_limited, "dhcp.rate_limited")             \
  X(dhcp6_advertises, "dhcp6.advertises")               \
  X(dhcp6_replies, "dhcp6.replies")                     \
  X(dhcp6_ignored, "dhcp6.ignored")                     \
  X(icmp_echo_local, "icmp.echo_local")                 \
  X(icmp_echo_relayed, "icmp.echo_relayed")             \
  X(icmp_errors_sent, "icmp.errors_sent")               \
  X(icmp_relay_unavailable, "icmp.relay_unavailable")   \
  X(icmp_echo_rate_limited, "icmp.echo_rate_limited")   \
  X(udp_sessions_active, "udp.sessions_active")         \
  X(udp_datagrams_from_guest, "udp.datagrams_from_guest") \
  X(udp_datagrams_to_guest, "udp.datagrams_to_guest")   \
  X(udp_evicted, "udp.evicted")                         \
  X(udp_unsolicited, "udp.unsolicited")                 \
  X(frag_reassembled, "frag.reassembled")               \
  X(frag_invalid, "frag.invalid")                       \
  X(frag_timeout, "frag.timeout")                       \
  X(frag_evicted, "frag.evicted")                       \
  X(ignored_multicast, "ignored.multicast")             \
  X(ignored_icmp, "ignored.icmp")                       \
  X(ignored_neighbor, "ignored.neighbor")               \
  X(impair_dropped, "impair.dropped")                   \
  X(impair_reordered, "impair.reordered")               \
  X(impair_duplicated, "impair.duplicated")             \
  X(impair_delayed, "impair.delayed")                   \
  X(tcp_active, "tcp.active")                           \
  X(tcp_opened, "tcp.opened")                           \
  X(tcp_ingress_opened, "tcp.ingress_opened")           \
  X(tcp_refused, "tcp.refused")                         \
  X(tcp_unreachable, "tcp.unreachable")                 \
  X(tcp_reset_by_guest, "tcp.reset_by_guest")           \
  X(tcp_reset_by_upstream, "tcp.reset_by_upstream")     \
  X(tcp_timeouts, "tcp.timeouts")                       \
  X(tcp_host_resource_errors, "tcp.host_resource_errors") \
  X(tcp_retransmits, "tcp.retransmits")                 \
  X(tcp_fast_retransmits, "tcp.fast_retransmits")       \
  X(tcp_tso_segments, "tcp.tso_segments")               \
  X(tcp_challenge_acks, "tcp.challenge_acks")           \
  X(tcp_time_wait_evicted, "tcp.time_wait_evicted")     \
  X(tcp_connect_evicted, "tcp.connect_evicted")         \
  X(ports_refused, "ports.refused")                     \
  X(ports_accept_emfile, "ports.accept_emfile")         \
  X(limits_hits_max_flows, "limits.hits.max_flows")     \
  X(limits_hits_max_pending_connects, "limits.hits.max_pending_connects") \
  X(limits_hits_memory, "limits.hits.memory")           \
  X(memory_used, "memory.used")                         \
  X(memory_high_water, "memory.high_water")             \
  X(memory_budget, "memory.budget")                     \
  X(memory_level, "memory.level")                       \
  X(tcp_path_fast, "tcp.path.fast")                     \
  X(tcp_path_gate, "tcp.path.gate")                     \
  X(tcp_path_inspect, "tcp.path.inspect")               \
  X(tcp_path_rejected, "tcp.path.rejected")             \
  X(policy_allow, "policy.allow")                       \
  X(policy_deny, "policy.deny")                         \
  X(audit_dropped, "audit.dropped")                     \
  X(dns_queries, "dns.queries")                         \
  X(dns_denied, "dns.denied")                           \
  X(dns_blocked, "dns.blocked")                         \
  X(dns_rebind_blocked, "dns.rebind_blocked")           \
  X(dns_nodata_family, "dns.nodata_family")             \
  X(dns_servfail, "dns.servfail")                       \
  X(dns_upstream_timeouts, "dns.upstream_timeouts")     \
  X(dns_failovers, "dns.failovers")                     \
  X(dns_truncated, "dns.truncated")                     \
  X(dns_dropped_overload, "dns.dropped_overload")       \
  X(dns_pins_active, "dns.pins_active")                 \
  X(dns_tcp_sessions, "dns.tcp_sessions")               \
  X(dns_alt_port_refused, "dns.alt_port_refused")       \
  X(dns_accept_emfile, "dns.accept_emfile")             \
  X(tls_intercepted, "tls.intercepted")                 \
  X(tls_bypassed, "tls.bypassed")                       \
  X(tls_non_tls, "tls.non_tls")                         \
  X(tls_verify_failed, "tls.verify_failed")             \
  X(tls_handshake_failed, "tls.handshake_failed")       \
  X(tls_upstream_failed, "tls.upstream_failed")         \
  X(tls_upstream_resumed, "tls.upstream_resumed")       \
  X(tls_keylog_active, "tls.keylog_active")             \
  X(tls_quic_blocked, "tls.quic_blocked")               \
  X(tls_connect_tunnels, "tls.connect.tunnels")         \
  X(tls_connect_denied, "tls.connect.denied")           \
  X(tls_connect_malformed, "tls.connect.malformed")     \
  X(tls_connect_refused_by_proxy, "tls.connect.refused_by_proxy") \
  X(tls_connect_bad_response, "tls.connect.bad_response") \
  X(tls_connect_sni_mismatch, "tls.connect.sni_mismatch") \
  X(tls_dot_sessions, "tls.dot.sessions")               \
  X(tls_dot_handshake_failed, "tls.dot.handshake_failed") \
  X(http_authority_mismatch, "http.authority_mismatch") \
  X(http_malformed, "http.malformed")                   \
  X(http_limit, "http.limit")                           \
  X(http_upgraded, "http.upgraded")                     \
  X(http_upstream_framing, "http.upstream_framing")     \
  X(control_clients, "control.clients")                 \
  X(control_requests, "control.requests")               \
  X(control_refused, "control.refused")                 \
  X(control_limited, "control.limited")                 \
  X(control_oversize, "control.oversize")               \
  X(control_idle_closed, "control.idle_closed")         \
  X(control_events_dropped, "control.events_dropped")   \
  X(metrics_requests, "metrics.requests")               \
  X(metrics_bad_requests, "metrics.bad_requests")       \
  X(pcap_dropped, "pcap.dropped")                       \
  X(run_drain_reset, "run.drain_reset")                 \
  X(rate_egress_throttled_ms, "rate.egress.throttled")  /* milliseconds spent throttled */ \
  X(rate_ingress_throttled_ms, "rate.ingress.throttled") \
  X(tls_leaf_cache_hits, "tls.leaf_cache.hits")         \
  X(tls_leaf_minted, "tls.leaf_cache.minted")           \
  X(tls_leaf_mint_failed, "tls.leaf_cache.failed")      \
  X(tls_leaf_cache_size, "tls.leaf_cache.size")         \
  X(internal_errors, "internal_errors")
// clang-format on

enum class DropReason : uint16_t {
#define MOAT_X(name) name,
  MOAT_DROP_REASONS(MOAT_X)
#undef MOAT_X
      kCount
};

enum class Counter : uint16_t {
#define MOAT_X(id, name) id,
  MOAT_COUNTERS(MOAT_X)
#undef MOAT_X
      kCount
};

inline constexpr size_t kDropReasonCount = static_cast<size_t>(DropReason::kCount);
inline constexpr size_t kCounterCount = static_cast<size_t>(Counter::kCount);

std::string_view drop_reason_name(DropReason r) noexcept;  ///< "runt", "bad_src", ...
std::string_view counter_name(Counter c) noexcept;         ///< "link.from_guest.frames", ...

/// One gateway's counters. Owned by the loop thread; read elsewhere only via snapshots.
struct Counters {
  std::array<uint64_t, kCounterCount> values{};
  std::array<uint64_t, kDropReasonCount> drops{};

  void inc(Counter c, uint64_t n = 1) noexcept { values[static_cast<size_t>(c)] += n; }
  void set_max(Counter c, uint64_t v) noexcept {
    auto& x = values[static_cast<size_t>(c)];
    if (v > x) x = v;
  }
  void set(Counter c, uint64_t v) noexcept { values[static_cast<size_t>(c)] = v; }  ///< gauges
  void drop(DropReason r) noexcept { drops[static_cast<size_t>(r)] += 1; }
  [[nodiscard]] uint64_t get(Counter c) const noexcept { return values[static_cast<size_t>(c)]; }
  [[nodiscard]] uint64_t dropped(DropReason r) const noexcept { return drops[static_cast<size_t>(r)]; }
  [[nodiscard]] uint64_t total_drops() const noexcept;
};

}  // namespace moat
