#!/usr/bin/env python3
"""Memory-pressure peers for memory_budget_test.sh (SPEC R-LIM-2).

  flood.py stall-server --port P --ready-file F --max-seconds S
      accepts every connection and never reads (a tiny receive buffer, so the data piles
      up on the sender's side); also serves an echo on port P+1.
  flood.py flood --host H --port P --count N --write-seconds W --out F --max-seconds S
      opens N connections (at most 200 connecting at once), writes 64 KiB chunks to every
      writable one until W seconds have passed since the last connect, writes a summary
      line to F, then holds them until --release-file exists; closes them with RST.
  flood.py echo --host H --port P --go-file G --out F --max-seconds S
      connects, writes "hello" and reads it back (before), waits for G, then does it again
      (after): an existing flow that must keep working at the refuse level.

Every loop is bounded by --max-seconds; stdlib only.
"""
import argparse
import errno
import os
import select
import socket
import struct
import sys
import time


def stall_server(a):
    deadline = time.monotonic() + a.max_seconds
    lst = []
    for port in (a.port, a.port + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted sockets
        s.bind(("127.0.0.1", port))
        s.listen(4096)
        s.setblocking(False)
        lst.append(s)
    held, echo = [], {}
    ep = select.epoll()
    ep.register(lst[0].fileno(), select.EPOLLIN)
    ep.register(lst[1].fileno(), select.EPOLLIN)
    open(a.ready_file, "w").write("ready\n")
    while time.monotonic() < deadline:
        for fd, _ in ep.poll(0.5):
            if fd == lst[0].fileno():
                while True:
                    try:
                        c, _ = lst[0].accept()
                    except BlockingIOError:
                        break
                    held.append(c)  # never read
            elif fd == lst[1].fileno():
                try:
                    c, _ = lst[1].accept()
                except BlockingIOError:
                    continue
                echo[c.fileno()] = c
                ep.register(c.fileno(), select.EPOLLIN)
            elif fd in echo:
                try:
                    d = echo[fd].recv(4096)
                except OSError:
                    d = b""
                if d:
                    echo[fd].sendall(d)
                else:
                    ep.unregister(fd)
                    echo.pop(fd).close()
    return 0


def flood(a):
    deadline = time.monotonic() + a.max_seconds
    chunk = b"x" * 65536
    ep = select.epoll()
    socks, connecting = {}, set()
    started = refused = other = opened = 0
    sent = 0
    last_connect = time.monotonic()
    while time.monotonic() < deadline:
        while started < a.count and len(connecting) < 200:
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
            socks[s.fileno()] = s
            connecting.add(s.fileno())
            ep.register(s.fileno(), select.EPOLLOUT)
            started += 1
            last_connect = time.monotonic()
        if started >= a.count and not connecting and time.monotonic() - last_connect > a.write_seconds:
            break
        for fd, ev in ep.poll(0.2):
            s = socks.get(fd)
            if s is None:
                continue
            if fd in connecting:
                connecting.discard(fd)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    if err in (errno.ECONNREFUSED, errno.ECONNRESET):
                        refused += 1
                    else:
                        other += 1
                    ep.unregister(fd)
                    del socks[fd]
                    s.close()
                    continue
                opened += 1
                last_connect = time.monotonic()
            try:
                while True:
                    n = s.send(chunk)
                    sent += n
                    if n < len(chunk):
                        break
            except BlockingIOError:
                pass
            except OSError:
                ep.unregister(fd)
                del socks[fd]
                s.close()
    line = f"flood opened {opened} refused {refused} other {other} alive {len(socks)} sent {sent}\n"
    open(a.out, "w").write(line)
    while a.release_file and not os.path.exists(a.release_file) and time.monotonic() < deadline:
        time.sleep(0.2)
    for s in socks.values():
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    return 0


def echo(a):
    deadline = time.monotonic() + a.max_seconds
    s = socket.create_connection((a.host, a.port), timeout=10)

    def once(tag):
        s.sendall(b"hello\n")
        got = b""
        while len(got) < 6 and time.monotonic() < deadline:
            k = s.recv(64)
            if not k:
                break
            got += k
        verdict = "OK" if got == b"hello\n" else "FAIL " + repr(got)
        with open(a.out, "a") as f:
            f.write(f"{tag} {verdict}\n")

    once("before")
    while not os.path.exists(a.go_file) and time.monotonic() < deadline:
        time.sleep(0.2)
    once("after")
    s.close()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("stall-server")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--ready-file", required=True)
    sp.add_argument("--max-seconds", type=float, default=120)
    sp = sub.add_parser("flood")
    sp.add_argument("--host", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--count", type=int, required=True)
    sp.add_argument("--write-seconds", type=float, default=5)
    sp.add_argument("--out", required=True)
    sp.add_argument("--release-file")
    sp.add_argument("--max-seconds", type=float, default=120)
    sp = sub.add_parser("echo")
    sp.add_argument("--host", required=True)
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--go-file", required=True)
    sp.add_argument("--out", required=True)
    sp.add_argument("--max-seconds", type=float, default=120)
    a = p.parse_args()
    return {"stall-server": stall_server, "flood": flood, "echo": echo}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
