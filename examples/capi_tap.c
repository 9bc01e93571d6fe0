/*
 * moat-capi-tap — an example embedder of the moat C ABI (include/moat/moat.h).
 *
 * It plays the part of a VMM's network backend: the "guest NIC" is a TAP device (driven by a
 * kernel network stack, e.g. in a network namespace), and every frame the TAP produces is
 * pushed into an embedded moat gateway, every frame moat produces is pulled and written to
 * the TAP. One thread, one poll() over the TAP fd and moat_rx_eventfd().
 *
 *   moat-capi-tap --config FILE [--netns PATH] [--ifname NAME] [--ready-file FILE]
 *                 [--stats-file FILE] [--max-seconds N] [--attach 1] [--vnet-hdr 1]
 *                 [--control-in FIFO --control-out FILE]
 *
 * --config      TOML, or JSON when FILE ends in ".json" (the schema of `moat --config`)
 * --netns       create the TAP inside this network namespace (e.g. /run/netns/guest); moat's
 *               own sockets stay in the caller's namespace
 * --ifname      TAP name (default moat0); the caller configures addresses and routes
 * --ready-file  written once the gateway runs
 * --stats-file  moat_stats_json() written there on exit
 * --max-seconds exit after N seconds (default 3600); SIGTERM/SIGINT also stop it cleanly
 * --attach 1    hand the TAP fd to moat (moat_gateway_attach_fd) instead of bridging it to
 *               the rings; this program then only waits
 * --vnet-hdr 1  open the TAP with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM, TSO4, TSO6), and create
 *               the gateway with vnet_hdr_len 10 and the same offloads: virtio-net headers
 *               (partial checksums, TSO super-frames) pass between the TAP and the rings as is
 * --control-in  a FIFO of control requests, one JSON object per line (SPEC R-CTL-2); each
 * --control-out is answered with moat_control() and its response line appended to FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "moat/moat.h"

#define MAX_FRAME 65550

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t k;
  while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n == cap) {
      char *nb = cap < (16u << 20) ? realloc(buf, cap *= 2) : NULL;
      if (!nb) { free(buf); buf = NULL; }
      else buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int ok = fputs(text, f) >= 0;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Opens a TAP named ifname, inside the namespace at netns_path when given. */
static int open_tap(const char *netns_path, const char *ifname, int vnet_hdr) {
  int self_ns = -1, target_ns = -1, fd = -1;
  if (netns_path) {
    self_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    target_ns = open(netns_path, O_RDONLY | O_CLOEXEC);
    if (self_ns < 0 || target_ns < 0 || setns(target_ns, CLONE_NEWNET) != 0) {
      fprintf(stderr, "moat-capi-tap: %s: cannot enter: %s\n", netns_path, strerror(errno));
      goto out;
    }
  }
  fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (vnet_hdr ? IFF_VNET_HDR : 0);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      fprintf(stderr, "moat-capi-tap: TUNSETIFF %s: %s\n", ifname, strerror(errno));
      close(fd);
      fd = -1;
    } else if (vnet_hdr && ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)) != 0) {
      fprintf(stderr, "moat-capi-tap: TUNSETOFFLOAD: %s\n", strerror(errno));
      close(fd);
      fd = -1;
    }
  } else {
    fprintf(stderr, "moat-capi-tap: /dev/net/tun: %s\n", strerror(errno));
  }
  if (netns_path && setns(self_ns, CLONE_NEWNET) != 0) {
    fprintf(stderr, "moat-capi-tap: cannot return to the original namespace: %s\n", strerror(errno));
    if (fd >= 0) close(fd);
    fd = -1;
  }
out:
  if (self_ns >= 0) close(self_ns);
  if (target_ns >= 0) close(target_ns);
  return fd;
}

static volatile sig_atomic_t g_term_reason;
static void on_terminate(void *userdata, int reason) { (void)userdata; g_term_reason = reason; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  const char *config = NULL, *netns = NULL, *ifname = "moat0", *ready = NULL, *stats = NULL;
  double max_seconds = 3600;
  int attach = 0, vnet_hdr = 0;
  const char *control_in = NULL, *control_out = NULL;
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) { fprintf(stderr, "moat-capi-tap: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--config")) config = v;
    else if (!strcmp(a, "--netns")) netns = v;
    else if (!strcmp(a, "--ifname")) ifname = v;
    else if (!strcmp(a, "--ready-file")) ready = v;
    else if (!strcmp(a, "--stats-file")) stats = v;
    else if (!strcmp(a, "--max-seconds")) max_seconds = atof(v);
    else if (!strcmp(a, "--attach")) attach = atoi(v);
    else if (!strcmp(a, "--vnet-hdr")) vnet_hdr = atoi(v);
    else if (!strcmp(a, "--control-in")) control_in = v;
    else if (!strcmp(a, "--control-out")) control_out = v;
    else { fprintf(stderr, "moat-capi-tap: unknown option %s\n", a); return 2; }
  }
  if (moat_abi_version() != MOAT_ABI_VERSION) {
    fprintf(stderr, "moat-capi-tap: libmoat ABI %u, built against %d\n", moat_abi_version(), MOAT_ABI_VERSION);
    return 1;
  }

  size_t cfg_len = 0;
  char *cfg = NULL;
  int fmt = MOAT_FMT_TOML;
  if (config) {
    cfg = read_file(config, &cfg_len);
    if (!cfg) { fprintf(stderr, "moat: error: %s: cannot open: %s\n", config, strerror(errno)); return 2; }
    size_t n = strlen(config);
    if (n >= 5 && !strcmp(config + n - 5, ".json")) fmt = MOAT_FMT_JSON;
  }

  moat_error err;
  moat_gateway_opts opts;
  memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.terminate_cb = on_terminate;
  if (vnet_hdr) {
    opts.vnet_hdr_len = 10; /* the TAP default (no TUNSETVNETHDRSZ) */
    opts.offloads = MOAT_OFF_CSUM | MOAT_OFF_TSO4 | MOAT_OFF_TSO6;
  }
  moat_gateway *gw = moat_gateway_new(cfg, cfg_len, fmt, &opts, &err);
  free(cfg);
  if (!gw) { fprintf(stderr, "%s\n", err.message); return 2; }

  int tap = open_tap(netns, ifname, vnet_hdr);
  if (tap < 0) { moat_gateway_free(gw); return 1; }
  if (attach && moat_gateway_attach_fd(gw, tap, MOAT_FD_TAP, &err) != MOAT_OK) {
    fprintf(stderr, "%s\n", err.message);
    close(tap);
    moat_gateway_free(gw);
    return 1;
  }
  if (moat_gateway_start(gw, &err) != MOAT_OK) {
    fprintf(stderr, "%s\n", err.message);
    close(tap);
    moat_gateway_free(gw);
    return 1;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  /* Control requests: O_RDWR keeps the FIFO open (no EOF storm) while writers come and go. */
  int ctl = -1;
  if (control_in && control_out) {
    ctl = open(control_in, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (ctl < 0) fprintf(stderr, "moat-capi-tap: %s: %s\n", control_in, strerror(errno));
  }
  static char ctl_buf[65536];
  size_t ctl_len = 0;
  if (ready && write_file(ready, "ready\n") != 0) fprintf(stderr, "moat-capi-tap: cannot write %s\n", ready);

  static unsigned char buf[12 + MAX_FRAME + 1];
  unsigned long long to_moat = 0, to_tap = 0, push_full = 0, tap_full = 0, gso_to_moat = 0, gso_to_tap = 0;
  const double deadline = now_s() + max_seconds;
  struct pollfd pfd[3] = {{.fd = tap, .events = POLLIN}, {.fd = moat_rx_eventfd(gw), .events = POLLIN}, {.fd = -1, .events = POLLIN}};
  while (!g_stop && !g_term_reason && now_s() < deadline) {
    if (ctl >= 0) { /* complete request lines -> moat_control -> one response line each */
      ssize_t n = read(ctl, ctl_buf + ctl_len, sizeof ctl_buf - 1 - ctl_len);
      if (n > 0) ctl_len += (size_t)n;
      char *nl;
      while ((nl = memchr(ctl_buf, '\n', ctl_len)) != NULL) {
        *nl = '\0';
        char *resp = NULL;
        if (moat_control(gw, ctl_buf, &resp) == MOAT_OK) {
          FILE *f = fopen(control_out, "a");
          if (f) { fprintf(f, "%s\n", resp); fclose(f); }
        }
        moat_free(resp);
        size_t used = (size_t)(nl - ctl_buf) + 1;
        memmove(ctl_buf, nl + 1, ctl_len - used);
        ctl_len -= used;
      }
      if (ctl_len == sizeof ctl_buf - 1) ctl_len = 0; /* an over-long line: drop it */
    }
    if (attach) { /* moat reads and writes the TAP itself */
      struct pollfd c = {.fd = ctl, .events = POLLIN};
      poll(&c, ctl >= 0 ? 1 : 0, 200);
      continue;
    }
    pfd[2].fd = ctl;
    if (poll(pfd, ctl >= 0 ? 3 : 2, 200) < 0 && errno != EINTR) break;
    /* guest -> moat: up to 64 frames per wake-up, like moat's own TAP transport. */
    for (int i = 0; i < 64; ++i) {
      ssize_t n = read(tap, buf, sizeof buf);
      if (n <= 0) break;
      int rc = moat_push_frame(gw, buf, (size_t)n);
      if (rc == MOAT_OK) ++to_moat;
      if (rc == MOAT_OK && vnet_hdr && buf[1] != 0) ++gso_to_moat; /* gso_type: a super-frame */
      else if (rc == MOAT_EAGAIN) ++push_full; /* ring full: drop, as a lossy NIC would */
    }
    /* moat -> guest: until MOAT_EAGAIN (that pull also resets the eventfd). */
    for (;;) {
      size_t len = 0;
      int rc = moat_pull_frame(gw, buf, sizeof buf, &len);
      if (rc != MOAT_OK) break;
      if (vnet_hdr && len > 1 && buf[1] != 0) ++gso_to_tap;
      if (write(tap, buf, len) == (ssize_t)len) ++to_tap;
      else ++tap_full;
    }
  }

  if (stats) {
    char *json = NULL;
    if (moat_stats_json(gw, &json) == MOAT_OK) write_file(stats, json);
    moat_free(json);
  }
  if (g_term_reason) fprintf(stderr, "moat-capi-tap: the gateway ended on its own (reason %d)\n", (int)g_term_reason);
  fprintf(stderr, "moat-capi-tap: frames to moat %llu, to tap %llu, ring full %llu, tap full %llu\n", to_moat, to_tap,
          push_full, tap_full);
  if (vnet_hdr) fprintf(stderr, "moat-capi-tap: gso frames to moat %llu, to tap %llu\n", gso_to_moat, gso_to_tap);
  moat_gateway_free(gw);
  close(tap);
  if (ctl >= 0) close(ctl);
  return 0;
}
