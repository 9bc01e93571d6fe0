// The fuzz seeds split from a real guest capture (scripts/fuzz-seed-capture.sh ->
// fuzz/corpus/{ingress,vnet_frame}/guest-*) are frames the stack accepts: none is dropped,
// so they start the fuzzer past the validation rather than in it. The check keeps the
// corpus meaningful as the stack evolves (like tests/unit/stack/corpus_test.cc for the
// synthetic seeds).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/counters.h"
#include "stack/interface.h"
#include "transport/vnet.h"

namespace moat::test {
namespace {

struct NullSink : stack::FrameSink {
  void send_to_guest(Bytes) override {}
};
struct CountingHandler : stack::PacketHandler {
  size_t delivered = 0;
  void on_ipv4(const wire::Ipv4Repr&, Bytes, Instant) override { ++delivered; }
  void on_ipv6(const wire::Ipv6Repr&, Bytes, Instant) override { ++delivered; }
};

std::vector<std::filesystem::path> guest_seeds(const std::string& target) {
  std::vector<std::filesystem::path> v;
  const std::filesystem::path dir = std::filesystem::path(MOAT_SOURCE_DIR) / "fuzz" / "corpus" / target;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("guest-", 0) == 0 && e.path().extension() != ".l3") v.push_back(e.path());
  }
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::byte> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(c.size());
  std::memcpy(b.data(), c.data(), c.size());
  return b;
}

TEST(PcapSeeds, IngressGuestFramesAreAcceptedWithoutADrop) {
  const auto seeds = guest_seeds("ingress");
  ASSERT_GE(seeds.size(), 10u);
  for (const auto& p : seeds) {
    Counters counters;
    NullSink sink;
    CountingHandler handler;
    stack::Interface iface(stack::LinkConfig{}, sink, counters);  // moat run's defaults
    iface.set_packet_handler(&handler);
    const Instant now{std::chrono::hours(1)};
    iface.start(now);
    const auto frame = read_file(p);
    iface.on_frame_from_guest(Bytes(frame), now);
    EXPECT_EQ(counters.total_drops(), 0u) << p.filename();
  }
}

TEST(PcapSeeds, VnetGuestFramesPassTheHeaderCheck) {
  const auto seeds = guest_seeds("vnet_frame");
  ASSERT_GE(seeds.size(), 5u);
  for (const auto& p : seeds) {
    Counters counters;
    transport::VnetFromGuest vnet(10, counters);
    auto buf = read_file(p);
    ASSERT_GT(buf.size(), 11u);
    EXPECT_EQ(uint8_t(buf[0]), 0u) << p.filename();  // the target's "10-byte header" selector
    size_t frames = 0;
    vnet.process(MutBytes(buf.data() + 1, buf.size() - 1), [&](Bytes) { ++frames; });
    EXPECT_EQ(frames, 1u) << p.filename();
    EXPECT_EQ(counters.total_drops(), 0u) << p.filename();
  }
}

}  // namespace
}  // namespace moat::test
