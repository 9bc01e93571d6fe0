#!/usr/bin/env python3
"""A plain HTTP CONNECT proxy for the TLS integration tests (stdlib only).

Reads a request head (at most 16 KiB), logs it as one JSON line to --log
({"peer": ..., "line": "CONNECT api.test:443 HTTP/1.1", "headers": [[k, v], ...],
"result": "ok" | "refused" | "denied" | "bad"}), and for CONNECT HOST:PORT opens a TCP
connection to HOST:PORT (resolved with the system resolver, or with --map NAME=ADDR first),
answers "200 Connection established" and splices both directions until either side closes
(then the other is half-closed, as a proxy should). Anything but CONNECT gets 405; a target
matching --deny (a suffix, repeatable) gets 403 without being contacted; a failed connect
gets 502. Serves until --max-seconds; writes --ready-file once listening.
"""
import argparse
import json
import os
import select
import socket
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--deny", action="append", default=[])
    ap.add_argument("--map", action="append", default=[], help="NAME=ADDR, resolved before DNS")
    ap.add_argument("--ready-file")
    ap.add_argument("--max-seconds", type=float, default=120)
    a = ap.parse_args()
    names = dict(m.split("=", 1) for m in a.map)
    lock = threading.Lock()
    logf = open(a.log, "a")

    def log(obj):
        with lock:
            logf.write(json.dumps(obj, sort_keys=True) + "\n")
            logf.flush()

    def splice(c, u):
        socks, open_dirs = [c, u], {c: u, u: c}
        deadline = time.monotonic() + a.max_seconds
        while open_dirs and time.monotonic() < deadline:
            r, _, _ = select.select(list(open_dirs), [], [], 1.0)
            for s in r:
                try:
                    d = s.recv(65536)
                except OSError:
                    d = b""
                if d:
                    try:
                        open_dirs[s].sendall(d)
                        continue
                    except OSError:
                        pass
                try:
                    open_dirs[s].shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                del open_dirs[s]
        for s in socks:
            s.close()

    def handle(c, peer):
        c.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 16384:
                d = c.recv(4096)
                if not d:
                    break
                head += d
        except OSError:
            pass
        if b"\r\n\r\n" not in head:
            log({"peer": peer[0], "line": head[:200].decode("latin-1"), "result": "bad"})
            c.close()
            return
        text, rest = head.split(b"\r\n\r\n", 1)
        lines = text.decode("latin-1").split("\r\n")
        hdrs = [l.split(":", 1) for l in lines[1:] if ":" in l]
        entry = {"peer": peer[0], "line": lines[0], "headers": [[k.strip(), v.strip()] for k, v in hdrs]}
        parts = lines[0].split(" ")
        if len(parts) != 3 or parts[0] != "CONNECT" or ":" not in parts[1]:
            entry["result"] = "bad"
            log(entry)
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            c.close()
            return
        host, port = parts[1].rsplit(":", 1)
        host = host.strip("[]")
        if any(host == d or host.endswith("." + d) for d in a.deny):
            entry["result"] = "denied"
            log(entry)
            c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            c.close()
            return
        try:
            u = socket.create_connection((names.get(host, host), int(port)), timeout=5)
        except (OSError, ValueError) as e:
            entry["result"] = "refused"
            entry["error"] = str(e)
            log(entry)
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            c.close()
            return
        entry["result"] = "ok"
        log(entry)
        c.settimeout(None)
        u.settimeout(None)
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:
            u.sendall(rest)
        splice(c, u)

    fam = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.bind, a.port))
    ls.listen(64)

    def accept_loop():
        while True:
            c, peer = ls.accept()
            threading.Thread(target=handle, args=(c, peer), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    time.sleep(a.max_seconds)
    sys.exit(0)


if __name__ == "__main__":
    main()
