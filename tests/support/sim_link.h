#pragma once
// SimLink: the in-memory Ethernet link of the deterministic harness (SPEC R-HARD-6), in the
// spirit of smoltcp's netsim/fault_injector: frames sent by either end are queued with a
// delivery time and may be lost, duplicated or held back (so later frames overtake them),
// every decision drawn from one seeded SimRng. Time is whatever the caller passes in (the
// harness's FakeClock), so the same seed and the same traffic give the same deliveries.
//
// Each delivered frame can be recorded in a classic pcap (transport::PcapWriter), stamped
// with the simulated time: what a capture on the wire would see (lost frames absent,
// duplicates twice, reordering as delivered).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "base/time.h"
#include "support/sim_rng.h"
#include "transport/pcap.h"

namespace moat::test {

/// What the link does to frames, per direction. Probabilities are per frame.
struct LinkFaults {
  double loss = 0;       ///< frame dropped
  double duplicate = 0;  ///< frame delivered twice (the copy a little later)
  double reorder = 0;    ///< frame held back by reorder_delay (frames behind it overtake)
  Duration latency = std::chrono::microseconds(500);
  Duration reorder_delay = std::chrono::milliseconds(3);
};

class SimLink {
 public:
  enum class Dir : uint8_t { to_moat, to_guest };

  SimLink(uint64_t seed, LinkFaults to_moat, LinkFaults to_guest)
      : rng_(seed), faults_{to_moat, to_guest} {}

  /// Records every delivered frame in `path` from now on. Empty string: no capture.
  Status capture(const std::string& path) {
    if (path.empty()) return {};
    auto w = transport::PcapWriter::open(path);
    if (!w) return unexpected(w.error());
    pcap_.emplace(std::move(*w));
    return {};
  }
  Status close_capture() {
    if (!pcap_) return {};
    Status s = pcap_->close();
    pcap_.reset();
    return s;
  }

  /// Queues `frame` toward `dir`, applying that direction's faults.
  void send(Dir dir, Bytes frame, Instant now) {
    const LinkFaults& f = faults_[size_t(dir)];
    ++stats_[size_t(dir)].sent;
    if (f.loss > 0 && rng_.chance(f.loss)) {
      ++stats_[size_t(dir)].lost;
      return;
    }
    Instant at = now + f.latency;
    if (f.reorder > 0 && rng_.chance(f.reorder)) {
      ++stats_[size_t(dir)].reordered;
      at += f.reorder_delay;
    }
    enqueue(dir, frame, at);
    if (f.duplicate > 0 && rng_.chance(f.duplicate)) {
      ++stats_[size_t(dir)].duplicated;
      enqueue(dir, frame, at + std::chrono::microseconds(100 + rng_.below(900)));
    }
  }

  /// Earliest pending delivery.
  [[nodiscard]] std::optional<Instant> next_delivery() const {
    if (queue_.empty()) return std::nullopt;
    return queue_.begin()->first.first;
  }
  /// Pops the next frame due at or before `now` into `out`; false when none is due.
  bool pop_due(Instant now, Dir* dir, std::vector<std::byte>* out) {
    if (queue_.empty() || queue_.begin()->first.first > now) return false;
    auto node = queue_.extract(queue_.begin());
    *dir = node.mapped().first;
    *out = std::move(node.mapped().second);
    ++stats_[size_t(*dir)].delivered;
    if (pcap_) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
      pcap_->write(Bytes(*out), transport::PcapTimestamp{uint32_t(us / 1000000), uint32_t(us % 1000000)});
    }
    return true;
  }
  [[nodiscard]] size_t in_flight() const noexcept { return queue_.size(); }

  struct Stats {
    uint64_t sent = 0, lost = 0, duplicated = 0, reordered = 0, delivered = 0;
  };
  [[nodiscard]] const Stats& stats(Dir d) const noexcept { return stats_[size_t(d)]; }
  LinkFaults& faults(Dir d) noexcept { return faults_[size_t(d)]; }

 private:
  void enqueue(Dir dir, Bytes frame, Instant at) {
    // The order number breaks ties between frames due at the same instant: FIFO.
    queue_.emplace(std::make_pair(at, order_++), std::make_pair(dir, std::vector<std::byte>(frame.begin(), frame.end())));
  }

  SimRng rng_;
  LinkFaults faults_[2];
  Stats stats_[2];
  uint64_t order_ = 0;
  std::map<std::pair<Instant, uint64_t>, std::pair<Dir, std::vector<std::byte>>> queue_;
  std::optional<transport::PcapWriter> pcap_;
};

}  // namespace moat::test
