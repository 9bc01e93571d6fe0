#include "transport/pcap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/check.h"
#include "base/log.h"

namespace moat::transport {

PcapTimestamp PcapTimestamp::now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  // Unsigned 32-bit seconds: good until 2106, as in every classic pcap reader.
  return PcapTimestamp{static_cast<uint32_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec / 1000)};
}

Result<PcapWriter> PcapWriter::open(const std::string& path, const PcapConfig& config) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return sys_error();
  // O_CREAT's mode does not apply to an existing file; captures hold guest traffic.
  if (::fchmod(fd.get(), 0600) < 0) return sys_error();
  PcapWriter w(std::move(fd), config);
  // Global header (pcap-savefile(5)), host byte order; readers detect it from the magic.
  w.append_u32(kMagic);
  w.append_u16(kVersionMajor);
  w.append_u16(kVersionMinor);
  w.append_u32(0);  // thiszone
  w.append_u32(0);  // sigfigs
  w.append_u32(w.snaplen_);
  w.append_u32(kLinkTypeEthernet);
  w.file_bytes_ = kGlobalHeaderLen;
  // Written at once so even an empty capture is a valid file.
  if (Status s = w.flush(); !s) return unexpected(s.error());
  return w;
}

PcapWriter::PcapWriter(UniqueFd fd, const PcapConfig& config)
    : fd_(std::move(fd)),
      snaplen_(config.snaplen != 0 ? config.snaplen : PcapConfig{}.snaplen),
      max_size_(config.max_size),
      buffer_(std::max(config.buffer_bytes, kRecordHeaderLen + snaplen_)) {}

void PcapWriter::append_u32(uint32_t v) noexcept {
  std::memcpy(buffer_.data() + used_, &v, sizeof v);
  used_ += sizeof v;
}

void PcapWriter::append_u16(uint16_t v) noexcept {
  std::memcpy(buffer_.data() + used_, &v, sizeof v);
  used_ += sizeof v;
}

bool PcapWriter::write(Bytes frame, PcapTimestamp ts) {
  if (!fd_ || stopped_) {
    ++dropped_;
    return false;
  }
  const size_t incl = std::min<size_t>(frame.size(), snaplen_);
  const size_t record = kRecordHeaderLen + incl;
  if (max_size_ != 0 && file_bytes_ + record > max_size_) {
    stopped_ = true;
    ++dropped_;
    MOAT_LOG(info, "pcap: max_size %llu bytes reached, capture stopped", static_cast<unsigned long long>(max_size_));
    return false;
  }
  if (record > buffer_.size() - used_) {
    if (!flush()) {
      ++dropped_;
      return false;
    }
  }
  append_u32(ts.sec);
  append_u32(ts.usec);
  append_u32(static_cast<uint32_t>(incl));
  append_u32(static_cast<uint32_t>(frame.size()));
  if (incl != 0) std::memcpy(buffer_.data() + used_, frame.data(), incl);
  used_ += incl;
  file_bytes_ += record;
  ++records_;
  ++buffered_records_;
  return true;
}

Status PcapWriter::flush() {
  if (!fd_ || used_ == 0) return {};
  size_t off = 0;
  while (off < used_) {
    const ssize_t n = ::write(fd_.get(), buffer_.data() + off, used_ - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const Errno e = n < 0 ? Errno::last() : Errno{EIO};
      ++write_failures_;
      dropped_ += buffered_records_;
      used_ = 0;
      buffered_records_ = 0;
      // A partial record may now be in the file; appending more would misalign every
      // later record, so the capture ends here.
      if (!stopped_) MOAT_LOG(error, "pcap: write failed, capture stopped: %s", e.message());
      stopped_ = true;
      return unexpected(e);
    }
    off += static_cast<size_t>(n);
  }
  used_ = 0;
  buffered_records_ = 0;
  return {};
}

Status PcapWriter::close() {
  if (!fd_) return {};
  Status s = flush();
  fd_.reset();
  return s;
}

// ---- PcapTap ----

PcapTap::PcapTap(std::unique_ptr<FrameTransport> inner, std::optional<PcapWriter> writer)
    : inner_(std::move(inner)), writer_(std::move(writer)), csum_copy_(kMaxFrameLen) {
  MOAT_CHECK(inner_ != nullptr);
}

void PcapTap::start(PcapWriter writer) {
  writer_.reset();  // the destructor flushes and closes the previous file
  writer_.emplace(std::move(writer));
}

Status PcapTap::stop() {
  if (!writer_) return {};
  Status s = writer_->close();
  writer_.reset();
  return s;
}

Status PcapTap::flush_capture() { return writer_ ? writer_->flush() : Status{}; }

Result<size_t> PcapTap::receive(FunctionRef<void(Bytes)> on_frame, size_t max_frames) {
  if (!writer_) return inner_->receive(on_frame, max_frames);
  // A stack lambda behind FunctionRef: no allocation per frame.
  auto record_then_deliver = [this, &on_frame](Bytes frame) {
    writer_->write(frame);
    on_frame(frame);
  };
  return inner_->receive(record_then_deliver, max_frames);
}

bool PcapTap::send(Bytes frame) {
  const bool accepted = inner_->send(frame);
  if (accepted && writer_) writer_->write(frame);
  return accepted;
}

bool PcapTap::send_offloaded(Bytes frame, const VnetHeader& h) {
  const bool accepted = inner_->send_offloaded(frame, h);
  if (!accepted || !writer_) return accepted;
  if (h.needs_csum() && frame.size() <= csum_copy_.size()) {
    // Record what the guest's stack sees once the device completed the checksum.
    MutBytes copy(csum_copy_.data(), frame.size());
    std::memcpy(copy.data(), frame.data(), frame.size());
    if (complete_checksum(copy, h.csum_start, h.csum_offset)) {
      writer_->write(copy);
      return accepted;
    }
  }
  writer_->write(frame);
  return accepted;
}

}  // namespace moat::transport
