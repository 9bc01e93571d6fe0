#!/usr/bin/env python3
"""Hostile-guest floods for bench/stress.sh (issue 14, `make stress`). Stdlib only.

Guest side (inside `moat run`, root of its namespaces, raw frames on the TAP):
  stress.py flood KIND --count N [--ifname eth0] [--max-seconds S]
      KIND: syn      TCP SYNs from random ports to random ports of the gateway (allowed)
            frag4    IPv4 first fragments (MF=1) that never complete, random IDs
            frag6    IPv6 first fragments (M=1) that never complete, random IDs
            udp      UDP datagrams to N distinct ports of the gateway (one flow each)
            garbage  random frames (random length, EtherType and bytes) to the gateway MAC
            arp      ARP requests for the gateway from random MACs/addresses
            ndp      neighbour solicitations for the gateway from random link-local sources
            dhcp     DHCPDISCOVERs with random client MACs and transaction IDs
            dns      DNS queries for distinct names (the test's upstream never answers)
      Prints one line: "sent N in S s".
  stress.py download --host H --port P --stop-file F --out F --max-seconds S
      reads a host stream until F exists; writes "bytes B max_stall_ms M" to --out.
  stress.py listen --port P --ready-file F --max-seconds S
      accepts and closes connections (the guest side of a published port).
Host side:
  stress.py serve-stream --port P --ready-file F --max-seconds S
      sends zeros to every client, forever (the concurrent download's source).
  stress.py connect-storm --host H --port P --count N --max-seconds S
      N connections (at most 256 at once), each closed after connecting; prints counts.
Every loop is bounded by --max-seconds.
"""
import argparse
import os
import random
import select
import socket
import struct
import sys
import threading
import time

GUEST_MAC = bytes.fromhex("026d6f000002")
GW_MAC = bytes.fromhex("026d6f000001")
GUEST4 = socket.inet_aton("100.96.0.2")
GW4 = socket.inet_aton("100.96.0.1")
GUEST6 = socket.inet_pton(socket.AF_INET6, "fd42:6d73:62::2")
GW6 = socket.inet_pton(socket.AF_INET6, "fd42:6d73:62::1")


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, flags_frag=0):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_frag, 64, proto, 0, src, dst)
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def eth(dst, src, etype, payload):
    return dst + src + struct.pack("!H", etype) + payload


def tcp_syn(src, dst, sport, dport, seq):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = struct.pack("!4s4sBBH", src, dst, 0, 6, len(tcp))
    c = csum(pseudo + tcp)
    return tcp[:16] + struct.pack("!H", c) + tcp[18:]


def icmp6_ns(src, target, mac):
    body = struct.pack("!BBHI16s", 135, 0, 0, 0, target) + struct.pack("!BB6s", 1, 1, mac)
    sn = b"\xff\x02" + b"\0" * 9 + b"\x01\xff" + target[13:]
    pseudo = src + sn + struct.pack("!I3xB", len(body), 58)
    c = csum(pseudo + body)
    body = body[:2] + struct.pack("!H", c) + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 255, src, sn)
    dmac = b"\x33\x33\xff" + target[13:]
    return eth(dmac, mac, 0x86DD, ip6 + body)


def frames(kind, n, rnd):
    if kind == "syn":
        for _ in range(n):
            sport, dport = rnd.randrange(1024, 65536), rnd.randrange(1024, 65536)
            yield eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(GUEST4, GW4, 6, tcp_syn(GUEST4, GW4, sport, dport, rnd.getrandbits(32))))
    elif kind == "frag4":
        payload = struct.pack("!HHHH", 40000, 9, 8 + 64, 0) + b"x" * 64  # UDP head + data, rest never sent
        for _ in range(n):
            yield eth(GW_MAC, GUEST_MAC, 0x0800, ipv4(GUEST4, GW4, 17, payload, rnd.getrandbits(16), 0x2000))
    elif kind == "frag6":
        data = struct.pack("!HHHH", 40000, 9, 8 + 64, 0) + b"x" * 64
        for _ in range(n):
            fh = struct.pack("!BBHI", 17, 0, 0x0001, rnd.getrandbits(32))  # offset 0, M=1
            ip6 = struct.pack("!IHBB16s16s", 6 << 28, len(fh) + len(data), 44, 64, GUEST6, GW6)
            yield eth(GW_MAC, GUEST_MAC, 0x86DD, ip6 + fh + data)
    elif kind == "garbage":
        for _ in range(n):
            etype = rnd.choice([0x0800, 0x86DD, 0x0806, rnd.getrandbits(16)])
            yield eth(GW_MAC, GUEST_MAC, etype, rnd.randbytes(rnd.randrange(0, 1500)))
    elif kind == "arp":
        for _ in range(n):
            mac = bytes([0x02]) + rnd.randbytes(5)
            arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, rnd.randbytes(4), b"\0" * 6, GW4)
            yield eth(b"\xff" * 6, mac, 0x0806, arp)
    elif kind == "ndp":
        for _ in range(n):
            mac = bytes([0x02]) + rnd.randbytes(5)
            src = b"\xfe\x80" + b"\0" * 6 + rnd.randbytes(8)
            yield icmp6_ns(src, GW6, mac)
    elif kind == "dhcp":
        for _ in range(n):
            mac = bytes([0x02]) + rnd.randbytes(5)
            bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, rnd.getrandbits(32), 0, 0x8000,
                                b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4, mac + b"\0" * 10, b"", b"")
            opts = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
            udp_payload = bootp + opts
            udp = struct.pack("!HHHH", 68, 67, 8 + len(udp_payload), 0) + udp_payload
            ip = ipv4(b"\0" * 4, b"\xff" * 4, 17, udp, rnd.getrandbits(16))
            yield eth(b"\xff" * 6, mac, 0x0800, ip)


def flood(a):
    rnd = random.Random(a.seed)
    start = time.monotonic()
    deadline = start + a.max_seconds
    sent = 0
    if a.kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        base = 20000
        for i in range(a.count):
            if time.monotonic() > deadline:
                break
            try:
                s.sendto(b"stress", ("100.96.0.1", base + i % 40000))
                sent += 1
            except OSError:
                time.sleep(0.001)
    elif a.kind == "dns":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        for i in range(a.count):
            if time.monotonic() > deadline:
                break
            name = b"".join(struct.pack("B", len(l)) + l for l in (b"q%d" % i, b"stress", b"example")) + b"\0"
            q = struct.pack("!HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)
            try:
                s.sendto(q, ("100.96.0.1", 53))
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
            try:
                while s.recv(4096):
                    pass
            except BlockingIOError:
                pass
    else:
        # The TAP's queue drops what moat has not read yet (tx_dropped): count only frames
        # that reached moat, and back off while the queue overflows, so every one of the N
        # frames is really offered to moat.
        def dropped():  # /proc/net/dev is this namespace's (sysfs may be the host's)
            with open("/proc/net/dev") as f:
                for line in f:
                    name, _, rest = line.partition(":")
                    if name.strip() == a.ifname:
                        return int(rest.split()[11])  # 8 receive fields, then tx bytes, packets, errs, drop
            return 0

        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((a.ifname, 0))
        gen = frames(a.kind, a.count * 4, rnd)
        batch = []
        while sent < a.count and time.monotonic() < deadline:
            batch = [next(gen, None) for _ in range(min(256, a.count - sent))]
            batch = [f if len(f) >= 60 else f + b"\0" * (60 - len(f)) for f in batch if f is not None]
            if not batch:
                break
            before = dropped()
            for f in batch:
                try:
                    s.send(f)
                except OSError:  # ENOBUFS
                    time.sleep(0.001)
            lost = dropped() - before
            sent += max(0, len(batch) - lost)
            if lost:
                time.sleep(0.01)
    print("sent %d in %.1f s" % (sent, time.monotonic() - start), flush=True)


def download(a):
    deadline = time.monotonic() + a.max_seconds
    s = socket.create_connection((a.host, a.port), timeout=5)
    s.setblocking(False)
    total, last, stall = 0, time.monotonic(), 0.0
    while time.monotonic() < deadline and not os.path.exists(a.stop_file):
        r, _, _ = select.select([s], [], [], 0.2)
        now = time.monotonic()
        if r:
            try:
                d = s.recv(1 << 20)
            except BlockingIOError:
                continue
            if not d:
                break
            total += len(d)
            stall = max(stall, now - last)
            last = now
        else:
            stall = max(stall, now - last)
    with open(a.out, "w") as f:
        f.write("bytes %d max_stall_ms %d\n" % (total, stall * 1000))


def listen(a):
    deadline = time.monotonic() + a.max_seconds
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", a.port))
    ls.listen(4096)
    ls.settimeout(0.5)
    open(a.ready_file, "w").write("ready\n")
    while time.monotonic() < deadline:
        try:
            c, _ = ls.accept()
            c.close()
        except socket.timeout:
            pass
        except OSError:
            time.sleep(0.01)


def serve_stream(a):
    deadline = time.monotonic() + a.max_seconds
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(16)
    ls.settimeout(0.5)
    open(a.ready_file, "w").write("ready\n")
    chunk = b"\0" * 65536

    def pump(c):
        c.settimeout(5)
        try:
            while time.monotonic() < deadline:
                c.sendall(chunk)
        except OSError:
            pass
        c.close()

    while time.monotonic() < deadline:
        try:
            c, _ = ls.accept()
            threading.Thread(target=pump, args=(c,), daemon=True).start()
        except socket.timeout:
            pass


def connect_storm(a):
    deadline = time.monotonic() + a.max_seconds
    ok = refused = other = 0
    pending = []
    started = 0
    while (started < a.count or pending) and time.monotonic() < deadline:
        while started < a.count and len(pending) < 256:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((a.host, a.port))
            except BlockingIOError:
                pass
            except OSError:
                other += 1
                s.close()
                started += 1
                continue
            pending.append((s, time.monotonic()))
            started += 1
        _, w, _ = select.select([], [p[0] for p in pending], [], 0.2)
        keep = []
        now = time.monotonic()
        for s, t in pending:
            if s in w:
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e == 0:
                    ok += 1
                elif e == 111:
                    refused += 1
                else:
                    other += 1
                s.close()
            elif now - t > 10:
                other += 1
                s.close()
            else:
                keep.append((s, t))
        pending = keep
    print("connected %d refused %d other %d of %d" % (ok, refused, other, a.count), flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("flood")
    f.add_argument("kind", choices=["syn", "frag4", "frag6", "udp", "garbage", "arp", "ndp", "dhcp", "dns"])
    f.add_argument("--count", type=int, required=True)
    f.add_argument("--ifname", default="eth0")
    f.add_argument("--seed", type=int, default=1)
    f.add_argument("--max-seconds", type=float, default=120)
    d = sub.add_parser("download")
    d.add_argument("--host", required=True)
    d.add_argument("--port", type=int, required=True)
    d.add_argument("--stop-file", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--max-seconds", type=float, default=300)
    l = sub.add_parser("listen")
    l.add_argument("--port", type=int, required=True)
    l.add_argument("--ready-file", required=True)
    l.add_argument("--max-seconds", type=float, default=300)
    s = sub.add_parser("serve-stream")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ready-file", required=True)
    s.add_argument("--max-seconds", type=float, default=600)
    c = sub.add_parser("connect-storm")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--max-seconds", type=float, default=120)
    a = p.parse_args()
    {"flood": flood, "download": download, "listen": listen, "serve-stream": serve_stream,
     "connect-storm": connect_storm}[a.cmd.replace("_", "-")](a)


if __name__ == "__main__":
    sys.exit(main())
