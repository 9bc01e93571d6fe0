#pragma once
// The deterministic in-process harness (SPEC R-HARD-6): moat's real guest-facing path —
// stack::Interface (demux, ARP/NDP, IP validation, egress framing) -> flows::Dispatch ->
// TcpEngine/TcpConn — driven by an independent client TCP/IP stack (support/guest_stack.h)
// over an in-memory link with seeded loss, reordering and duplication
// (support/sim_link.h), on an event::Loop whose FakeClock only the harness moves.
//
// The upstream side is in-process too: HostApp is a TcpPeerProvider that takes every new
// flow at its SYN and terminates it on a flows::StreamPeer (the same mechanism TLS
// interception and the DNS-over-TCP forwarder use), so nothing touches a real socket and
// no kernel timing leaks in. getrandom() is seeded (support/det_getrandom.cc), so moat's
// ISNs and hash keys repeat too: the same seed gives the same run, frame for frame.
//
// Time: Sim::run_until() alternates step() (deliver due frames, let each side react, fire
// due timers) with a jump of the clock to the earliest next event (a link delivery, a
// guest timer, a loop timer, the Interface's RA timer). Every loop is bounded in steps
// and in simulated time.
//
// Each Sim writes a pcap of its link (what was delivered, stamped with simulated time) to
// harness_output_dir()/<name>.pcap.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/counters.h"
#include "event/clock.h"
#include "event/loop.h"
#include "flows/dispatch.h"
#include "flows/guest_io.h"
#include "flows/stream_peer.h"
#include "flows/tcp_peer_provider.h"
#include "stack/interface.h"
#include "support/guest_stack.h"
#include "support/sim_link.h"
#include "support/sim_rng.h"

namespace moat::test {

/// Where harness pcaps go: $MOAT_HARNESS_OUT, else the build tree's default.
inline std::string harness_output_dir() {
  if (const char* e = std::getenv("MOAT_HARNESS_OUT"); e && *e) return e;
#ifdef MOAT_HARNESS_OUT_DEFAULT
  return MOAT_HARNESS_OUT_DEFAULT;
#else
  return "/tmp/moat-harness";
#endif
}

/// flows::GuestIo straight over the Interface, no offloads, never blocked (the link
/// queue is unbounded; loss is the link's business). app::LinkIo minus the transport.
class InterfaceIo final : public flows::GuestIo {
 public:
  explicit InterfaceIo(stack::Interface& iface, uint32_t mtu) : iface_(iface), mtu_(mtu) {}
  bool send_ipv4(Ipv4Addr src, Ipv4Addr dst, uint8_t proto, size_t l4_len, FunctionRef<void(MutBytes)> fill) override {
    return iface_.send_ipv4(src, dst, proto, l4_len, fill);
  }
  bool send_ipv6(const Ipv6Addr& src, const Ipv6Addr& dst, uint8_t nh, size_t l4_len,
                 FunctionRef<void(MutBytes)> fill) override {
    return iface_.send_ipv6(src, dst, nh, l4_len, fill);
  }
  bool send_udp_v4(Ipv4Addr src, Ipv4Addr dst, uint16_t sp, uint16_t dp, Bytes payload) override {
    return iface_.send_udp_v4(src, dst, sp, dp, payload);
  }
  bool send_udp_v6(const Ipv6Addr& src, const Ipv6Addr& dst, uint16_t sp, uint16_t dp, Bytes payload) override {
    return iface_.send_udp_v6(src, dst, sp, dp, payload);
  }
  bool send_icmp_error_v4(const wire::Ipv4Repr& off, Bytes l4, Ipv4Addr src, uint8_t type, uint8_t code, Instant now,
                          uint16_t mtu) override {
    return iface_.send_icmp_error_v4(off, l4, src, type, code, now, mtu);
  }
  bool send_icmp_error_v6(const wire::Ipv6Repr& off, Bytes l4, const Ipv6Addr& src, uint8_t type, uint8_t code,
                          Instant now, uint32_t m) override {
    return iface_.send_icmp_error_v6(off, l4, src, type, code, now, m);
  }
  [[nodiscard]] bool output_blocked() const override { return false; }
  void set_output_ready(std::function<void()> cb) override { ready_ = std::move(cb); }
  [[nodiscard]] uint32_t mtu() const override { return mtu_; }

 private:
  stack::Interface& iface_;
  uint32_t mtu_;
  std::function<void()> ready_;
};

/// The "internet" behind moat: every guest flow ends on an in-process StreamPeer.
class HostApp final : public flows::TcpPeerProvider {
 public:
  struct Conn {
    explicit Conn(size_t capacity) : peer(capacity) {}
    flows::StreamPeer peer;
    flows::TcpFlowRef ref;
    IpAddr remote;
    uint16_t remote_port = 0, guest_port = 0;
    std::vector<std::byte> received;  ///< everything the guest sent, in order
    std::vector<std::byte> to_send;   ///< what the host sends the guest
    size_t sent = 0;
    bool shutdown_when_sent = false;  ///< FIN after to_send
    bool abort_after_read = false;    ///< RST once `abort_after_bytes` arrived
    size_t abort_after_bytes = 0;
    bool shut = false, aborted = false, closed = false;
  };

  explicit HostApp(size_t capacity) : capacity_(capacity) {}

  /// Called for each accepted flow before its first byte (fill to_send, set flags).
  std::function<void(Conn&)> on_accept;
  /// Remote ports that refuse (RST to the guest's SYN, as a closed host port would).
  std::set<uint16_t> refused_ports;

  flows::TcpTake on_syn(const flows::FlowInfo& f, flows::DialPlan& plan, flows::TcpFlowRef ref) override {
    if (refused_ports.count(f.remote_port)) {
      plan.count = 0;
      return flows::TcpTake::dial();
    }
    conns_.push_back(std::make_unique<Conn>(capacity_));
    Conn& c = *conns_.back();
    c.ref = ref;
    c.remote = f.remote;
    c.remote_port = f.remote_port;
    c.guest_port = f.guest_port;
    if (on_accept) on_accept(c);
    return flows::TcpTake::in_process(c.peer);
  }
  void on_closed(flows::TcpPeer& p) override {
    for (auto& c : conns_)
      if (&c->peer == &p) c->closed = true;
  }

  /// Moves bytes between the rings and the test's buffers (a host application's read and
  /// write calls), and wakes the flows that have something new.
  void poll() {
    std::vector<std::byte>& buf = read_buf_;
    for (auto& cp : conns_) {
      Conn& c = *cp;
      if (c.aborted) continue;
      // A closed flow's ring may still hold the guest's last bytes: moat is done with the
      // peer (on_closed), the application is not until it read them.
      bool read_any = false;
      for (int i = 0; i < 64; ++i) {
        const size_t n = c.peer.app_read(MutBytes(buf));
        if (n == 0) break;
        c.received.insert(c.received.end(), buf.begin(), buf.begin() + long(n));
        read_any = true;
      }
      if (c.abort_after_read && c.received.size() >= c.abort_after_bytes) {
        c.aborted = true;
        c.peer.app_abort();
        c.ref.peer_error(Errno{ECONNRESET});
        continue;
      }
      if (c.closed) continue;
      if (read_any) c.ref.peer_writable();
      bool wrote = false;
      if (c.sent < c.to_send.size()) {
        const size_t n = c.peer.app_write(Bytes(c.to_send.data() + c.sent, c.to_send.size() - c.sent));
        c.sent += n;
        wrote = n > 0;
      }
      if (c.sent == c.to_send.size() && c.shutdown_when_sent && !c.shut) {
        c.shut = true;
        c.peer.app_shutdown_write();
        wrote = true;
      }
      if (wrote) c.ref.peer_readable();
    }
  }

  [[nodiscard]] size_t conn_count() const noexcept { return conns_.size(); }
  Conn& conn(size_t i) { return *conns_.at(i); }

 private:
  size_t capacity_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<std::byte> read_buf_ = std::vector<std::byte>(64 << 10);
};

struct SimConfig {
  uint64_t seed = 1;
  LinkFaults to_moat, to_guest;  ///< faults per direction
  std::string name;              ///< pcap file name (without .pcap); empty: no capture
  size_t peer_capacity = 256 << 10;
  uint32_t mtu = 1500;
  GuestStackConfig guest;
  /// Tweak the engines' config (timeouts, windows) before the Dispatch is built.
  std::function<void(flows::DispatchConfig&)> tune;
};

/// One simulated gateway with its guest and its internet.
class Sim {
 public:
  static constexpr size_t kMaxSteps = 3'000'000;

  explicit Sim(const SimConfig& cfg)
      : cfg_(cfg),
        seeded_((set_getrandom_seed(cfg.seed), true)),
        link_(cfg.seed, cfg.to_moat, cfg.to_guest),
        sink_(*this),
        iface_(link_config(cfg), sink_, counters_),
        io_(iface_, cfg.mtu),
        dispatch_(loop_, io_, counters_, dispatch_config(cfg)),
        host_(cfg.peer_capacity),
        guest_(guest_config(cfg), [this](Bytes f) { link_.send(SimLink::Dir::to_moat, f, clock_.now()); }, cfg.seed) {
    if (!cfg.name.empty()) {
      std::filesystem::create_directories(harness_output_dir());
      pcap_path_ = harness_output_dir() + "/" + cfg.name + ".pcap";
      Status s = link_.capture(pcap_path_);
      EXPECT_TRUE(s.has_value()) << "cannot write " << pcap_path_;
    }
    iface_.set_packet_handler(&dispatch_);
    dispatch_.add_tcp_provider(host_);
    iface_.start(clock_.now());
  }
  ~Sim() { (void)link_.close_capture(); }
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  [[nodiscard]] Instant now() const { return clock_.now(); }
  GuestStack& guest() { return guest_; }
  HostApp& host() { return host_; }
  SimLink& link() { return link_; }
  Counters& counters() { return counters_; }
  flows::TcpEngine& tcp() { return dispatch_.tcp(); }
  [[nodiscard]] const std::string& pcap_path() const { return pcap_path_; }
  [[nodiscard]] uint64_t steps() const noexcept { return steps_; }
  Status close_capture() { return link_.close_capture(); }

  /// Delivers every frame due now, lets both ends and the host app react, fires due timers.
  void step() {
    ++steps_;
    const Instant now = clock_.now();
    SimLink::Dir dir{};
    bool from_guest = false;
    for (size_t i = 0; i < 100000 && link_.pop_due(now, &dir, &frame_); ++i) {
      if (dir == SimLink::Dir::to_moat) {
        iface_.on_frame_from_guest(Bytes(frame_), now);
        from_guest = true;
      } else {
        guest_.on_frame(Bytes(frame_), now);
      }
    }
    if (from_guest) dispatch_.flush(now);
    host_.poll();
    guest_.poll(now);
    loop_.run_once(Duration::zero());
    if (auto d = iface_.next_deadline(); d && *d <= now) iface_.on_timer(now);
  }

  /// Steps until `pred` holds, at most `limit` of simulated time (and kMaxSteps steps).
  template <class P>
  bool run_until(P pred, Duration limit) {
    const Instant end = clock_.now() + limit;
    for (size_t i = 0; i < kMaxSteps; ++i) {
      step();
      if (pred()) return true;
      if (clock_.now() >= end) return false;
      advance(end);
    }
    ADD_FAILURE() << "run_until: step limit reached at t=" << sim_seconds() << "s";
    return false;
  }
  void run_for(Duration d) {
    (void)run_until([] { return false; }, d);
  }

  /// Resolves the gateway's MAC for the family (ARP or NDP), within 10 s.
  bool resolve(bool v6) {
    guest_.resolve_gateway(v6, clock_.now());
    return run_until([&] { return guest_.gateway_known(v6); }, std::chrono::seconds(10));
  }

  /// moat's side of a guest connection (state, sequence numbers, timer), for failure messages.
  std::string moat_side(const TcpSocket& s) {
    flows::FlowKey k;
    k.guest = s.is_v6() ? IpAddr(guest_.config().addr6) : IpAddr(guest_.config().addr4);
    k.guest_port = s.local_port();
    k.remote = s.remote();
    k.remote_port = s.remote_port();
    const flows::TcpConn* c = tcp().find(k);
    if (!c) return "moat: no flow";
    std::string r = "moat: state=" + std::to_string(int(c->state())) + " snd_nxt=" +
                    std::to_string(c->snd_nxt().value) + " rcv_nxt=" + std::to_string(c->rcv_nxt().value) +
                    " timer=" + std::to_string(c->timer().index()) + " retransmits=" + std::to_string(c->retransmits()) +
                    " rto_ms=" + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(c->rto()).count());
    if (auto d = c->next_deadline())
      r += " next_deadline_in=" + std::to_string(std::chrono::duration<double>(*d - clock_.now()).count()) + "s";
    return r;
  }

  [[nodiscard]] double sim_seconds() const {
    return std::chrono::duration<double>(clock_.now() - start_).count();
  }
  /// One line about the run, for failure messages.
  [[nodiscard]] std::string summary() const {
    auto d = [&](SimLink::Dir x) {
      const auto& s = link_.stats(x);
      return "sent=" + std::to_string(s.sent) + " lost=" + std::to_string(s.lost) + " dup=" +
             std::to_string(s.duplicated) + " reord=" + std::to_string(s.reordered);
    };
    return "t=" + std::to_string(sim_seconds()) + "s steps=" + std::to_string(steps_) + " to_moat[" +
           d(SimLink::Dir::to_moat) + "] to_guest[" + d(SimLink::Dir::to_guest) + "] moat retransmits=" +
           std::to_string(counters_.get(Counter::tcp_retransmits)) +
           " internal_errors=" + std::to_string(counters_.get(Counter::internal_errors)) + " pcap=" + pcap_path_;
  }

 private:
  struct Sink final : stack::FrameSink {
    explicit Sink(Sim& s) : sim(s) {}
    void send_to_guest(Bytes frame) override { sim.link_.send(SimLink::Dir::to_guest, frame, sim.clock_.now()); }
    Sim& sim;
  };

  static stack::LinkConfig link_config(const SimConfig& c) {
    stack::LinkConfig l;
    l.mtu = c.mtu;
    l.seed = c.seed;
    l.hostname = "harness";
    return l;
  }
  static flows::DispatchConfig dispatch_config(const SimConfig& c) {
    flows::DispatchConfig d;
    stack::LinkConfig l = link_config(c);
    d.destinations.gateway4 = l.gateway4;
    d.destinations.dns4 = l.dns4;
    d.destinations.gateway6 = l.gateway6;
    d.destinations.gateway6_link_local = l.gateway_mac.link_local();
    d.destinations.dns6 = l.dns6;
    d.icmp_relay = false;  // no ping socket: nothing here may touch the host
    if (c.tune) c.tune(d);
    return d;
  }
  static GuestStackConfig guest_config(const SimConfig& c) {
    GuestStackConfig g = c.guest;
    g.mtu = c.mtu;
    return g;
  }
  void advance(Instant end) {
    std::optional<Instant> next;
    auto take = [&](std::optional<Instant> t) {
      if (t && (!next || *t < *next)) next = t;
    };
    take(link_.next_delivery());
    take(guest_.next_deadline());
    take(loop_.next_deadline());
    take(iface_.next_deadline());
    const Instant now = clock_.now();
    Instant to = next ? *next : end;
    if (to > end) to = end;
    // Always move: an event due "now" was just handled by step(); 10 us keeps a stuck
    // deadline from spinning without changing what happens.
    if (to < now + std::chrono::microseconds(10)) to = now + std::chrono::microseconds(10);
    clock_.set(to);
  }

  SimConfig cfg_;
  bool seeded_;  // getrandom is seeded before anything below draws from it
  event::FakeClock clock_;
  event::Loop loop_{clock_};
  Counters counters_;
  SimLink link_;
  Sink sink_;
  stack::Interface iface_;
  InterfaceIo io_;
  flows::Dispatch dispatch_;
  HostApp host_;
  GuestStack guest_;
  Instant start_ = clock_.now();
  std::string pcap_path_;
  std::vector<std::byte> frame_;
  uint64_t steps_ = 0;
};

/// A deterministic byte pattern (the transfer's content; a corrupt or shifted byte shows).
inline std::vector<std::byte> pattern(size_t n, uint64_t seed) {
  std::vector<std::byte> v(n);
  SimRng r(seed);
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t x = r.next();
    for (size_t k = 0; k < 8 && i + k < n; ++k) v[i + k] = std::byte(uint8_t(x >> (8 * k)));
  }
  return v;
}

}  // namespace moat::test
