#!/usr/bin/env python3
"""A minimal client of moat's control socket (SPEC R-CTL-1/2): newline-delimited JSON over a
unix stream socket (`@name` = abstract).

  ctlclient.py ADDR METHOD [PARAMS_JSON]   one request; prints the response line; exit 0 when
                                           it has "result", 1 for "error", 2 when the
                                           connection closed without an answer
  ctlclient.py ADDR --raw FILE             sends FILE's bytes as they are, prints every answer
                                           line until the server closes (or --timeout)
Every wait is bounded by --timeout (default 10 s)."""
import json
import socket
import sys
import time


def connect(addr, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect("\0" + addr[1:] if addr.startswith("@") else addr)
    return s


def read_lines(s, want, deadline):
    buf, lines = b"", []
    while time.monotonic() < deadline and (want is None or len(lines) < want):
        try:
            k = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not k:
            break
        buf += k
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(line.decode("utf-8", "replace"))
    return lines


def main():
    args = sys.argv[1:]
    timeout = 10.0
    if "--timeout" in args:
        i = args.index("--timeout")
        timeout = float(args[i + 1])
        del args[i:i + 2]
    addr = args[0]
    deadline = time.monotonic() + timeout
    s = connect(addr, timeout)
    if args[1] == "--raw":
        data = open(args[2], "rb").read()
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        for line in read_lines(s, None, deadline):
            print(line)
        return 0
    req = {"id": 7, "method": args[1]}
    if len(args) > 2:
        req["params"] = json.loads(args[2])
    try:
        s.sendall((json.dumps(req) + "\n").encode())
    except (BrokenPipeError, ConnectionResetError):
        print("CLOSED")
        return 2
    lines = read_lines(s, 1, deadline)
    if not lines:
        print("CLOSED")
        return 2
    print(lines[0])
    r = json.loads(lines[0])
    return 0 if "result" in r else 1


if __name__ == "__main__":
    sys.exit(main())
