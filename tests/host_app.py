#!/usr/bin/env python3
"""A backend that listens on ::1 only and checks the Host header, as a
Django app with ALLOWED_HOSTS does (Python standard library only).

Usage: python3 host_app.py PORT

Binds [::1]:PORT (IPV6_V6ONLY: nothing on 127.0.0.1). At start it reads,
from its own directory:
  want_host  if present, the only Host accepted; any other gets
             400 "Invalid HTTP_HOST header: '<host>'."
  version    the version it reports (default 1)

  GET /          -> 200 "port PORT version VERSION\n"
  GET /slow?s=X  -> sleeps X seconds, then 200 "slow done port PORT\n"
  GET /slow?until=NAME
                 -> the same once the file NAME exists in its directory
                    (at most 60 s)

On SIGTERM it stops accepting, finishes the requests in flight and exits 0.
"""

import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))


def read(name):
    try:
        with open(os.path.join(HERE, name)) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None


PORT = int(sys.argv[1])
WANT_HOST = read("want_host")
VERSION = read("version") or "1"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 30

    def _reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        host = self.headers.get("Host", "")
        if WANT_HOST is not None and host != WANT_HOST:
            self._reply(400, "Invalid HTTP_HOST header: '%s'.\n" % host)
            return
        url = urlsplit(self.path)
        if url.path == "/":
            self._reply(200, "port %d version %s\n" % (PORT, VERSION))
        elif url.path == "/slow":
            query = parse_qs(url.query)
            until = query.get("until", [None])[0]
            if until is None:
                time.sleep(float(query.get("s", ["1"])[0]))
            elif re.fullmatch(r"[a-z0-9-]{1,40}", until):
                deadline = time.monotonic() + 60
                while not os.path.exists(os.path.join(HERE, until)) and time.monotonic() < deadline:
                    time.sleep(0.05)
            else:
                self._reply(400, "bad until parameter\n")
                return
            self._reply(200, "slow done port %d\n" % PORT)
        else:
            self._reply(404, "not found\n")

    def log_message(self, format, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socketserver.TCPServer.server_bind(self)
        self.server_name = "::1"
        self.server_port = PORT


def main():
    server = Server(("::1", PORT), Handler)
    stopping = threading.Event()

    def on_signal(_signum, _frame):
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever(poll_interval=0.1)
    # Serve what the kernel already queued, then close the listening socket
    # and wait for the requests in flight.
    server.socket.setblocking(False)
    while True:
        try:
            conn, addr = server.socket.accept()
        except OSError:
            break
        conn.setblocking(True)
        server.process_request(conn, addr)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
