#!/usr/bin/env python3
"""Backend of tests/e2e_listen.sh (standard library only): serves on the
listening socket rolld hands it.

  listen_backend.py FD

Serves HTTP/1.1 (keep-alive) on descriptor FD, a listening socket it did
not create (rolld's, of a `listen:` group), checking LISTEN_FDS=1 and
LISTEN_PID (its own pid), as sd_listen_fds(3) does. Reads its release from
the file `release` beside it, once, at start:

  GET /           -> 200 "RELEASE\\n"
  GET /sleep?S    -> 200 "RELEASE\\n" after S seconds
  GET /health     -> 200 "ok\\n"

A release named `bad-*` answers 500 to everything. On SIGUSR1 (rolld's
drain_signal) it answers each next request with `Connection: close`, so
keep-alive clients come back through the port to the new set. On SIGTERM
it stops accepting, finishes the requests in flight (at most 30 s), and
exits 0.
"""

import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
fd = int(sys.argv[1])
if os.environ.get("LISTEN_FDS") != "1" or os.environ.get("LISTEN_PID") != str(os.getpid()):
    sys.stderr.write("LISTEN_FDS=%r LISTEN_PID=%r, pid %d\n"
                     % (os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID"), os.getpid()))
    sys.exit(2)
with open(os.path.join(here, "release")) as f:
    release = f.read().strip()
draining = threading.Event()
active = [0]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        with lock:
            active[0] += 1
        try:
            self.answer()
        finally:
            with lock:
                active[0] -= 1

    def answer(self):
        if self.path.startswith("/sleep?"):
            time.sleep(float(self.path.split("?", 1)[1]))
        body = ("ok" if self.path == "/health" else release) + "\n"
        data = body.encode()
        self.send_response(500 if release.startswith("bad-") else 200)
        self.send_header("Content-Length", str(len(data)))
        if draining.is_set() or self.close_connection:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, sock):
        # The socket is rolld's: no bind, no listen.
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


sock = socket.socket(fileno=fd)
server = Server(sock)
signal.signal(signal.SIGUSR1, lambda *_: draining.set())


def stop(*_):
    draining.set()
    threading.Thread(target=server.shutdown, daemon=True).start()


signal.signal(signal.SIGTERM, stop)
server.serve_forever(poll_interval=0.05)
# Stopped: the requests in flight finish (idle keep-alive connections do not hold it).
deadline = time.monotonic() + 30
while active[0] > 0 and time.monotonic() < deadline:
    time.sleep(0.01)
