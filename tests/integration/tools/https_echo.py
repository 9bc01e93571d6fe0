#!/usr/bin/env python3
"""An HTTPS echo server for the TLS integration tests (stdlib only: http.server + ssl).

Every request, whatever its method, is answered with a JSON object describing exactly what
arrived, and the same object is appended as one line to --log, so a test can prove what
reached the upstream (after moat's interception, header checks or secret injection):

  {"method": "GET", "path": "/x?y=1", "host": "api.test", "headers": [["Host", "api.test"], ...],
   "body_len": 0, "body_sha256": "...", "sni": "api.test", "alpn": "http/1.1",
   "tls_version": "TLSv1.3", "client_cert": null, "peer": "10.0.0.1", "conn": 3, "req": 1}

"headers" keeps the order, the case and any repetition of the request's header lines. "conn"
numbers the TCP connections and "req" the requests on one connection (keep-alive). Paths:

  /bytes/N       answers N bytes of 'x' (application/octet-stream) instead of JSON
  /status/NNN    answers the JSON with status NNN
  /git/...       with --git-root DIR: git's smart HTTP (`git http-backend` as a CGI, the
                 repositories under DIR), so `git ls-remote/clone https://HOST/git/R.git`
                 work (request bodies need a Content-Length; git sends one for small ones)
  anything else  the JSON, status 200

Options: --cert/--key (PEM; the chain may be in --cert), --client-ca CA.pem (mTLS: a client
certificate signed by CA is required, its subject is reported in "client_cert"), --plain (no
TLS: plain HTTP, for the same checks on port 80), --alpn (default http/1.1; "none" offers no
ALPN; "h2,http/1.1" also serves HTTP/2 when the client picks it, with python3-h2: the same
JSON, "headers" then holds the pseudo-headers too, in order, and "host" is :authority, or
Host without one). Serves until --max-seconds; writes --ready-file once listening.
"""
import argparse
import hashlib
import http.server
import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--client-ca")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--alpn", default="http/1.1")
    ap.add_argument("--git-root")
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--max-seconds", type=float, default=120)
    a = ap.parse_args()
    if not a.plain and not (a.cert and a.key):
        sys.exit("https_echo: --cert and --key are required unless --plain")

    lock = threading.Lock()
    logf = open(a.log, "a")
    conn_ids = itertools.count(1)

    def log(obj):
        with lock:
            logf.write(json.dumps(obj, sort_keys=True) + "\n")
            logf.flush()

    ctx = None
    if not a.plain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        if a.alpn != "none":
            ctx.set_alpn_protocols(a.alpn.split(","))
        if a.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(a.client_ca)

        def on_sni(sslsock, name, _ctx):
            sslsock.moat_sni = name  # read back by the handler
            return None
        ctx.sni_callback = on_sni

    def answer(info, path):
        """(status, content type, body) for a request."""
        parts = path.split("?")[0].split("/")
        if len(parts) == 3 and parts[1] == "bytes" and parts[2].isdigit():
            return 200, "application/octet-stream", b"x" * min(int(parts[2]), 1 << 30)
        status = 200
        if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
            status = int(parts[2])
        return status, "application/json", (json.dumps(info, sort_keys=True) + "\n").encode()

    def serve_h2(sock, conn_id, peer):
        """HTTP/2 on an accepted TLS socket whose ALPN is h2 (python3-h2)."""
        import h2.config
        import h2.connection
        import h2.events
        h2c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2c.initiate_connection()
        sock.sendall(h2c.data_to_send())
        streams, pending, req_no = {}, {}, 0

        def flush():  # what the peer's flow-control windows allow of the pending answers
            for sid in list(pending):
                out = pending[sid]
                while out:
                    n = min(h2c.local_flow_control_window(sid), h2c.max_outbound_frame_size, len(out))
                    if n <= 0:
                        break
                    h2c.send_data(sid, out[:n])
                    out = out[n:]
                pending[sid] = out
                if not out:
                    h2c.end_stream(sid)
                    del pending[sid]

        while True:
            data = sock.recv(65536)
            if not data:
                return
            for ev in h2c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = [list(map(list, ev.headers)), b""]
                elif isinstance(ev, h2.events.DataReceived):
                    if ev.stream_id in streams:
                        streams[ev.stream_id][1] += ev.data
                    h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in streams:
                    hdrs, body = streams.pop(ev.stream_id)
                    get = lambda n: next((v for k, v in hdrs if k.lower() == n), None)
                    req_no += 1
                    info = {"method": get(":method"), "path": get(":path"), "host": get(":authority") or get("host"),
                            "headers": hdrs, "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
                            "peer": peer, "conn": conn_id, "req": req_no, "sni": getattr(sock, "moat_sni", None),
                            "alpn": "h2", "tls_version": sock.version(), "client_cert": None}
                    log(info)
                    status, ctype, out = answer(info, info["path"] or "/")
                    h2c.send_headers(ev.stream_id, [(":status", str(status)), ("content-type", ctype),
                                                   ("content-length", str(len(out)))])
                    pending[ev.stream_id] = out
                elif isinstance(ev, h2.events.StreamReset):
                    pending.pop(ev.stream_id, None)
                    streams.pop(ev.stream_id, None)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    sock.sendall(h2c.data_to_send())
                    return
            flush()
            sock.sendall(h2c.data_to_send())

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "moat-https-echo"

        def setup(self):
            super().setup()
            self.conn_id = next(conn_ids)
            self.req_no = 0

        def log_message(self, fmt, *args):  # requests go to --log as JSON instead
            pass

        def handle_any(self):
            self.req_no += 1
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n > 0 else b""
            c = self.connection
            info = {
                "method": self.command,
                "path": self.path,
                "host": self.headers.get("Host"),
                "headers": [[k, v] for k, v in self.headers.raw_items()],
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "peer": self.client_address[0],
                "conn": self.conn_id,
                "req": self.req_no,
                "sni": getattr(c, "moat_sni", None),
                "alpn": c.selected_alpn_protocol() if ctx else None,
                "tls_version": c.version() if ctx else None,
                "client_cert": None,
            }
            if ctx and a.client_ca:
                cert = c.getpeercert()
                if cert:
                    info["client_cert"] = ",".join("%s=%s" % kv for rdn in cert.get("subject", ()) for kv in rdn)
            log(info)
            if a.git_root and self.path.startswith("/git/"):
                return self.git(body)
            status, ctype, out = answer(info, self.path)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        def git(self, body):
            path, _, query = self.path[len("/git"):].partition("?")
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": a.git_root,
                   "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command, "PATH_INFO": path,
                   "QUERY_STRING": query, "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                   "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": self.client_address[0],
                   "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
            r = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=30)
            head, _, out = r.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, out = r.stdout.partition(b"\n\n")
            status, hdrs = 200, []
            for line in head.decode("latin-1").splitlines():
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.split()[0])
                elif k:
                    hdrs.append((k, v.strip()))
            self.send_response(status)
            for k, v in hdrs:
                if k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in a.bind else socket.AF_INET

        def get_request(self):
            sock, addr = self.socket.accept()
            return sock, addr

        def finish_request(self, request, client_address):
            # The TLS handshake runs in the connection's thread, not in the accept loop.
            if ctx:
                request.settimeout(10)
                try:
                    request = ctx.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    log({"handshake_error": str(e), "peer": client_address[0]})
                    request.close()
                    return
                request.settimeout(30)
            try:
                if ctx and request.selected_alpn_protocol() == "h2":
                    try:
                        serve_h2(request, next(conn_ids), client_address[0])
                    except Exception as e:  # a broken client: log it, close
                        log({"h2_error": repr(e), "peer": client_address[0]})
                    return
                self.RequestHandlerClass(request, client_address, self)
            finally:
                if ctx:
                    request.close()

    srv = Server((a.bind, a.port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    if a.ready_file:
        with open(a.ready_file + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(a.ready_file + ".tmp", a.ready_file)
    time.sleep(a.max_seconds)
    sys.exit(0)


if __name__ == "__main__":
    main()
