#!/usr/bin/env python3
"""netpeer: stdlib-only traffic peers for moat's integration tests.

Every subcommand exits by itself after --max-seconds (status 124, like timeout(1)) and binds
only to the address it is given (default: loopback). Servers accept --ready-file FILE, written
once they listen. Byte streams are deterministic in (seed, length): a 1 MiB block drawn from
random.Random(seed) is repeated, with the seed and a running 64 KiB-unit counter stamped into the
first 16 bytes of every 64 KiB, so misplaced, repeated or dropped chunks change the sha256.

Subcommands (see --help of each):
  serve-send  --port P --bytes N --seed S   each connection receives the stream, then FIN
  serve-sink  --port P                      read to EOF, reply "<bytes> <sha256>\\n", close
  send        --host H --port P --bytes N --seed S   send, shutdown(SHUT_WR), print the reply
  fetch       --host H --port P             read to EOF, print "<bytes> <sha256>"
  expect-sha  --bytes N --seed S            print "<bytes> <sha256>" of the stream
  udp-echo    --port P [--v6]               echo datagrams
  udp-ping    --host H --port P             send datagrams, expect them echoed
  hold        --host H --port P --count N   hold N connections (1-byte greeting each), close cleanly
  serve-hold  --port P                      accept many, greet with 1 byte, close on EOF
  dns         --port P                      tiny DNS server (UDP and TCP)
  connect     --host H --port P             one connect; prints OK or the errno name + elapsed time
"""
import argparse
import errno
import hashlib
import os
import random
import resource
import selectors
import signal
import socket
import struct
import sys
import threading
import time

BLOCK = 1 << 20
UNIT = 1 << 16
T0 = time.monotonic()


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def out(*a):
    print(*a, flush=True)


def arm_deadline(secs, what):
    """Hard self-exit: a daemon timer ends the process even if the main thread is blocked."""
    def expire():
        log(f"netpeer {what}: --max-seconds {secs} expired, exiting")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(124)
    t = threading.Timer(secs, expire)
    t.daemon = True
    t.start()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            log(f"cannot raise RLIMIT_NOFILE to {hard}: {e}")
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def parse_size(s):
    s = s.strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1].upper() in mult:
        return int(s[:-1]) * mult[s[-1].upper()]
    return int(s)


def write_ready(path, text="ready"):
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)


REUSEADDR = True


def listen_sock(bind, port, kind=socket.SOCK_STREAM, backlog=4096):
    fam = family_of(bind)
    s = socket.socket(fam, kind)
    if REUSEADDR:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6 and bind in ("::", "::0"):
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind((bind, port))
    if kind == socket.SOCK_STREAM:
        s.listen(backlog)
    return s


def connect_sock(host, port, timeout, src=None):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    s.settimeout(None)
    return s


def peer_str(addr):
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


# ---- the deterministic stream ----

class Stream:
    """Yields memoryviews of the deterministic stream, at most BLOCK bytes each."""

    def __init__(self, seed, total):
        self.seed = seed
        self.total = total
        self.base = random.Random(seed).randbytes(BLOCK)
        self.buf = bytearray(self.base)

    def chunks(self):
        sent, unit = 0, 0
        mv = memoryview(self.buf)
        per_block = BLOCK // UNIT
        while sent < self.total:
            for k in range(per_block):
                struct.pack_into("<QQ", self.buf, k * UNIT, self.seed, unit + k)
            unit += per_block
            n = min(BLOCK, self.total - sent)
            yield mv[:n]
            sent += n


def stream_sha(seed, total):
    h = hashlib.sha256()
    for c in Stream(seed, total).chunks():
        h.update(c)
    return h.hexdigest()


def rate(nbytes, secs):
    return f"{nbytes / max(secs, 1e-9) / 1e6:.1f} MB/s"


def send_stream(sock, seed, total):
    t = time.monotonic()
    for c in Stream(seed, total).chunks():
        sock.sendall(c)
    return time.monotonic() - t


def read_to_eof(sock):
    h = hashlib.sha256()
    buf = bytearray(BLOCK)
    mv = memoryview(buf)
    n = 0
    t = time.monotonic()
    while True:
        k = sock.recv_into(buf)
        if k == 0:
            break
        h.update(mv[:k])
        n += k
    return n, h.hexdigest(), time.monotonic() - t


# ---- TCP subcommands ----

def serve_loop(args, handler):
    ls = listen_sock(args.bind, args.port)
    write_ready(args.ready_file, str(ls.getsockname()[1]))
    log(f"listening on {peer_str(ls.getsockname()[:2])}")
    served = 0
    while args.count == 0 or served < args.count:
        c, a = ls.accept()
        served += 1
        if args.log_peers:
            out(f"peer {peer_str(a)}")
        th = threading.Thread(target=handler, args=(c, a), daemon=True)
        th.start()
        if args.count and served >= args.count:
            th.join()


def cmd_serve_send(args):
    total = parse_size(args.bytes)

    def handle(c, a):
        try:
            secs = send_stream(c, args.seed, total)
            c.shutdown(socket.SHUT_WR)
            c.settimeout(30)
            while c.recv(65536):
                pass
            log(f"serve-send {peer_str(a)}: sent {total} bytes in {secs:.2f} s, {rate(total, secs)}")
        except OSError as e:
            log(f"serve-send {peer_str(a)}: {errno.errorcode.get(e.errno, e)}")
        finally:
            c.close()
    serve_loop(args, handle)


def cmd_serve_sink(args):
    def handle(c, a):
        try:
            n, sha, secs = read_to_eof(c)
            log(f"serve-sink {peer_str(a)}: received {n} bytes in {secs:.2f} s, {rate(n, secs)}")
            out(f"sink {n} {sha}")
            c.sendall(f"{n} {sha}\n".encode())
            c.shutdown(socket.SHUT_WR)
        except OSError as e:
            log(f"serve-sink {peer_str(a)}: {errno.errorcode.get(e.errno, e)}")
        finally:
            c.close()
    serve_loop(args, handle)


def cmd_send(args):
    total = parse_size(args.bytes)
    s = connect_sock(args.host, args.port, args.connect_timeout, args.src)
    secs = send_stream(s, args.seed, total)
    s.shutdown(socket.SHUT_WR)
    log(f"send: sent {total} bytes in {secs:.2f} s, {rate(total, secs)}")
    reply = b""
    while True:
        k = s.recv(4096)
        if not k:
            break
        reply += k
    s.close()
    out(reply.decode(errors="replace").strip())
    return 0 if reply.endswith(b"\n") else 1


def cmd_fetch(args):
    s = connect_sock(args.host, args.port, args.connect_timeout, args.src)
    n, sha, secs = read_to_eof(s)
    s.close()
    log(f"fetch: received {n} bytes in {secs:.2f} s, {rate(n, secs)}")
    out(f"{n} {sha}")
    return 0


def cmd_expect_sha(args):
    total = parse_size(args.bytes)
    out(f"{total} {stream_sha(args.seed, total)}")
    return 0


def cmd_connect(args):
    t = time.monotonic()
    try:
        s = connect_sock(args.host, args.port, args.timeout, args.src)
    except socket.timeout:
        out(f"TIMEOUT {time.monotonic() - t:.3f}")
        return 1
    except OSError as e:
        out(f"{errno.errorcode.get(e.errno, str(e))} {time.monotonic() - t:.3f}")
        return 1
    el = time.monotonic() - t
    if args.greeting:
        s.settimeout(args.timeout)
        try:
            g = s.recv(1)
        except OSError as e:
            out(f"GREETING-{errno.errorcode.get(e.errno, 'ERR') if e.errno else 'TIMEOUT'} {el:.3f}")
            return 1
        if len(g) != 1:
            out(f"GREETING-EOF {el:.3f}")
            return 1
        s.shutdown(socket.SHUT_WR)
        s.recv(16)
    s.close()
    out(f"OK {el:.3f}")
    return 0


# ---- many connections ----

def cmd_serve_hold(args):
    limit = raise_nofile()
    ls = listen_sock(args.bind, args.port, backlog=65535)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    st = {"accepted": 0, "open": 0, "clean": 0, "reset": 0, "max_open": 0}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    write_ready(args.ready_file, str(ls.getsockname()[1]))
    log(f"serve-hold on {peer_str(ls.getsockname()[:2])}, RLIMIT_NOFILE {limit}")
    last_status = 0.0

    def status():
        line = " ".join(f"{k}={v}" for k, v in st.items())
        if args.status_file:
            write_ready(args.status_file, line)
        return line

    while not stop:
        for key, _ in sel.select(timeout=0.2):
            if key.data is None:
                for _ in range(256):
                    try:
                        c, a = ls.accept()
                    except BlockingIOError:
                        break
                    except OSError as e:
                        log(f"accept: {errno.errorcode.get(e.errno, e)}")
                        break
                    c.setblocking(False)
                    st["accepted"] += 1
                    st["open"] += 1
                    st["max_open"] = max(st["max_open"], st["open"])
                    try:
                        c.send(b"G")
                    except OSError:
                        pass
                    sel.register(c, selectors.EVENT_READ, a)
            else:
                c = key.fileobj
                try:
                    d = c.recv(4096)
                    if d:
                        continue
                    st["clean"] += 1
                except OSError:
                    st["reset"] += 1
                sel.unregister(c)
                c.close()
                st["open"] -= 1
        now = time.monotonic()
        if now - last_status > 0.5:
            status()
            last_status = now
    out("serve-hold " + status())
    return 0


def cmd_hold(args):
    limit = raise_nofile()
    n = args.count
    if limit < n + 32:
        log(f"hold: RLIMIT_NOFILE {limit} is too low for {n} connections")
        return 2
    fam = family_of(args.host)
    sel = selectors.DefaultSelector()
    conns = {}  # fd -> [sock, state]  state: 'connecting' | 'greet' | 'held' | 'closing'
    st = {"ok": 0, "failed": 0, "errors": {}}
    t0 = time.monotonic()
    next_i = 0
    pending = 0

    def fail(s, why):
        st["failed"] += 1
        st["errors"][why] = st["errors"].get(why, 0) + 1
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        conns.pop(s.fileno(), None)
        s.close()

    deadline = t0 + args.open_seconds
    while (next_i < n or pending) and time.monotonic() < deadline:
        while next_i < n and pending < args.parallel:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            next_i += 1
            try:
                s.connect((args.host, args.port))
            except BlockingIOError:
                pass
            except OSError as e:
                fail(s, errno.errorcode.get(e.errno, str(e)))
                continue
            conns[s.fileno()] = [s, "connecting"]
            sel.register(s, selectors.EVENT_WRITE, None)
            pending += 1
        for key, ev in sel.select(timeout=0.2):
            s = key.fileobj
            ent = conns.get(s.fileno())
            if ent is None:
                continue
            if ent[1] == "connecting":
                e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if e:
                    pending -= 1
                    fail(s, errno.errorcode.get(e, str(e)))
                    continue
                ent[1] = "greet"
                sel.modify(s, selectors.EVENT_READ, None)
            elif ent[1] == "greet":
                pending -= 1
                try:
                    g = s.recv(1)
                except OSError as e:
                    fail(s, "greeting-" + errno.errorcode.get(e.errno, str(e)))
                    continue
                if g != b"G":
                    fail(s, "greeting-eof")
                    continue
                ent[1] = "held"
                st["ok"] += 1
                sel.unregister(s)
    opened_in = time.monotonic() - t0
    for fd, ent in list(conns.items()):
        if ent[1] != "held":
            fail(ent[0], "open-timeout")
    errs = ",".join(f"{k}:{v}" for k, v in sorted(st["errors"].items())) or "none"
    out(f"opened {st['ok']}/{n} in {opened_in:.2f} s; failed {st['failed']} ({errs})")
    write_ready(args.ready_file, f"{st['ok']} {st['failed']}")

    # Hold: until --release-file exists or --hold-seconds pass.
    t_hold = time.monotonic()
    while time.monotonic() - t_hold < args.hold_seconds:
        if args.release_file and os.path.exists(args.release_file):
            break
        time.sleep(0.05)
    # Verify every held connection is still alive (no data, no EOF, no error pending).
    alive = 0
    dead = {}
    for ent in conns.values():
        s = ent[0]
        try:
            d = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            why = "eof" if d == b"" else "unexpected-data"
            dead[why] = dead.get(why, 0) + 1
        except BlockingIOError:
            alive += 1
        except OSError as e:
            why = errno.errorcode.get(e.errno, str(e))
            dead[why] = dead.get(why, 0) + 1
    derrs = ",".join(f"{k}:{v}" for k, v in sorted(dead.items())) or "none"
    out(f"still alive after hold {alive}/{st['ok']} (dead: {derrs})")

    # Clean close: FIN each, wait for the server's FIN (EOF), then close.
    t_close = time.monotonic()
    closing = {}
    for fd, ent in conns.items():
        s = ent[0]
        try:
            s.shutdown(socket.SHUT_WR)
            sel.register(s, selectors.EVENT_READ, None)
            closing[fd] = s
        except OSError:
            pass
    clean, reset = 0, 0
    close_deadline = time.monotonic() + args.close_seconds
    while closing and time.monotonic() < close_deadline:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                d = s.recv(4096)
                if d:
                    continue
                clean += 1
            except OSError:
                reset += 1
            sel.unregister(s)
            closing.pop(s.fileno(), None)
            s.close()
    unfinished = len(closing)
    for s in closing.values():
        s.close()
    out(f"closed clean {clean}/{st['ok']} reset {reset} unfinished {unfinished} in {time.monotonic() - t_close:.2f} s")
    ok = st["ok"] == n and alive == n and clean == n
    return 0 if ok else 1


# ---- UDP ----

def cmd_udp_echo(args):
    bind = args.bind or ("::1" if args.v6 else "127.0.0.1")
    s = listen_sock(bind, args.port, socket.SOCK_DGRAM)
    write_ready(args.ready_file, str(s.getsockname()[1]))
    log(f"udp-echo on {peer_str(s.getsockname()[:2])}")
    while True:
        d, a = s.recvfrom(65535)
        if args.log_peers:
            out(f"peer {peer_str(a)} {len(d)}")
        s.sendto(d, a)


def cmd_udp_ping(args):
    s = socket.socket(family_of(args.host), socket.SOCK_DGRAM)
    if args.src:
        s.bind((args.src, 0))
    s.connect((args.host, args.port))
    s.settimeout(args.timeout)
    got = 0
    t = time.monotonic()
    for i in range(args.count):
        msg = f"moat-udp-{os.getpid()}-{i}-".encode() + bytes(args.size)
        try:
            s.send(msg)
            while True:
                d = s.recv(65535)
                if d == msg:
                    got += 1
                    break
        except socket.timeout:
            out(f"TIMEOUT after {got}/{args.count} {time.monotonic() - t:.3f}")
            return 1
        except OSError as e:
            out(f"ERROR {errno.errorcode.get(e.errno, str(e))} after {got}/{args.count} {time.monotonic() - t:.3f}")
            return 3
    out(f"OK {got}/{args.count} {time.monotonic() - t:.3f}")
    return 0


# ---- DNS ----

def dns_answer(q, name, addr, tcp_note, log_q):
    if len(q) < 12:
        return None
    qid, flags, qd, _an, _ns, _ar = struct.unpack("!HHHHHH", q[:12])
    if flags & 0x8000 or qd != 1:
        return None
    i, labels = 12, []
    while i < len(q):
        ln = q[i]
        i += 1
        if ln == 0:
            break
        if ln & 0xC0 or i + ln > len(q):
            return None
        labels.append(q[i:i + ln].decode("ascii", "replace"))
        i += ln
    if i + 4 > len(q):
        return None
    qtype, qclass = struct.unpack("!HH", q[i:i + 4])
    question = q[12:i + 4]
    qname = ".".join(labels).lower()
    match = qname == name.lower().rstrip(".")
    rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080
    ans = b""
    if not match:
        rflags |= 3  # NXDOMAIN
    elif qtype == 1 and qclass == 1:
        ans = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(addr)
    log_q(f"query {tcp_note} {qname} type={qtype} -> {'A ' + addr if ans else ('NXDOMAIN' if not match else 'NODATA')}")
    return struct.pack("!HHHHHH", qid, rflags, 1, 1 if ans else 0, 0, 0) + question + ans


def cmd_dns(args):
    lock = threading.Lock()

    def log_q(line):
        with lock:
            out(line)
    u = listen_sock(args.bind, args.port, socket.SOCK_DGRAM)
    t = listen_sock(args.bind, args.port, socket.SOCK_STREAM)

    def udp_loop():
        while True:
            q, a = u.recvfrom(65535)
            r = dns_answer(q, args.name, args.addr, "udp", log_q)
            if r:
                u.sendto(r, a)

    def tcp_conn(c):
        c.settimeout(30)
        try:
            while True:
                hdr = b""
                while len(hdr) < 2:
                    k = c.recv(2 - len(hdr))
                    if not k:
                        return
                    hdr += k
                (ln,) = struct.unpack("!H", hdr)
                q = b""
                while len(q) < ln:
                    k = c.recv(ln - len(q))
                    if not k:
                        return
                    q += k
                r = dns_answer(q, args.name, args.addr, "tcp", log_q)
                if r:
                    c.sendall(struct.pack("!H", len(r)) + r)
        except OSError:
            pass
        finally:
            c.close()

    def tcp_loop():
        while True:
            c, _ = t.accept()
            threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()
    threading.Thread(target=udp_loop, daemon=True).start()
    threading.Thread(target=tcp_loop, daemon=True).start()
    write_ready(args.ready_file, str(args.port))
    log(f"dns on {args.bind}:{args.port} (udp+tcp): {args.name} A {args.addr}")
    while True:
        time.sleep(3600)


def main():
    p = argparse.ArgumentParser(prog="netpeer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name, fn, server=False, client=False):
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn)
        sp.add_argument("--max-seconds", type=float, default=300.0, help="hard self-exit (status 124)")
        if server:
            sp.add_argument("--port", type=int, required=True)
            sp.add_argument("--bind", default=None, help="address to bind (default 127.0.0.1; ::1 with --v6)")
            sp.add_argument("--v6", action="store_true")
            sp.add_argument("--ready-file")
            sp.add_argument("--log-peers", action="store_true", help="print each peer address on stdout")
            sp.add_argument("--no-reuseaddr", action="store_true", help="do not set SO_REUSEADDR")
        if client:
            sp.add_argument("--host", required=True)
            sp.add_argument("--port", type=int, required=True)
            sp.add_argument("--src", help="source address to bind")
            sp.add_argument("--connect-timeout", type=float, default=10.0)
        return sp

    sp = add("serve-send", cmd_serve_send, server=True)
    sp.add_argument("--bytes", required=True)
    sp.add_argument("--seed", type=int, required=True)
    sp.add_argument("--count", type=int, default=0, help="exit after this many connections (0: serve forever)")
    sp = add("serve-sink", cmd_serve_sink, server=True)
    sp.add_argument("--count", type=int, default=0)
    sp = add("send", cmd_send, client=True)
    sp.add_argument("--bytes", required=True)
    sp.add_argument("--seed", type=int, required=True)
    add("fetch", cmd_fetch, client=True)
    sp = add("expect-sha", cmd_expect_sha)
    sp.add_argument("--bytes", required=True)
    sp.add_argument("--seed", type=int, required=True)
    sp = add("connect", cmd_connect, client=True)
    sp.add_argument("--timeout", type=float, default=10.0)
    sp.add_argument("--greeting", action="store_true", help="also require a 1-byte greeting (serve-hold)")
    sp = add("serve-hold", cmd_serve_hold, server=True)
    sp.add_argument("--status-file", help="rewritten every 0.5 s with the counts")
    sp = add("hold", cmd_hold, client=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--parallel", type=int, default=200, help="connects in flight at once")
    sp.add_argument("--open-seconds", type=float, default=60.0)
    sp.add_argument("--hold-seconds", type=float, default=2.0)
    sp.add_argument("--close-seconds", type=float, default=30.0)
    sp.add_argument("--ready-file", help="written once all connections are open")
    sp.add_argument("--release-file", help="hold until this file exists (at most --hold-seconds)")
    add("udp-echo", cmd_udp_echo, server=True)
    sp = add("udp-ping", cmd_udp_ping, client=True)
    sp.add_argument("--count", type=int, default=3)
    sp.add_argument("--size", type=int, default=32)
    sp.add_argument("--timeout", type=float, default=2.0)
    sp = add("dns", cmd_dns, server=True)
    sp.add_argument("--name", default="moat-test.example.com")
    sp.add_argument("--addr", default="93.184.216.34")
    args = p.parse_args()
    if getattr(args, "bind", "x") is None:
        args.bind = "::1" if args.v6 else "127.0.0.1"
    global REUSEADDR
    REUSEADDR = not getattr(args, "no_reuseaddr", False)
    arm_deadline(args.max_seconds, args.cmd)
    try:
        rc = args.fn(args)
    except OSError as e:
        out(f"ERROR {errno.errorcode.get(e.errno, str(e)) if e.errno else str(e)}")
        return 3
    except KeyboardInterrupt:
        return 130
    return rc or 0


if __name__ == "__main__":
    sys.stdout.flush()
    sys.exit(main())
