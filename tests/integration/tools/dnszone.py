#!/usr/bin/env python3
"""A tiny authoritative DNS server for the DNS integration test (stdlib only).

Serves a fixed test zone over UDP and TCP on --bind/--port and appends one line per query
("udp NAME TYPE" / "tcp NAME TYPE") to --log. Names (case-insensitive):

  www.example.com      A 93.184.216.34 (or --www-addr), AAAA 2606:2800:220:1::1
  alias.example.com    CNAME www.example.com (+ the A/AAAA of www)
  loop.example.com     CNAME loop2.example.com, loop2 CNAME loop.example.com
  rebind10.example.com A 10.1.2.3
  rebind127.example.com A 127.0.0.1
  meta.example.com     A 169.254.169.254
  short.example.com    A 93.184.216.35 with TTL 1
  big.example.com      40 A records 93.184.217.1..40 (about 700 bytes)
  tc.example.com       UDP answers have TC=1 and no records; TCP gives A 93.184.216.36
  anything else        NXDOMAIN

--hosts-file FILE adds names of the test's own ("NAME ADDR" per line, A or AAAA by the
address's family, several lines per name allowed; re-read on every query, so a test can append
names while the server runs); they take precedence over the fixed zone (tests/integration/
tls_lib.sh uses this to give its servers names). --dot-port PORT with --dot-cert/--dot-key also
serves the same zone over DNS-over-TLS (RFC 7858) on --bind:PORT (log lines "dot NAME TYPE").
--silent reads queries and never answers (an upstream that times out).
Exits after --max-seconds.
"""
import argparse
import ipaddress
import os
import socket
import ssl
import struct
import sys
import threading
import time

A, CNAME, AAAA, OPT = 1, 5, 28, 41


def parse_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        if n == 0:
            return ".".join(labels), off + 1
        if n & 0xC0:
            raise ValueError("compressed name in a query")
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n


def enc_name(name):
    out = b""
    for label in name.split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def rr(name, rtype, ttl, rdata):
    return enc_name(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


HOSTS_FILE = None


def hosts_lookup(name):
    """The --hosts-file records of NAME: None when the name is not there, else [(type, rdata)]."""
    if not HOSTS_FILE:
        return None
    try:
        with open(HOSTS_FILE) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0].lower().rstrip(".") != name:
            continue
        ip = ipaddress.ip_address(parts[1])
        found = (found or []) + [(A if ip.version == 4 else AAAA, ip.packed)]
    return found


def zone(name, qtype, tcp, www_addr):
    """(rcode, tc, [records])"""
    v4 = lambda s: socket.inet_aton(s)
    v6 = lambda s: socket.inet_pton(socket.AF_INET6, s)
    own = hosts_lookup(name)
    if own is not None:
        return 0, False, [rr(name, t, 60, d) for (t, d) in own if t == qtype]
    www = [(A, 300, v4(www_addr)), (AAAA, 300, v6("2606:2800:220:1::1"))]
    simple = {
        "www.example.com": www,
        "rebind10.example.com": [(A, 300, v4("10.1.2.3"))],
        "rebind127.example.com": [(A, 300, v4("127.0.0.1"))],
        "meta.example.com": [(A, 300, v4("169.254.169.254"))],
        "short.example.com": [(A, 1, v4("93.184.216.35"))],
        "big.example.com": [(A, 300, v4("93.184.217.%d" % i)) for i in range(1, 41)],
    }
    if name in simple:
        return 0, False, [rr(name, t, ttl, d) for (t, ttl, d) in simple[name] if t == qtype]
    if name == "alias.example.com":
        recs = [rr(name, CNAME, 300, enc_name("www.example.com"))]
        recs += [rr("www.example.com", t, ttl, d) for (t, ttl, d) in www if t == qtype]
        return 0, False, recs
    if name == "loop.example.com":
        return 0, False, [rr(name, CNAME, 300, enc_name("loop2.example.com")),
                          rr("loop2.example.com", CNAME, 300, enc_name("loop.example.com"))]
    if name == "tc.example.com":
        if not tcp:
            return 0, True, []
        return 0, False, [rr(name, A, 300, v4("93.184.216.36"))] if qtype == A else []
    return 3, False, []


def answer(q, tcp, www_addr, log, proto=None):
    if len(q) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    name, off = parse_name(q, 12)
    qtype, qclass = struct.unpack("!HH", q[off:off + 4])
    question = q[12:off + 4]
    log((proto or ("tcp" if tcp else "udp")) + " " + name.lower() + " " + str(qtype))
    rcode, tc, recs = zone(name.lower(), qtype, tcp, www_addr)
    rflags = 0x8400 | (flags & 0x0100) | rcode | (0x0200 if tc else 0)
    # Echo an OPT record when the query had one (arcount > 0): payload 4096.
    arcount = struct.unpack("!H", q[10:12])[0]
    opt = b"\0" + struct.pack("!HHIH", OPT, 4096, 0, 0) if arcount else b""
    return struct.pack("!HHHHHH", qid, rflags, 1, len(recs), 0, 1 if opt else 0) + question + b"".join(recs) + opt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--www-addr", default="93.184.216.34")
    ap.add_argument("--silent", action="store_true")
    ap.add_argument("--hosts-file")
    ap.add_argument("--dot-port", type=int)
    ap.add_argument("--dot-cert")
    ap.add_argument("--dot-key")
    ap.add_argument("--ready-file")
    ap.add_argument("--max-seconds", type=float, default=120)
    a = ap.parse_args()
    global HOSTS_FILE
    HOSTS_FILE = a.hosts_file
    lock = threading.Lock()
    logf = open(a.log, "a")

    def log(line):
        with lock:
            logf.write(line + "\n")
            logf.flush()

    fam = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    us = socket.socket(fam, socket.SOCK_DGRAM)
    us.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    us.bind((a.bind, a.port))
    ts = socket.socket(fam, socket.SOCK_STREAM)
    ts.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ts.bind((a.bind, a.port))
    ts.listen(64)

    def udp_loop():
        while True:
            q, peer = us.recvfrom(65535)
            try:
                r = answer(q, False, a.www_addr, log)
            except Exception as e:  # a malformed query: log and ignore
                log("udp bad " + str(e))
                continue
            if r and not a.silent:
                us.sendto(r, peer)

    def recv_exact(c, n):
        b = b""
        while len(b) < n:
            x = c.recv(n - len(b))
            if not x:
                return None
            b += x
        return b

    def tcp_conn(c, proto=None):
        with c:
            c.settimeout(10)
            try:
                if proto == "dot":
                    c = dot_ctx.wrap_socket(c, server_side=True)
                while True:
                    h = recv_exact(c, 2)
                    if not h:
                        return
                    q = recv_exact(c, struct.unpack("!H", h)[0])
                    if q is None:
                        return
                    r = answer(q, True, a.www_addr, log, proto)
                    if r and not a.silent:
                        c.sendall(struct.pack("!H", len(r)) + r)
            except (OSError, ValueError, ssl.SSLError):
                return

    def tcp_loop():
        while True:
            c, _ = ts.accept()
            threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

    threading.Thread(target=udp_loop, daemon=True).start()
    threading.Thread(target=tcp_loop, daemon=True).start()
    if a.dot_port:
        dot_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        dot_ctx.load_cert_chain(a.dot_cert, a.dot_key)
        dot_ctx.set_alpn_protocols(["dot"])
        ds = socket.socket(fam, socket.SOCK_STREAM)
        ds.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ds.bind((a.bind, a.dot_port))
        ds.listen(64)

        def dot_loop():
            while True:
                c, _ = ds.accept()
                threading.Thread(target=tcp_conn, args=(c, "dot"), daemon=True).start()
        threading.Thread(target=dot_loop, daemon=True).start()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    time.sleep(a.max_seconds)
    sys.exit(0)


if __name__ == "__main__":
    main()
