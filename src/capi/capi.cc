// The C ABI (include/moat/moat.h): argument checks, option structs and error codes around
// capi::EmbeddedGateway.
//
// This is the one place in src/ that uses try/catch (STYLE forbids it elsewhere): nothing
// below throws on purpose, but the standard library may (std::bad_alloc, std::system_error
// from std::thread), and R-ABI-1 forbids any exception crossing into C. Each entry point
// that may allocate catches everything and turns it into MOAT_ENOMEM / MOAT_EIO.
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "capi/embedded.h"
#include "app/app.h"
#include "config/loader.h"
#include "moat/moat.h"

struct moat_gateway {
  std::unique_ptr<moat::capi::EmbeddedGateway> gw;
};

namespace {

using moat::capi::CallError;

void set_error(moat_error* err, int code, std::string_view msg) noexcept {
  if (!err) return;
  err->code = code;
  size_t n = std::min(msg.size(), sizeof err->message - 1);
  // Do not cut a UTF-8 sequence in half.
  if (n < msg.size())
    while (n > 0 && (static_cast<unsigned char>(msg[n]) & 0xc0) == 0x80) --n;
  std::memcpy(err->message, msg.data(), n);
  err->message[n] = '\0';
}

void clear_error(moat_error* err) noexcept { set_error(err, MOAT_OK, ""); }

int code_of(const CallError& e) noexcept {
  switch (e.kind) {
    case CallError::Kind::invalid: return MOAT_EINVAL;
    case CallError::Kind::config: return MOAT_ECONFIG;
    case CallError::Kind::state: return MOAT_ESTATE;
    case CallError::Kind::io: return MOAT_EIO;
    case CallError::Kind::not_found: return MOAT_EINVAL;
    case CallError::Kind::conflict: return MOAT_EINVAL;
  }
  return MOAT_EIO;
}

int fail(moat_error* err, int code, std::string_view msg) noexcept {
  set_error(err, code, msg);
  return code;
}

/// Runs `body` (returns a MOAT_* code) so that no exception escapes.
template <class F>
int guarded(moat_error* err, F&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(err, MOAT_ENOMEM, "moat: error: out of memory");
  } catch (const std::exception& e) {
    std::string msg = "moat: error: internal failure: ";
    msg += e.what();
    return fail(err, MOAT_EIO, msg);
  } catch (...) {
    return fail(err, MOAT_EIO, "moat: error: internal failure");
  }
}

char* dup_string(const std::string& s) noexcept {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) return nullptr;
  std::memcpy(p, s.data(), s.size() + 1);
  return p;
}

/// Copies the caller's options, accepting a smaller (older) or larger (newer) struct; a
/// newer one must leave the fields this library does not know at zero.
int read_opts(const moat_gateway_opts* in, moat_gateway_opts* out, moat_error* err) noexcept {
  std::memset(out, 0, sizeof *out);
  if (!in) return MOAT_OK;
  constexpr size_t kMaxStruct = 4096;
  if (in->struct_size < sizeof(size_t) || in->struct_size > kMaxStruct)
    return fail(err, MOAT_EINVAL, "moat: error: opts.struct_size: " + std::to_string(in->struct_size) +
                                      " is not a moat_gateway_opts size; set it to sizeof(moat_gateway_opts)");
  std::memcpy(out, in, std::min(in->struct_size, sizeof *out));
  const auto* extra = reinterpret_cast<const unsigned char*>(in);
  for (size_t i = sizeof *out; i < in->struct_size; ++i)
    if (extra[i] != 0)
      return fail(err, MOAT_EINVAL, "moat: error: opts: fields beyond the " + std::to_string(sizeof *out) +
                                        " bytes this library knows are set; upgrade libmoat");
  if (out->vnet_hdr_len != 0 && out->vnet_hdr_len != 10 && out->vnet_hdr_len != 12)
    return fail(err, MOAT_EINVAL, "moat: error: opts.vnet_hdr_len: " + std::to_string(out->vnet_hdr_len) +
                                      " is not 0, 10 (legacy) or 12 (virtio 1.x)");
  constexpr uint32_t kKnownOffloads = MOAT_OFF_CSUM | MOAT_OFF_TSO4 | MOAT_OFF_TSO6 | MOAT_OFF_USO;
  if ((out->offloads & ~kKnownOffloads) != 0)
    return fail(err, MOAT_EINVAL, "moat: error: opts.offloads: unknown bits " + std::to_string(out->offloads & ~kKnownOffloads) +
                                      "; use MOAT_OFF_CSUM|TSO4|TSO6|USO");
  if (out->offloads != 0 && out->vnet_hdr_len == 0)
    return fail(err, MOAT_EINVAL,
                "moat: error: opts.offloads: offloads are described by a virtio-net header; set opts.vnet_hdr_len to 10 or 12");
  if (out->operator_config)
    return fail(err, MOAT_EINVAL, "moat: error: opts.operator_config: not supported by this build; use NULL");
  if (out->ring_frames > moat::transport::RingConfig::kMaxFrames)
    return fail(err, MOAT_EINVAL, "moat: error: opts.ring_frames: " + std::to_string(out->ring_frames) +
                                      " is above the limit of 65536");
  if (out->ring_bytes != 0 &&
      (out->ring_bytes < moat::transport::kMaxFrameLen || out->ring_bytes > moat::transport::RingConfig::kMaxBytes))
    return fail(err, MOAT_EINVAL, "moat: error: opts.ring_bytes: " + std::to_string(out->ring_bytes) +
                                      " is outside 65550..268435456 (one maximal frame must fit)");
  return MOAT_OK;
}

}  // namespace

extern "C" {

uint32_t moat_abi_version(void) { return MOAT_ABI_VERSION; }

moat_gateway* moat_gateway_new(const char* cfg, size_t len, int fmt, const moat_gateway_opts* opts, moat_error* err) {
  moat_gateway* result = nullptr;
  guarded(err, [&]() -> int {
    clear_error(err);
    if (fmt != MOAT_FMT_TOML && fmt != MOAT_FMT_JSON)
      return fail(err, MOAT_EINVAL, "moat: error: fmt: " + std::to_string(fmt) + " is not MOAT_FMT_TOML or MOAT_FMT_JSON");
    if (!cfg && len != 0) return fail(err, MOAT_EINVAL, "moat: error: cfg: NULL with a non-zero length");
    moat_gateway_opts o;
    if (int rc = read_opts(opts, &o, err); rc != MOAT_OK) return rc;

    moat::config::Config c;
    if (len != 0) {
      auto f = fmt == MOAT_FMT_JSON ? moat::config::Format::json : moat::config::Format::toml;
      if (auto r = moat::config::load_config_text(std::string_view(cfg, len), f, "config", c); !r) {
        std::string msg;
        for (const auto& e : r.error()) {
          if (!msg.empty()) msg += '\n';
          msg += e.format();
        }
        return fail(err, MOAT_ECONFIG, msg);
      }
    }
    // Finished (families, R-ADDR-2, dns.block*, net.impair) by EmbeddedGateway::create()
    // through app::finish_config(), the step `moat run` uses.
    moat::capi::EmbedOptions eo;
    if (o.ring_frames) eo.ring.frames = o.ring_frames;
    if (o.ring_bytes) eo.ring.bytes = o.ring_bytes;
    eo.mtu = o.mtu;
    eo.link.vnet_hdr_len = o.vnet_hdr_len;
    eo.link.guest_offloads = moat::transport::OffloadMask(o.offloads);
    if (o.log_cb) {
      auto cb = o.log_cb;
      void* ud = o.userdata;
      eo.on_log = [cb, ud](int level, const char* line) { cb(ud, level, line); };
    }
    if (o.audit_cb) {
      auto cb = o.audit_cb;
      void* ud = o.userdata;
      eo.on_audit = [cb, ud](const std::string& line) { cb(ud, line.c_str()); };
    }
    if (o.terminate_cb) {
      auto cb = o.terminate_cb;
      void* ud = o.userdata;
      eo.on_terminate = [cb, ud](int reason) { cb(ud, reason); };
    }
    auto g = moat::capi::EmbeddedGateway::create(std::move(c), eo);
    if (!g) return fail(err, code_of(g.error()), g.error().message);
    result = new moat_gateway{std::move(g).value()};
    return MOAT_OK;
  });
  return result;
}

int moat_gateway_start(moat_gateway* gw, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (auto r = gw->gw->start(); !r) return fail(err, code_of(r.error()), r.error().message);
    return MOAT_OK;
  });
}

int moat_gateway_attach_fd(moat_gateway* gw, int fd, int kind, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (fd < 0) return fail(err, MOAT_EINVAL, "moat: error: attach_fd: " + std::to_string(fd) + " is not a file descriptor");
    moat::app::FdType t;
    switch (kind) {
      case MOAT_FD_TAP: t = moat::app::FdType::tap; break;
      case MOAT_FD_STREAM: t = moat::app::FdType::stream; break;
      case MOAT_FD_DGRAM: t = moat::app::FdType::dgram; break;
      default:
        return fail(err, MOAT_EINVAL, "moat: error: attach_fd: kind " + std::to_string(kind) +
                                          " is not MOAT_FD_TAP, MOAT_FD_STREAM or MOAT_FD_DGRAM");
    }
    if (auto r = gw->gw->attach_fd(fd, t); !r) return fail(err, code_of(r.error()), r.error().message);
    return MOAT_OK;
  });
}

int moat_push_frame(moat_gateway* gw, const void* frame, size_t len) {
  if (!gw || !frame) return MOAT_EINVAL;
  if (!gw->gw->accepting_frames()) return MOAT_ESTATE;
  using R = moat::transport::RingTransport::PushResult;
  switch (gw->gw->ring().push_from_guest(moat::Bytes(static_cast<const std::byte*>(frame), len))) {
    case R::ok: return MOAT_OK;
    case R::full: return MOAT_EAGAIN;
    case R::invalid: return MOAT_EINVAL;
  }
  return MOAT_EINVAL;
}

int moat_pull_frame(moat_gateway* gw, void* buf, size_t cap, size_t* len) {
  if (!gw || !len || (!buf && cap != 0)) return MOAT_EINVAL;
  if (gw->gw->fd_attached()) return MOAT_ESTATE;
  using R = moat::transport::RingTransport::PullResult;
  switch (gw->gw->ring().pull_to_guest(moat::MutBytes(static_cast<std::byte*>(buf), cap), len)) {
    case R::ok: return MOAT_OK;
    case R::empty: return MOAT_EAGAIN;
    case R::too_small: return MOAT_ENOSPC;
  }
  return MOAT_EIO;
}

int moat_rx_eventfd(moat_gateway* gw) {
  if (!gw) return MOAT_EINVAL;
  if (gw->gw->fd_attached()) return MOAT_ESTATE;
  return gw->gw->ring().to_guest_fd();
}

int moat_stats_json(moat_gateway* gw, char** json) {
  return guarded(nullptr, [&]() -> int {
    if (!gw || !json) return MOAT_EINVAL;
    *json = nullptr;
    auto s = gw->gw->stats_json();
    if (!s) return code_of(s.error());
    *json = dup_string(*s);
    return *json ? MOAT_OK : MOAT_ENOMEM;
  });
}

int moat_policy_update(moat_gateway* gw, const char* policy, size_t len, int fmt, int revalidate, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (!policy && len != 0) return fail(err, MOAT_EINVAL, "moat: error: policy: NULL with a non-zero length");
    using F = moat::capi::EmbeddedGateway::PolicyFormat;
    F f;
    switch (fmt) {
      case MOAT_FMT_TOML: f = F::toml; break;
      case MOAT_FMT_JSON: f = F::json; break;
      case MOAT_FMT_RULES: f = F::rules; break;
      default:
        return fail(err, MOAT_EINVAL, "moat: error: fmt: " + std::to_string(fmt) +
                                          " is not MOAT_FMT_TOML, MOAT_FMT_JSON or MOAT_FMT_RULES");
    }
    if (revalidate)
      return fail(err, MOAT_EINVAL,
                  "moat: error: revalidate: resetting established flows is not supported by this build; use 0");
    if (auto r = gw->gw->update_policy(std::string_view(policy ? policy : "", len), f); !r)
      return fail(err, code_of(r.error()), r.error().message);
    gw->gw->config_change("policy.set", "abi");
    return MOAT_OK;
  });
}

int moat_publish(moat_gateway* gw, const char* spec, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (!spec) return fail(err, MOAT_EINVAL, "moat: error: publish: NULL spec");
    if (auto r = gw->gw->publish(spec); !r) return fail(err, code_of(r.error()), r.error().message);
    gw->gw->config_change(std::string("publish ") + spec, "abi");
    return MOAT_OK;
  });
}

int moat_unpublish(moat_gateway* gw, const char* spec, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (!spec) return fail(err, MOAT_EINVAL, "moat: error: unpublish: NULL spec");
    if (auto r = gw->gw->unpublish(spec); !r) return fail(err, code_of(r.error()), r.error().message);
    gw->gw->config_change(std::string("unpublish ") + spec, "abi");
    return MOAT_OK;
  });
}

int moat_control(moat_gateway* gw, const char* request_json, char** response_json) {
  if (response_json) *response_json = nullptr;
  return guarded(nullptr, [&]() -> int {
    if (!gw || !request_json || !response_json) return MOAT_EINVAL;
    *response_json = dup_string(gw->gw->control(request_json));
    return *response_json ? MOAT_OK : MOAT_ENOMEM;
  });
}

int moat_secret_rotate(moat_gateway* gw, const char* name, const void* value, size_t len, moat_error* err) {
  return guarded(err, [&]() -> int {
    clear_error(err);
    if (!gw) return fail(err, MOAT_EINVAL, "moat: error: gateway: NULL handle");
    if (!name) return fail(err, MOAT_EINVAL, "moat: error: secret_rotate: NULL name");
    if (!value && len != 0) return fail(err, MOAT_EINVAL, "moat: error: secret_rotate: NULL value with a non-zero length");
    // This build has no secret substitution (R-SEC): the config rejects secrets.*, so no
    // gateway has a secret to rotate.
    return fail(err, MOAT_ESTATE,
                std::string("moat: error: secret_rotate: no secret \"") + name +
                    "\" is configured; this build has no secret substitution (secrets.* is rejected)");
  });
}

int moat_guest_env(moat_gateway* gw, char** env_lines) {
  if (env_lines) *env_lines = nullptr;
  return guarded(nullptr, [&]() -> int {
    if (!gw || !env_lines) return MOAT_EINVAL;
    // No secrets are configured (none can be in this build), so there are no placeholders.
    *env_lines = dup_string("");
    return *env_lines ? MOAT_OK : MOAT_ENOMEM;
  });
}

int moat_ca_pem(moat_gateway* gw, char** pem) {
  if (pem) *pem = nullptr;
  return guarded(nullptr, [&]() -> int {
    if (!gw || !pem) return MOAT_EINVAL;
    // R-TLS-10 "VM integrators get the PEM from moat_ca_pem()": the CA resolved when the
    // gateway was created (immutable, so no loop round trip). Without tls.intercept: no CA.
    const std::string* ca = gw->gw->ca_pem();
    if (!ca) return MOAT_ESTATE;
    *pem = dup_string(*ca);
    return *pem ? MOAT_OK : MOAT_ENOMEM;
  });
}

void moat_free(void* p) { std::free(p); }

void moat_gateway_stop(moat_gateway* gw) {
  if (!gw) return;
  guarded(nullptr, [&]() -> int {
    gw->gw->stop();
    return MOAT_OK;
  });
}

void moat_gateway_free(moat_gateway* gw) {
  if (!gw) return;
  guarded(nullptr, [&]() -> int {
    gw->gw->stop();
    return MOAT_OK;
  });
  delete gw;  // the handle is the C side's; STYLE's "no new/delete" applies inside moat
}

}  // extern "C"
