#pragma once
// StreamPeer: an in-process TcpPeer with one bounded ring buffer per direction, for the
// inspect path (R-TCP-5) and TLS interception (R-TLS): the "upstream" is moat code.
//
// Lifecycle: constructed with its capacity (both rings allocated once, never grown); the
// app side writes bytes for the guest with app_write() and reads the guest's bytes with
// app_read(). After either call the owner tells the TcpConn (on_peer_readable /
// on_peer_writable), exactly as epoll does for a host socket. app_shutdown_write() is the
// upstream's FIN, app_abort() its RST (TcpConn learns it from peek/write errors:
// ECONNRESET).
#include <cstddef>
#include <utility>

#include "base/memory_budget.h"
#include <array>

#include "flows/tcp_peer.h"

namespace moat::flows {

/// Mapped ring storage kept for reuse, still charged to the budget. A bulk flow whose host
/// is the bottleneck stalls and drains many times a second; without this each cycle costs
/// an mmap, 64 page faults and a munmap of 256 KiB (a measured 5-10 % of tcp_out). Bounded:
/// at most kMaxEntries mappings, and none kept once the budget is under pressure (R-LIM-2),
/// when the cache also gives back what it holds. Owned by the TCP engine, outliving its flows.
class RingCache {
 public:
  static constexpr size_t kMaxEntries = 8;
  RingCache() = default;
  RingCache(const RingCache&) = delete;
  RingCache& operator=(const RingCache&) = delete;
  ~RingCache() { clear(); }
  /// A cached mapping of exactly `cap` bytes with its charge; false when there is none.
  bool take(size_t cap, std::byte** buf, MemoryCharge* charge) noexcept;
  /// Keeps `buf` (`cap` bytes, charged by `charge`); false (the caller unmaps) when full or
  /// when the budget is under pressure.
  bool give(std::byte* buf, size_t cap, MemoryCharge& charge) noexcept;
  /// Unmaps every cached mapping and releases its charge.
  void clear() noexcept;
  [[nodiscard]] size_t size() const noexcept { return n_; }

 private:
  struct Entry {
    std::byte* buf = nullptr;
    size_t cap = 0;
    MemoryCharge charge;
  };
  std::array<Entry, kMaxEntries> entries_{};
  size_t n_ = 0;
};

/// Fixed-capacity byte FIFO with random-access peek. The storage is its own anonymous
/// mapping, so free_storage() gives the pages back to the kernel at once: a heap block of
/// this size would stay resident (glibc raises its mmap threshold after the first free)
/// and RSS would not follow the memory budget down. Untouched pages cost no RSS, but the
/// budget is charged the whole capacity: what could be resident, not what is.
class ByteRing {
 public:
  /// `capacity` bytes allocated at once, not charged to any budget.
  explicit ByteRing(size_t capacity = 0) noexcept { (void)allocate(capacity, nullptr); }
  ByteRing(const ByteRing&) = delete;
  ByteRing& operator=(const ByteRing&) = delete;
  ByteRing(ByteRing&& o) noexcept
      : buf_(std::exchange(o.buf_, nullptr)), cap_(std::exchange(o.cap_, 0)), head_(std::exchange(o.head_, 0)),
        len_(std::exchange(o.len_, 0)), charge_(std::move(o.charge_)), cache_(std::exchange(o.cache_, nullptr)) {}
  ByteRing& operator=(ByteRing&& o) noexcept;
  ~ByteRing() { free_storage(); }

  /// Replaces the (empty) ring's storage by `capacity` bytes charged to `budget` (null: not
  /// accounted). False, and nothing changes, when the budget refuses them (R-LIM-2).
  [[nodiscard]] bool allocate(size_t capacity, MemoryBudget* budget, RingCache* cache = nullptr) noexcept;
  /// Unmaps the storage and releases its charge (or hands both to the cache given to
  /// allocate()); the content is dropped.
  void free_storage() noexcept;

  [[nodiscard]] size_t size() const noexcept { return len_; }
  [[nodiscard]] size_t capacity() const noexcept { return cap_; }
  [[nodiscard]] size_t free() const noexcept { return cap_ - len_; }
  /// Appends up to free() bytes; returns how many.
  size_t push(Bytes in) noexcept;
  /// Copies bytes [offset, offset + out.size()) (clipped to size()); returns how many.
  size_t peek(size_t offset, MutBytes out) const noexcept;
  /// Drops up to n bytes from the front; returns how many.
  size_t pop(size_t n) noexcept;
  /// The (up to two) contiguous spans holding the content, front first.
  [[nodiscard]] std::pair<Bytes, Bytes> spans() const noexcept;
  void clear() noexcept { head_ = len_ = 0; }

 private:
  std::byte* buf_ = nullptr;
  size_t cap_ = 0;
  size_t head_ = 0, len_ = 0;
  MemoryCharge charge_;
  RingCache* cache_ = nullptr;
};

class StreamPeer final : public TcpPeer {
 public:
  /// `capacity` bytes per direction (limits.flow_buffer).
  explicit StreamPeer(size_t capacity) : to_guest_(capacity), from_guest_(capacity) {}

  // ---- app side ----
  /// Queues bytes for the guest; returns how many fit.
  size_t app_write(Bytes data) noexcept { return (aborted_ || app_shut_) ? 0 : to_guest_.push(data); }
  /// Upstream EOF toward the guest (after the queued bytes).
  void app_shutdown_write() noexcept { app_shut_ = true; }
  /// Reads the guest's bytes.
  size_t app_read(MutBytes out) noexcept {
    const size_t n = from_guest_.peek(0, out);
    from_guest_.pop(n);
    return n;
  }
  [[nodiscard]] size_t app_readable() const noexcept { return from_guest_.size(); }
  /// The guest sent FIN and every byte before it has been read.
  [[nodiscard]] bool app_read_closed() const noexcept { return guest_shut_ && from_guest_.size() == 0; }
  /// Upstream RST: TcpConn sees ECONNRESET on its next peek/write and resets the guest.
  void app_abort() noexcept { aborted_ = true; }
  /// The TcpConn aborted (guest RST, timeout, ...).
  [[nodiscard]] bool aborted_by_conn() const noexcept { return conn_aborted_; }
  [[nodiscard]] size_t to_guest_queued() const noexcept { return to_guest_.size(); }

  // ---- TcpPeer ----
  size_t readable() override { return to_guest_.size(); }
  [[nodiscard]] bool read_closed() const override { return app_shut_; }
  Result<size_t> peek(size_t offset, MutBytes out) override;
  Status consume(size_t n) override;
  size_t writable() override { return (aborted_ || guest_shut_) ? 0 : from_guest_.free(); }
  Result<size_t> write(Bytes data) override;
  void shutdown_write() override { guest_shut_ = true; }
  void abort() override { conn_aborted_ = true; }

 private:
  ByteRing to_guest_, from_guest_;
  bool app_shut_ = false, guest_shut_ = false, aborted_ = false, conn_aborted_ = false;
};

}  // namespace moat::flows
