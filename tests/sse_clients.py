#!/usr/bin/env python3
"""Server-Sent Events clients for tests/e2e_streams.sh (standard library only).

  sse_clients.py --port PORT --clients N --dir DIR

N clients, each holding a stream open on GET /events through the load
balancer on 127.0.0.1:PORT, and opening a new one 0.5 s (the stream's
"retry") after a stream ends. Each stream ends in one of three ways:

  reconnect  the server sent "event: reconnect", then closed it: graceful;
  cut        the connection closed (or failed) without that event;
  stopped    this program was told to stop while it was open.

Every 100 ms DIR/current.json is rewritten (by rename) with the backend port
of each client's open stream (from its "data: port P ..." lines; null between
streams) and the counts so far. Once DIR/stop exists, the clients stop and
DIR/summary.json is written: the counts, and every stream that was cut or
failed, with its times. Exit status 0 unless a client crashed.
"""

import argparse
import json
import os
import socket
import threading
import time

RETRY = 0.5


class Tally:
    def __init__(self, n):
        self.lock = threading.Lock()
        self.current = [None] * n
        self.counts = {"reconnect": 0, "cut": 0, "stopped": 0, "errors": 0, "streams": 0}
        self.bad = []

    def end(self, i, outcome, stream):
        with self.lock:
            self.current[i] = None
            self.counts[outcome] += 1
            self.counts["streams"] += 1
            if outcome == "cut":
                self.bad.append(stream)

    def error(self, i, what):
        with self.lock:
            self.current[i] = None
            self.counts["errors"] += 1
            self.bad.append({"client": i, "error": what, "at": time.time()})

    def snapshot(self):
        with self.lock:
            return {"current": list(self.current), "counts": dict(self.counts)}


def one_stream(i, port, tally, stop):
    """Opens one stream and reads it to its end; False on a failure."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        tally.error(i, "connect: %s" % e)
        return False
    started = time.time()
    stream = {"client": i, "start": started, "port": None, "events": 0}
    try:
        s.sendall(b"GET /events HTTP/1.0\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n")
        s.settimeout(0.2)
        buf = b""
        head = None
        reconnect = False
        while True:
            if stop.is_set():
                tally.end(i, "stopped", stream)
                return True
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                stream.update(end=time.time(), why="recv: %s" % e)
                tally.end(i, "cut", stream)
                return False
            if not data:
                stream["end"] = time.time()
                if head is None:
                    tally.error(i, "closed before the response head")
                    return False
                tally.end(i, "reconnect" if reconnect else "cut", stream)
                return reconnect
            buf += data
            if head is None:
                if b"\r\n\r\n" not in buf:
                    continue
                head, buf = buf.split(b"\r\n\r\n", 1)
                status = head.split(b"\r\n", 1)[0]
                if b" 200 " not in status + b" ":
                    tally.error(i, "status %r" % status.decode(errors="replace"))
                    return False
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                if line == b"event: reconnect":
                    reconnect = True
                elif line.startswith(b"data: port "):
                    p = int(line.split()[2])
                    stream["port"] = p
                    stream["events"] += 1
                    with tally.lock:
                        tally.current[i] = None if reconnect else p
    finally:
        s.close()


def client(i, port, tally, stop):
    while not stop.is_set():
        one_stream(i, port, tally, stop)
        stop.wait(RETRY)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    tally = Tally(a.clients)
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(i, a.port, tally, stop), daemon=True)
               for i in range(a.clients)]
    for t in threads:
        t.start()
    stop_file = os.path.join(a.dir, "stop")

    def publish(name, obj):
        tmp = os.path.join(a.dir, name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f)
        os.rename(tmp, os.path.join(a.dir, name))

    deadline = time.monotonic() + 900  # ends by itself, whatever happens
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        publish("current.json", tally.snapshot())
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=5)
    snap = tally.snapshot()
    publish("summary.json", {"counts": snap["counts"], "bad": tally.bad})


if __name__ == "__main__":
    main()
