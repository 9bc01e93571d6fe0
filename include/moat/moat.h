/*
 * moat.h — the C ABI of moat (SPEC R-ABI, R-TR-7): embed one or more user-space network
 * gateways in a process (a VMM, a sandbox runtime) and exchange Ethernet frames with each
 * through in-process rings.
 *
 * Model
 *   moat_gateway_new()   parses and validates a TOML or JSON config (the same schema as
 *                        `moat --config`), binds published ports, allocates the rings.
 *   moat_gateway_attach_fd() (optional, before start) uses a TAP or socket fd as the guest
 *                        link instead of the rings.
 *   moat_gateway_start() spawns the gateway's own event-loop thread (one per gateway).
 *   moat_push_frame()    guest -> moat: copies one frame into the from-guest ring.
 *   moat_pull_frame()    moat -> guest: copies the oldest to-guest frame out.
 *   moat_rx_eventfd()    an eventfd that is readable while frames may await a pull.
 *   moat_stats_json(), moat_policy_update(), moat_publish(), moat_unpublish(), moat_control():
 *                        control calls, applied on the loop thread.
 *   moat_gateway_stop() / moat_gateway_free(): stop (resets open flows), join, release.
 *
 * Frames are Ethernet II, 14..65550 bytes (R-TR-1), each preceded by a virtio-net header of
 * opts.vnet_hdr_len bytes (0 = no header; 10 = legacy `struct virtio_net_hdr`; 12 = virtio
 * 1.x with num_buffers) in both directions. The guest link MTU defaults to 1500 (R-ADDR-1
 * for in-process rings); set net.mtu or opts.mtu.
 *
 * virtio-net header and offloads (R-TR-6), only with opts.vnet_hdr_len 10 or 12:
 *   push: the header describes the frame as a guest driver wrote it. NEEDS_CSUM (a partial
 *         L4 checksum) and GSO (TCPV4/TCPV6 super-frames, UDP/UFO) are accepted as one
 *         frame; UDP_L4 (USO) is split into datagrams of gso_size; an unknown gso_type or a
 *         header that does not fit its frame drops the frame (counter drop.vnet_hdr; the push
 *         itself returns MOAT_OK because the frame was taken).
 *   pull: every frame starts with a header. It is all zero (checksums complete, frame ≤
 *         MTU + 14) unless opts.offloads says the guest accepts more: MOAT_OFF_CSUM allows
 *         partial checksums (NEEDS_CSUM), MOAT_OFF_TSO4/TSO6 TCP super-frames of up to 64 KiB
 *         with gso_size = the guest's MSS. num_buffers is written as 0.
 *   The lengths of moat_push_frame() / moat_pull_frame() include the header.
 *
 * Threading (R-ABI-3)
 *   Every function is thread-safe, with these rules:
 *   - moat_push_frame() has a single producer: calls for one gateway must not overlap.
 *   - moat_pull_frame() has a single consumer: calls for one gateway must not overlap.
 *     Push and pull may run concurrently on different threads, and concurrently with the
 *     loop thread and with the control calls; they never take a lock and never block.
 *   - Control calls (start, attach_fd, stats, policy update, publish, unpublish, control,
 *     stop) serialise on a per-gateway mutex.
 *     Those that need the loop thread post a request to it and wait for it to run (the loop
 *     never blocks, so that is at most one loop iteration).
 *   - moat_gateway_free() must be the last call on a gateway: no other call may be in
 *     flight or follow it.
 *   - Callbacks (terminate_cb, log_cb, audit_cb) run on the gateway's loop thread (log_cb
 *     and audit_cb also on a caller's thread for what a call logs or audits there while no
 *     loop thread runs; see the fields); they must not block and must not call back into
 *     the same gateway.
 *
 * Errors
 *   Functions return MOAT_OK (0) or a negative MOAT_E* code. Where a moat_error* is taken
 *   (it may be NULL) it receives the code and a one-line message in the format of SPEC §5.2,
 *   e.g. "moat: error: config:3:7: tcp.connect_timeout: \"30\" needs a unit (e.g. \"30s\")";
 *   several errors are separated by '\n' (truncated to fit). No C++ exception, abort() or
 *   exit() crosses this boundary, and library mode installs no signal handler, no seccomp
 *   filter and changes no privilege or resource limit.
 *
 * Memory
 *   Strings returned through char** are allocated by moat; release them with moat_free().
 *   Frame buffers passed in are only read (push) or written (pull) during the call.
 */
#ifndef MOAT_MOAT_H
#define MOAT_MOAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MOAT_BUILDING_LIBRARY)
#define MOAT_API __attribute__((visibility("default")))
#else
#define MOAT_API
#endif

/* ABI version of this header; moat_abi_version() returns the library's. They must match. */
#define MOAT_ABI_VERSION 1
/* moat release this header comes from. */
#define MOAT_VERSION_MAJOR 0
#define MOAT_VERSION_MINOR 1
#define MOAT_VERSION_PATCH 0

/* Return codes. */
#define MOAT_OK 0
#define MOAT_EAGAIN (-1)  /* ring full (push) or empty (pull); try again later */
#define MOAT_EINVAL (-2)  /* bad argument: NULL handle/pointer, bad length, bad option */
#define MOAT_ENOSPC (-3)  /* pull: buffer too small; *len = required length, frame kept */
#define MOAT_ENOMEM (-4)  /* allocation failed */
#define MOAT_ESTATE (-5)  /* not allowed in the gateway's current state (e.g. start twice) */
#define MOAT_ECONFIG (-6) /* invalid config or policy; the message says where and why */
#define MOAT_EIO (-7)     /* system failure (thread, eventfd, socket) or loop not answering */

/* Input formats for moat_gateway_new() and moat_policy_update(). */
#define MOAT_FMT_TOML 0
#define MOAT_FMT_JSON 1
#define MOAT_FMT_RULES 2 /* policy only: rule strings (R-POL-15), comma- or newline-separated, # comments */

/* Offload bits for moat_gateway_opts.offloads (R-TR-6): what the guest accepts in frames it
 * pulls. Non-zero needs opts.vnet_hdr_len 10 or 12. */
#define MOAT_OFF_CSUM 0x1u
#define MOAT_OFF_TSO4 0x2u
#define MOAT_OFF_TSO6 0x4u
#define MOAT_OFF_USO 0x8u

typedef struct moat_gateway moat_gateway; /* opaque */

typedef struct moat_error {
  int code;           /* the MOAT_E* code also returned */
  char message[512];  /* NUL-terminated §5.2 line(s); empty on success */
} moat_error;

/* Why the loop thread ended on its own (terminate_cb). */
#define MOAT_TERM_LINK_FAILED 1 /* the guest link failed (an attached fd's read/write error) */
#define MOAT_TERM_LINK_CLOSED 2 /* an attached fd reached its end (EOF, ECONNRESET, the TAP went away) */

/* Kinds for moat_gateway_attach_fd(). */
#define MOAT_FD_TAP 1    /* a TAP device fd (IFF_TAP | IFF_NO_PI; with IFF_VNET_HDR its header is kept) */
#define MOAT_FD_STREAM 2 /* a connected SOCK_STREAM socket with QEMU framing (4-byte BE length) */
#define MOAT_FD_DGRAM 3  /* a connected SOCK_DGRAM / SOCK_SEQPACKET socket: one frame per datagram */

/*
 * Options for moat_gateway_new(). Zero-initialise, set struct_size = sizeof(moat_gateway_opts),
 * then set what you need; zero means "default". A newer caller's larger struct is accepted as
 * long as the fields this library does not know are zero.
 */
typedef struct moat_gateway_opts {
  size_t struct_size;
  uint32_t vnet_hdr_len; /* bytes of virtio-net header on every frame: 0 (none), 10 or 12 */
  uint32_t offloads;     /* MOAT_OFF_* the guest accepts in pulled frames; needs a header */
  uint32_t ring_frames;  /* frames per ring and direction; 0 = 1024; 1..65536 */
  uint32_t mtu;          /* guest link MTU; 0 = net.mtu from the config, else 1500 */
  const char *operator_config; /* R-MT-1 operator config path: NULL (not supported in this build) */
  /* This gateway's log lines ("moat: info: ...", no newline; level 0=error..4=trace) instead
   * of stderr. Runs on the loop thread, and on the calling thread for lines a call into this
   * gateway logs there (moat_gateway_new's warnings, "published ..."). NULL = stderr. */
  void (*log_cb)(void *userdata, int level, const char *line);
  /* Audit events (R-OBS-3), one JSON object per call (no newline), in addition to audit.file
   * and with the same audit.events filter. Runs on the loop thread; events emitted while no
   * loop thread runs (gateway_start in moat_gateway_new, gateway_stop in moat_gateway_stop,
   * config_change before start) run on the calling thread. May be NULL. */
  void (*audit_cb)(void *userdata, const char *json_line);
  /* The loop thread ended without moat_gateway_stop() (reason MOAT_TERM_*). Runs on the loop
   * thread. May be NULL. */
  void (*terminate_cb)(void *userdata, int reason);
  void *userdata;
  size_t ring_bytes; /* bytes of frame data per ring and direction; 0 = 8 MiB; 65550..256 MiB */
} moat_gateway_opts;

/* The library's MOAT_ABI_VERSION. Thread-safe, no state. */
MOAT_API uint32_t moat_abi_version(void);

/*
 * Creates a stopped gateway from a config document (`cfg`, `len` bytes, need not be
 * NUL-terminated; NULL with len 0 = all defaults) in `fmt` MOAT_FMT_TOML or MOAT_FMT_JSON.
 * `opts` may be NULL. Validation finishes before any side effect; on failure nothing is left
 * behind, NULL is returned and `err` (may be NULL) gets MOAT_ECONFIG/EINVAL/ENOMEM/EIO and the
 * message. The caller owns the result; release it with moat_gateway_free().
 * Frames may be pushed before moat_gateway_start(); they wait in the ring.
 */
MOAT_API moat_gateway *moat_gateway_new(const char *cfg, size_t len, int fmt, const moat_gateway_opts *opts,
                                        moat_error *err);

/* Spawns the loop thread. MOAT_ESTATE if already started or stopped; MOAT_EIO if the thread
 * cannot be created. */
MOAT_API int moat_gateway_start(moat_gateway *gw, moat_error *err);

/*
 * Makes `fd` the gateway's guest link instead of the rings, with the transports of
 * `moat serve --fd` (R-TR-5): `kind` MOAT_FD_TAP, MOAT_FD_STREAM or MOAT_FD_DGRAM, which must
 * match what the fd is (else MOAT_EINVAL with a message). Only before moat_gateway_start()
 * and only once (MOAT_ESTATE otherwise). A TAP opened with IFF_VNET_HDR keeps its own header
 * size (TUNGETVNETHDRSZ, 10 or 12) and gets opts.offloads with TUNSETOFFLOAD (MOAT_EIO if it
 * refuses them); socket fds carry plain frames, so they need opts.vnet_hdr_len 0
 * (MOAT_EINVAL otherwise). Ownership: the library duplicates `fd` (F_DUPFD_CLOEXEC) and closes its
 * duplicate at stop; the caller keeps and may close its own (for a socket, the link ends
 * only when every duplicate of the peer is closed). The shared file description is set
 * O_NONBLOCK. Afterwards moat_push_frame(), moat_pull_frame() and moat_rx_eventfd() return
 * MOAT_ESTATE. When the fd reaches its end the loop thread ends and terminate_cb gets
 * MOAT_TERM_LINK_CLOSED (MOAT_TERM_LINK_FAILED for another error); then call
 * moat_gateway_free(). Control call (serialised with the others).
 */
MOAT_API int moat_gateway_attach_fd(moat_gateway *gw, int fd, int kind, moat_error *err);

/*
 * Guest -> moat: copies one Ethernet frame into the from-guest ring (single producer).
 * MOAT_OK: taken. MOAT_EAGAIN: the ring is full and the frame was NOT taken; drop it as a
 * lossy NIC would rather than stall the virtqueue (R-TR-7). MOAT_EINVAL: NULL arguments, or a
 * length outside vnet_hdr_len + 14..65550 (counted as drop.runt / drop.oversize).
 * MOAT_ESTATE: stopped, or an fd is the guest link (moat_gateway_attach_fd).
 */
MOAT_API int moat_push_frame(moat_gateway *gw, const void *frame, size_t len);

/*
 * moat -> guest: copies the oldest to-guest frame into buf (single consumer).
 * MOAT_OK: *len = its length (with the virtio-net header, if any). MOAT_EAGAIN: nothing to
 * pull. MOAT_ENOSPC: cap is too small, *len = the required length (header included) and the
 * frame stays at the head. MOAT_EINVAL: NULL arguments. MOAT_ESTATE: an fd is the guest link.
 * Frames already in the ring can still be pulled after moat_gateway_stop().
 */
MOAT_API int moat_pull_frame(moat_gateway *gw, void *buf, size_t cap, size_t *len);

/*
 * An eventfd (owned by the gateway; do not close or read-modify it) that polls readable while
 * frames may await moat_pull_frame(). Pull until MOAT_EAGAIN before polling again: the pull
 * that finds the ring empty resets it, so no wake-up is lost. Negative MOAT_EINVAL for NULL,
 * MOAT_ESTATE when an fd is the guest link.
 */
MOAT_API int moat_rx_eventfd(moat_gateway *gw);

/*
 * Every counter (R-OBS-1/2) as one JSON object {"gateway": NAME, "counters": {"link.from_guest.frames":
 * N, ...}, "drops": {"runt": N, ...}, "drop.total": N, "policy.generation": N (live policy swaps;
 * absent once stopped), "rings": {"from_guest": {"frames", "capacity_frames", "capacity_bytes"},
 * "to_guest": {...}}}, read on the loop thread when it runs. *json is allocated; release it with
 * moat_free(). MOAT_EINVAL for NULL arguments, MOAT_ENOMEM.
 */
MOAT_API int moat_stats_json(moat_gateway *gw, char **json);

/*
 * Replaces the policy live (R-POL-12). `policy` (`len` bytes) is either rule strings
 * (MOAT_FMT_RULES: they replace the gateway's rules; profiles and defaults stay) or a TOML/JSON
 * document whose [policy] table replaces the gateway's policy (rules, profiles, defaults,
 * sni_requires_pin). The new policy is fully validated first, then swapped in on the loop
 * thread; new decisions use it as soon as this returns MOAT_OK. On failure (MOAT_ECONFIG with
 * the §5.2 message in err) the old policy stays. `revalidate` (reset established flows the
 * new policy denies) is not supported in this build: non-zero returns MOAT_EINVAL.
 */
MOAT_API int moat_policy_update(moat_gateway *gw, const char *policy, size_t len, int fmt, int revalidate,
                                moat_error *err);

/*
 * Publishes a port at runtime (R-PUB-6): `spec` is the `-p` syntax of R-PUB-1,
 * "[BIND:]HOSTPORT[-HOSTPORT2]:GUESTPORT[-GUESTPORT2][/tcp|/udp]" (BIND defaults to 127.0.0.1).
 * Every port of the spec is bound (on the loop thread once started) or none is. Errors, with
 * a §5.2 line in err: MOAT_ECONFIG (syntax), MOAT_EINVAL (NULL, or the host port is already
 * published), MOAT_EIO (bind/listen failed; the message names the spec and errno, with the
 * ip_unprivileged_port_start hint for EACCES), MOAT_ESTATE (stopped). Host port 0 picks an
 * ephemeral port; moat_control "publish" reports it. Control call (serialised).
 */
MOAT_API int moat_publish(moat_gateway *gw, const char *spec, moat_error *err);

/*
 * Closes the listeners of a published spec (R-PUB-6): `spec` must equal a published one in
 * protocol, bind address, host and guest ports (text differences like a default "/tcp" do not
 * matter). TCP connections already accepted continue; the UDP peer mappings of the listener
 * end. MOAT_EINVAL with "no such published port" when nothing matches; MOAT_ECONFIG for a
 * syntax error; MOAT_ESTATE when stopped. Control call (serialised).
 */
MOAT_API int moat_unpublish(moat_gateway *gw, const char *spec, moat_error *err);

/*
 * One control request (SPEC R-CTL-2/3), the protocol of the control socket without the socket:
 * `request_json` is a NUL-terminated JSON object {"id":N,"method":M,"params":{...}} (at most
 * 1 MiB); *response_json receives {"id":N,"result":...} or {"id":N,"error":{"code":C,
 * "message":S}} with C one of unknown_method, invalid_params, invalid_config, not_found,
 * conflict, limit, internal. Release it with moat_free().
 * Returns MOAT_OK whenever a response was produced, error responses included; MOAT_EINVAL
 * for NULL arguments (then *response_json is NULL), MOAT_ENOMEM.
 * Methods in this build:
 *   version          {"moat","abi","kernel","features"}
 *   stats            the moat_stats_json() object
 *   publish          params {"spec": "8080:80/tcp" | {"proto","bind","host_port","guest_port"}}
 *                    -> {"listeners": ["tcp 127.0.0.1:8080 -> guest port 80"]}
 *   unpublish        params {"spec": ..., "kill"?: false} -> {"closed": N}; kill=true (reset
 *                    established flows) is not supported: invalid_params
 *   policy.get       {"rules":[{"index","origin","rule","label"?}], "default_egress",
 *                    "default_ingress", "profiles", "sni_requires_pin", "floor": null, "warnings"}
 *   policy.set       params {"policy": "rule strings" | ["rule", ...] | {policy table} |
 *                    "TOML/JSON text", "format"?: "rules"|"toml"|"json"} -> {"rules": N}
 *   policy.explain   params {"dst": "HOST:PORT[/tcp|udp|icmp]", "sni"?, "ip"?, "pin"?: ["NAME=IP"],
 *                    "ingress"?: bool, "src"?} -> {"lines": [...], "allowed", "verdict", "rule"}
 *                    (the report of `moat policy explain`)
 *   dns.pins         params {"name"?, "address"?} -> {"pins": [{"name","address","expires_in_s"}],
 *                    "truncated"} (live R-DNS-6 pins, sorted, at most 10000)
 *   audit.reopen     -> {"reopened": true}; not_found without audit.file
 *   shutdown         moat_gateway_stop(), then {"stopped": true}
 * The other R-CTL-3 methods (flows, policy.reload, secrets.*, rate.set, pcap.*,
 * events.subscribe) answer unknown_method "not supported by this build". publish, unpublish
 * and policy.set emit the audit event config_change (by "control"); moat_publish,
 * moat_unpublish and moat_policy_update emit it with by "abi".
 * Control call: serialised with the others; must not be called from a callback.
 */
MOAT_API int moat_control(moat_gateway *gw, const char *request_json, char **response_json);

/*
 * Secrets and TLS interception (R-ABI-2; R-SEC, R-TLS). This build has no secrets (the
 * config rejects the secrets.* keys); it has TLS interception (tls.*):
 *   moat_secret_rotate  MOAT_ESTATE "no secret NAME is configured" (MOAT_EINVAL for NULL
 *                       gw/name, or NULL value with len != 0).
 *   moat_guest_env      MOAT_OK with *env_lines = "" (no secret, no "NAME=placeholder" line);
 *                       release with moat_free(). MOAT_EINVAL for NULL.
 *   moat_ca_pem         with tls.intercept on: MOAT_OK and *pem = the gateway's interception
 *                       CA certificate as PEM text (NUL-terminated; release with moat_free()),
 *                       for the VM integrator to install in the guest's trust store
 *                       (R-TLS-10). The CA is fixed when the gateway is created (tls.ca_cert/
 *                       ca_key, an ephemeral CA, or the persistent one), so every call returns
 *                       the same text. Without interception: MOAT_ESTATE, *pem = NULL.
 *                       MOAT_EINVAL for NULL.
 * Thread-safe; no state is touched.
 */
MOAT_API int moat_secret_rotate(moat_gateway *gw, const char *name, const void *value, size_t len, moat_error *err);
MOAT_API int moat_guest_env(moat_gateway *gw, char **env_lines);
MOAT_API int moat_ca_pem(moat_gateway *gw, char **pem);

/* Releases memory moat returned (NULL is fine). */
MOAT_API void moat_free(void *p);

/*
 * Stops the loop thread and joins it (≤ 2 s); open flows are reset on both sides.
 * Idempotent; a gateway never started just becomes stopped. Frames still in the to-guest ring
 * can be pulled; pushes return MOAT_ESTATE.
 */
MOAT_API void moat_gateway_stop(moat_gateway *gw);

/* moat_gateway_stop(), then releases everything (sockets, rings, eventfds). NULL is fine. */
MOAT_API void moat_gateway_free(moat_gateway *gw);

#ifdef __cplusplus
}
#endif

#endif /* MOAT_MOAT_H */
