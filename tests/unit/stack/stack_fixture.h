#pragma once
// Shared fixture for the stack tests: an Interface with default addresses, a sink that
// captures every frame to the guest, and a handler that records what it was given.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "stack/interface.h"
#include "support/frame_builder.h"

namespace moat::stack {

struct CaptureSink : FrameSink {
  std::vector<test::Buf> frames;
  std::vector<TxOffload> offloads;  ///< one per frame; default for plain ones
  void send_to_guest(Bytes frame) override {
    frames.push_back(test::to_buf(frame));
    offloads.emplace_back();
  }
  void send_to_guest_offloaded(Bytes frame, const TxOffload& o) override {
    frames.push_back(test::to_buf(frame));
    offloads.push_back(o);
  }
};

struct RecordingHandler : PacketHandler {
  int v4 = 0, v6 = 0;
  wire::Ipv4Repr last4;
  wire::Ipv6Repr last6;
  test::Buf last_l4;
  void on_ipv4(const wire::Ipv4Repr& ip, Bytes l4, Instant) override {
    ++v4;
    last4 = ip;
    last_l4 = test::to_buf(l4);
  }
  void on_ipv6(const wire::Ipv6Repr& ip, Bytes l4, Instant) override {
    ++v6;
    last6 = ip;
    last_l4 = test::to_buf(l4);
  }
};

class StackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg.seed = 42;
    make();
  }
  /// (Re)creates the Interface after a test changed `cfg`.
  void make() {
    counters = Counters{};
    sink.frames.clear();
    iface = std::make_unique<Interface>(cfg, sink, counters);
  }
  void feed(const test::Buf& f, Instant now) { iface->on_frame_from_guest(test::span(f), now); }
  void feed(const test::Buf& f) { feed(f, t0); }
  Bytes out(size_t i) const { return test::span(sink.frames.at(i)); }

  /// Exactly one drop counter moved, and it is `r` (R-OBS-2).
  void expect_only_drop(DropReason r) const {
    EXPECT_EQ(counters.dropped(r), 1u) << drop_reason_name(r);
    EXPECT_EQ(counters.total_drops(), 1u);
    EXPECT_EQ(counters.get(Counter::ignored_multicast) + counters.get(Counter::ignored_icmp) +
                  counters.get(Counter::ignored_neighbor),
              0u);
  }
  void expect_only_ignored(Counter c) const {
    EXPECT_EQ(counters.get(c), 1u) << counter_name(c);
    EXPECT_EQ(counters.total_drops(), 0u);
  }

  LinkConfig cfg;
  Counters counters;
  CaptureSink sink;
  RecordingHandler handler;
  test::GuestFrames g;
  std::unique_ptr<Interface> iface;
  Instant t0 = Instant{} + std::chrono::seconds(1000);
};

}  // namespace moat::stack
