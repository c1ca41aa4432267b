#!/usr/bin/env python3
"""Tiny demo backend for the rolld example (Python standard library only).

Usage: python3 app.py PORT [--fd N]

  GET /          -> 200 "port PORT\n"
  GET /slow?s=X  -> sleeps X seconds (float), then 200 "slow done port PORT\n"
  GET /events    -> Server-Sent Events: "retry: 500", then "data: port PORT
                    tick N" every 100 ms, until the server lets go of it

Binds 127.0.0.1:PORT; with --fd N it serves instead the listening socket it
inherited as descriptor N (behind rolld's `listen:`, cmd
'python3 app.py {numproc} --fd {fd}'), PORT then only naming it in answers.
Each request runs in its own (non-daemon) thread and the connection is closed
after every response (HTTP/1.0 style).

On SIGUSR1 (rolld's `drain_signal` in example/rolld.yml: "the load balancer
sends you nothing new; let go of your clients") the server ends each open
event stream with an "event: reconnect" message and closes it, the streams
spread over DRAIN_WINDOW seconds so that their clients do not all come back
in the same millisecond. A stream asked for after that gets the reconnect
message at once. Plain requests are served as before, until SIGTERM.

On SIGTERM or SIGINT the server stops accepting new connections (the listening
socket is closed), ends the event streams still open the same way, waits for
the requests already in flight to finish, and exits with status 0. That is
the graceful stop rolld relies on when it retires an old workset.
"""

import os
import signal
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

TICK = 0.1          # seconds between two events of a stream
DRAIN_WINDOW = 1.0  # seconds over which open streams are ended on SIGUSR1


def log(msg):
    sys.stderr.write("%s app[%d] %s\n" % (
        time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), msg))
    sys.stderr.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection
    timeout = 30  # a client that connects and sends nothing cannot delay exit forever

    def version_string(self):
        return "rolld-example-app"

    def _reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):
        port = self.server.server_address[1]
        url = urlsplit(self.path)
        if url.path == "/":
            self._reply(200, "port %d\n" % port)
        elif url.path == "/slow":
            try:
                secs = float(parse_qs(url.query).get("s", ["1"])[0])
                if not 0 <= secs <= 3600:
                    raise ValueError
            except ValueError:
                self._reply(400, "bad s parameter\n")
                return
            time.sleep(secs)
            self._reply(200, "slow done port %d\n" % port)
        elif url.path == "/events":
            self._events(port)
        else:
            self._reply(404, "not found\n")

    def _events(self, port):
        """One event stream, held until the server lets go of it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        leave = threading.Event()
        streams = self.server.streams
        with streams.lock:
            streams.open.add(leave)
            if streams.draining:
                leave.set()
        try:
            self.wfile.write(b"retry: 500\n\n")
            n = 0
            while not leave.wait(0 if n == 0 else TICK):
                n += 1
                self.wfile.write(("data: port %d tick %d\n\n" % (port, n)).encode())
                self.wfile.flush()
            self.wfile.write(("event: reconnect\ndata: port %d\n\n" % port).encode())
            self.wfile.flush()
        finally:
            with streams.lock:
                streams.open.discard(leave)

    do_HEAD = do_GET

    def log_message(self, format, *args):
        pass  # no access log

    def handle(self):
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass


class Streams:
    """The event streams open on a server, each one's "leave" event."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = set()
        self.draining = False

    def let_go(self, window):
        """Ends every open stream (and, from now on, every new one), the
        open ones spread over `window` seconds."""
        with self.lock:
            self.draining = True
            todo = list(self.open)
        for i, leave in enumerate(todo):
            if i and window:
                time.sleep(window / len(todo))
            leave.set()
        return len(todo)


class Server(ThreadingHTTPServer):
    daemon_threads = False     # in-flight requests must be able to finish
    block_on_close = True      # server_close() joins the request threads
    allow_reuse_address = True
    request_queue_size = 128

    def server_bind(self):
        # Skip HTTPServer.server_bind's reverse DNS lookup (getfqdn): start fast.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]


def make_server(port, fd):
    """The server of PORT: bound to 127.0.0.1:PORT, or, when fd is given,
    on the listening socket inherited as that descriptor."""
    if fd is None:
        return Server(("127.0.0.1", port), Handler)
    server = Server(("127.0.0.1", port), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = socket.socket(fileno=fd)
    server.socket.setblocking(True)  # whoever made it may have left it non-blocking
    server.server_name = "127.0.0.1"
    server.server_port = port
    return server


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--fd"):
        sys.stderr.write("usage: app.py PORT [--fd N]\n")
        return 2
    port = int(args[0])
    fd = int(args[2]) if len(args) == 3 else None
    server = make_server(port, fd)
    server.streams = Streams()
    stopping = threading.Event()

    def on_drain(signum, _frame):
        def drain():
            n = server.streams.let_go(DRAIN_WINDOW)
            log("port %d: got %s, asked %d stream(s) to reconnect" % (port, signal.Signals(signum).name, n))
        threading.Thread(target=drain, daemon=True).start()

    def on_signal(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log("port %d: got %s, stopping" % (port, signal.Signals(signum).name))
        # shutdown() blocks until serve_forever() returns, so it must not run in
        # the main thread (which is inside serve_forever()).
        threading.Thread(target=server.shutdown, daemon=True).start()
        threading.Thread(target=server.streams.let_go, args=(0,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, on_drain)

    log("port %d: listening%s" % (port, "" if fd is None else " on descriptor %d" % fd))
    server.serve_forever(poll_interval=0.1)

    # Serve connections the kernel already queued for us, then close the
    # listening socket so new connection attempts are refused.
    server.socket.setblocking(False)
    while True:
        try:
            conn, addr = server.socket.accept()
        except (BlockingIOError, OSError):
            break
        conn.setblocking(True)
        server.process_request(conn, addr)
    # Closes the listening socket, then joins the in-flight request threads.
    server.server_close()
    log("port %d: stopped" % port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
