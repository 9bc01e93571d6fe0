#!/usr/bin/env python3
"""drainpeer: host-side peers for the drain test (moat run / serve --once exit, R-CLI-2).

Every subcommand is bounded by --max-seconds and binds to loopback only.
  sink --port P --out FILE [--delay S] [--rate BYTES_PER_S] [--never-read]
      accept one TCP connection; after --delay seconds read to EOF (or an error), at most
      --rate bytes per second; write
      "<bytes> <sha256> eof|<ERRNO>" to FILE. --never-read: accept and never read; FILE
      gets "<ERRNO>" or "eof" once moat closes the connection (peeked, not read).
  udp-count --port P --out FILE
      count datagrams; FILE holds "<count> <bytes>", rewritten after each datagram.
  bridge --connect PATH --ifname IF [--seconds S]
      a stand-in VM NIC: create TAP IF here and copy frames between it and the QEMU stream
      socket PATH (4-byte big-endian length + frame). Exits (closing the socket: the VM
      "disconnects") after --seconds or when the file PATH.stop appears.
"""
import argparse
import errno
import fcntl
import hashlib
import os
import select
import socket
import struct
import sys
import time


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def cmd_sink(a):
    deadline = time.monotonic() + a.max_seconds
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", a.port))
    ls.listen(1)
    if a.ready_file:
        write_atomic(a.ready_file, str(os.getpid()))
    ls.settimeout(max(1.0, deadline - time.monotonic()))
    c, _ = ls.accept()
    ls.close()
    if a.never_read:
        # Report how moat ends the connection without reading a byte of it.
        while time.monotonic() < deadline:
            r, _, _ = select.select([c], [], [], 0.2)
            if not r:
                continue
            try:
                c.recv(1, socket.MSG_PEEK)  # data: keep not reading
                err = c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    write_atomic(a.out, errno.errorcode.get(err, str(err)))
                    return 0
                time.sleep(0.2)
            except OSError as e:
                write_atomic(a.out, errno.errorcode.get(e.errno, str(e)))
                return 0
        write_atomic(a.out, "timeout")
        return 124
    time.sleep(a.delay)
    h = hashlib.sha256()
    n = 0
    end = "eof"
    c.settimeout(1.0)
    t0 = time.monotonic()
    while True:
        if time.monotonic() > deadline:
            end = "timeout"
            break
        if a.rate > 0:  # a slow reader: never ahead of --rate bytes per second
            ahead = n / a.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        try:
            k = c.recv(65536 if a.rate > 0 else 1 << 20)
        except socket.timeout:
            continue
        except OSError as e:
            end = errno.errorcode.get(e.errno, str(e))
            break
        if not k:
            break
        h.update(k)
        n += len(k)
    write_atomic(a.out, f"{n} {h.hexdigest()} {end}")
    return 0


def cmd_udp_count(a):
    deadline = time.monotonic() + a.max_seconds
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # beyond net.core.rmem_max (root): a burst must not overflow the receiver itself
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind(("127.0.0.1", a.port))
    if a.ready_file:
        write_atomic(a.ready_file, str(os.getpid()))
    count = total = 0
    write_atomic(a.out, "0 0")
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        while True:  # everything queued, then one report
            try:
                d = s.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            count += 1
            total += len(d)
        write_atomic(a.out, f"{count} {total}")
    return 0


def cmd_bridge(a):
    TUNSETIFF = 0x400454CA
    IFF_TAP, IFF_NO_PI = 0x0002, 0x1000
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", a.ifname.encode(), IFF_TAP | IFF_NO_PI))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(a.connect)
    if a.ready_file:
        write_atomic(a.ready_file, str(os.getpid()))
    deadline = time.monotonic() + a.seconds
    buf = b""
    while time.monotonic() < deadline and not os.path.exists(a.connect + ".stop"):
        r, _, _ = select.select([tap, s], [], [], 0.05)
        if tap in r:
            f = os.read(tap, 65536)
            s.sendall(struct.pack("!I", len(f)) + f)
        if s in r:
            k = s.recv(1 << 20)
            if not k:
                return 1
            buf += k
            while len(buf) >= 4:
                (n,) = struct.unpack("!I", buf[:4])
                if len(buf) < 4 + n:
                    break
                try:
                    os.write(tap, buf[4:4 + n])
                except OSError:
                    pass
                buf = buf[4 + n:]
    s.close()  # the VM disconnects
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("sink")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--delay", type=float, default=0.0)
    x.add_argument("--never-read", action="store_true")
    x.add_argument("--rate", type=float, default=0, help="read at most this many bytes per second")
    x.add_argument("--ready-file")
    x.add_argument("--max-seconds", type=float, default=60)
    x = sub.add_parser("udp-count")
    x.add_argument("--port", type=int, required=True)
    x.add_argument("--out", required=True)
    x.add_argument("--ready-file")
    x.add_argument("--max-seconds", type=float, default=60)
    x = sub.add_parser("bridge")
    x.add_argument("--connect", required=True)
    x.add_argument("--ifname", required=True)
    x.add_argument("--ready-file")
    x.add_argument("--seconds", type=float, default=60)
    a = p.parse_args()
    return {"sink": cmd_sink, "udp-count": cmd_udp_count, "bridge": cmd_bridge}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
