#!/usr/bin/env python3
"""Backend of tests/e2e_surge.sh (standard library only).

  release_backend.py PORT [--fd N]

Reads the release it runs from the file `release` beside it, once, at
start. When the file `fail-PORT-RELEASE` exists beside it, that release
refuses to start on that port (exit 3). Otherwise it serves on
127.0.0.1:PORT (with --fd N: on the listening socket it inherited as
descriptor N, PORT then only naming it), one request per connection:

  GET /         -> 200 "port PORT\\n"
  GET /release  -> 200 "RELEASE\\n"

While the file `sick` exists beside it, every GET answers 503 (a cause
all backends share, such as a database down).

On SIGTERM it stops accepting, finishes the requests in flight, exits 0.
"""

import os
import signal
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

here = os.path.dirname(os.path.abspath(__file__))
args = sys.argv[1:]
if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--fd"):
    sys.stderr.write("usage: release_backend.py PORT [--fd N]\n")
    sys.exit(2)
port = int(args[0])
fd = int(args[2]) if len(args) == 3 else None
with open(os.path.join(here, "release")) as f:
    release = f.read().strip()
if os.path.exists(os.path.join(here, "fail-%d-%s" % (port, release))):
    sys.stderr.write("release %s refuses to start on port %d\n" % (release, port))
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if os.path.exists(os.path.join(here, "sick")):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        body = (release if self.path == "/release" else "port %d" % port) + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = port


if fd is None:
    server = Server(("127.0.0.1", port), Handler)
else:
    server = Server(("127.0.0.1", port), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    server.socket.setblocking(True)  # whoever made it may have left it non-blocking
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
server.serve_forever(poll_interval=0.05)
server.server_close()
