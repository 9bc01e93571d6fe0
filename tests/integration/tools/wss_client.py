#!/usr/bin/env python3
"""A WebSocket client for the TLS integration tests: connects to URL (ws:// or wss://),
sends each MESSAGE and prints "echo <message>" for each answer, then closes. --cafile
trusts that CA (default: the system's / SSL_CERT_FILE), --timeout bounds the whole run.
Exit 0 when every message came back unchanged, 1 otherwise (the error is printed).

Needs Debian's python3-websockets (10.x): run it with /usr/bin/python3.
"""
import argparse
import asyncio
import ssl
import sys

import websockets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("messages", nargs="*", default=["hello"])
    ap.add_argument("--cafile")
    ap.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    ctx = None
    if a.url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=a.cafile)

    async def run():
        async with websockets.connect(a.url, ssl=ctx, open_timeout=a.timeout) as ws:
            for m in a.messages:
                await ws.send(m)
                r = await ws.recv()
                print("echo", r)
                if r != m:
                    return 1
        return 0

    try:
        rc = asyncio.run(asyncio.wait_for(run(), a.timeout))
    except Exception as e:  # printed for the test's log
        print("ERROR", type(e).__name__, e)
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
