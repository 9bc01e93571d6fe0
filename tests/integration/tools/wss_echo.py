#!/usr/bin/env python3
"""A WebSocket echo server over TLS (wss) for the TLS integration tests (python3-websockets).

Each message is sent back unchanged (text stays text, binary stays binary). One JSON line per
event goes to --log: {"ev": "open", "path": ..., "host": ..., "headers": [[k, v], ...]},
{"ev": "msg", "len": N, "text": bool}, {"ev": "close", "code": ...}. --plain serves ws://
instead. Serves until --max-seconds; writes --ready-file once listening.

Needs Debian's python3-websockets (10.x): run it with /usr/bin/python3 when another python3
comes first in PATH (tls_lib.sh does).
"""
import argparse
import asyncio
import json
import os
import ssl
import sys

import websockets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--max-seconds", type=float, default=120)
    a = ap.parse_args()
    logf = open(a.log, "a")

    def log(obj):
        logf.write(json.dumps(obj, sort_keys=True) + "\n")
        logf.flush()

    ctx = None
    if not a.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols(["http/1.1"])

    async def echo(ws):
        log({"ev": "open", "path": ws.path, "host": ws.request_headers.get("Host"),
             "headers": [[k, v] for k, v in ws.request_headers.raw_items()]})
        try:
            async for m in ws:
                log({"ev": "msg", "len": len(m), "text": isinstance(m, str)})
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        log({"ev": "close", "code": ws.close_code})

    async def run():
        async with websockets.serve(echo, a.bind, a.port, ssl=ctx, max_size=1 << 20):
            if a.ready_file:
                with open(a.ready_file + ".tmp", "w") as f:
                    f.write("ready\n")
                os.rename(a.ready_file + ".tmp", a.ready_file)
            await asyncio.sleep(a.max_seconds)

    asyncio.run(run())
    sys.exit(0)


if __name__ == "__main__":
    main()
