#!/usr/bin/env python3
"""A stand-in VM for `moat serve`: speaks the QEMU stream framing (4-byte big-endian length +
Ethernet frame), unix datagrams, or an inherited fd, and probes the gateway with ARP.

Scenarios (exit 0 = as expected; every wait is bounded):
  stream-arp PATH                 connect, ARP for the gateway, expect the reply
  stream-second PATH              A connects and gets ARP answers; B connects and is closed at once;
                                  A still gets answers
  stream-bad PATH KIND            KIND: oversize | zero | truncated-prefix | truncated-frame;
                                  send it, expect moat to close the connection
  stream-split PATH               one ARP frame written one byte at a time: still answered
  fd MOAT TYPE ARGS...            TYPE stream|seqpacket|dgram: socketpair, run `MOAT serve --fd N ARGS`,
                                  ARP through it, close our end, expect moat to exit 0 (dgram: SIGTERM)
  fd-tap MOAT ARGS...             create TAP "mt0" here, run `MOAT serve --fd N ARGS` on it (type detected),
                                  address it as the guest and ping the gateway; SIGTERM -> exit 0
  gram-arp PATH LOCAL             bind LOCAL, ARP over datagrams to PATH
  gram-foreign PATH LOCAL1 LOCAL2 LOCAL1 is the learned peer; LOCAL2 is not answered until it sends VFKT
Paths starting with '@' are abstract names.
"""
import os, select, signal, socket, struct, subprocess, sys, time

GUEST_MAC = bytes.fromhex("026d6f000002")
GUEST_IP = socket.inet_aton("100.96.0.2")
GW_IP = socket.inet_aton("100.96.0.1")


def addr(p):
    return "\0" + p[1:] if p.startswith("@") else p


def arp_request():
    eth = b"\xff" * 6 + GUEST_MAC + b"\x08\x06"
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + GUEST_MAC + GUEST_IP + b"\0" * 6 + GW_IP
    return eth + arp


def is_arp_reply(frame):
    return len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02" and frame[28:32] == GW_IP


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return None
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def stream_arp(s, secs=5.0):
    """Sends an ARP request over the stream; True when the reply arrives (other frames skipped)."""
    f = arp_request()
    s.sendall(struct.pack("!I", len(f)) + f)
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        hdr = recv_exact(s, 4, deadline)
        if hdr is None:
            return False
        (n,) = struct.unpack("!I", hdr)
        frame = recv_exact(s, n, deadline)
        if frame is None:
            return False
        if is_arp_reply(frame):
            return True
    return False


def closed_by_peer(s, secs=3.0):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], deadline - time.monotonic())
        if not r:
            return False
        try:
            if not s.recv(65536):
                return True
        except ConnectionResetError:
            return True
    return False


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(addr(path))
    return s


def gram_arp(s, to, secs=3.0):
    s.sendto(arp_request(), addr(to))
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], deadline - time.monotonic())
        if not r:
            return False
        if is_arp_reply(s.recv(65600)):
            return True
    return False


def main(argv):
    cmd = argv[1]
    if cmd == "stream-arp":
        return 0 if stream_arp(connect(argv[2])) else 1
    if cmd == "stream-split":
        s = connect(argv[2])
        f = arp_request()
        for b in struct.pack("!I", len(f)) + f:
            s.send(bytes([b]))
            time.sleep(0.002)
        return 0 if stream_arp(s) else 1  # the split one's reply is skipped over, then a whole one
    if cmd == "stream-second":
        a = connect(argv[2])
        if not stream_arp(a):
            print("first client: no ARP reply"); return 1
        b = connect(argv[2])
        if not closed_by_peer(b):
            print("second client was not closed"); return 1
        if not stream_arp(a):
            print("first client: no ARP reply after the second was refused"); return 1
        return 0
    if cmd == "stream-bad":
        s = connect(argv[2])
        if not stream_arp(s):
            print("no ARP reply before the bad input"); return 1
        kind = argv[3]
        if kind == "oversize":
            s.sendall(struct.pack("!I", 70000) + b"\0" * 64)
        elif kind == "zero":
            s.sendall(struct.pack("!I", 0) + b"\0" * 64)
        elif kind == "truncated-prefix":
            s.sendall(b"\x00\x00")
            s.shutdown(socket.SHUT_WR)
        elif kind == "truncated-frame":
            s.sendall(struct.pack("!I", 100) + b"\0" * 20)
            s.shutdown(socket.SHUT_WR)
        return 0 if closed_by_peer(s) else 1
    if cmd == "fd":
        moat, kind, rest = argv[2], argv[3], argv[4:]
        st = {"stream": socket.SOCK_STREAM, "seqpacket": socket.SOCK_SEQPACKET, "dgram": socket.SOCK_DGRAM}[kind]
        ours, theirs = socket.socketpair(socket.AF_UNIX, st)
        fd = theirs.fileno()
        p = subprocess.Popen([moat, "serve", "--fd", str(fd)] + rest, pass_fds=[fd])
        theirs.close()
        try:
            if kind == "stream":
                ok = stream_arp(ours)
            else:
                ours.send(arp_request())
                ok = False
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and not ok:
                    r, _, _ = select.select([ours], [], [], deadline - time.monotonic())
                    if not r:
                        break
                    ok = is_arp_reply(ours.recv(65600))
            if not ok:
                print("no ARP reply through the inherited fd"); return 1
            ours.close()
            if kind == "dgram":  # datagram sockets have no end of stream: stop it
                p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=5)
            print(f"moat exited {rc}")
            return 0 if rc == 0 else 1
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    if cmd == "fd-tap":
        import fcntl
        moat, rest = argv[2], argv[3:]
        fd = os.open("/dev/net/tun", os.O_RDWR)
        ifr = struct.pack("16sH", b"mt0", 0x0002 | 0x1000)  # IFF_TAP | IFF_NO_PI
        fcntl.ioctl(fd, 0x400454CA, ifr)  # TUNSETIFF
        p = subprocess.Popen([moat, "serve", "--fd", str(fd)] + rest, pass_fds=[fd])
        os.close(fd)
        try:
            for c in (["ip", "link", "set", "mt0", "address", "02:6d:6f:00:00:02", "up"],
                      ["ip", "addr", "add", "100.96.0.2/30", "dev", "mt0"]):
                subprocess.run(c, check=True)
            ok = subprocess.run(["ping", "-c", "2", "-W", "2", "-i", "0.2", "100.96.0.1"]).returncode == 0
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=5)
            print(f"ping ok={ok}, moat exited {rc}")
            return 0 if ok and rc == 0 else 1
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    if cmd == "gram-arp":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(addr(argv[3]))
        return 0 if gram_arp(s, argv[2]) else 1
    if cmd == "gram-foreign":
        a = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        a.bind(addr(argv[3]))
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.bind(addr(argv[4]))
        if not gram_arp(a, argv[2]):
            print("peer: no ARP reply"); return 1
        if gram_arp(b, argv[2], secs=1.0):
            print("foreign sender was answered"); return 1
        b.sendto(b"VFKT", addr(argv[2]))
        if not gram_arp(b, argv[2]):
            print("no reply after the VFKT handshake"); return 1
        if gram_arp(a, argv[2], secs=1.0):
            print("the old peer is still answered after the handshake"); return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
