"""Application of tests/e2e_listen.sh for real app servers (standard
library only), as a WSGI app `wsgi` (gunicorn) and an ASGI app `asgi`
(uvicorn):

  gunicorn --chdir DIR/ listen_app:wsgi     (the socket from LISTEN_FDS)
  uvicorn --fd {fd} --app-dir DIR/ listen_app:asgi

Reads its release from the file `release` beside it, once, at import:

  GET /           -> 200 "RELEASE\\n"
  GET /sleep?S    -> 200 "RELEASE\\n" after S seconds
  GET /health     -> 200 "ok\\n"

A release named `bad-*` answers 500 to everything.

ASGI only, through the middleware CloseOnDrain: on SIGUSR1 (rolld's
drain_signal) every next response says `Connection: close`, so that
keep-alive clients leave a retiring process between two requests of
theirs, through the port, to the new set. uvicorn itself has no such
signal: on SIGTERM it closes its idle keep-alive connections at once,
racing a request the client may be sending on one. (A WSGI app cannot do
this: gunicorn drops hop-by-hop headers; its gthread workers answer with
`Connection: close` themselves once stopping.)
"""

import asyncio
import os
import signal
import time

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "release")) as f:
    release = f.read().strip()


def answer(path):
    """(status, body) of a GET of path."""
    body = ("ok" if path == "/health" else release) + "\n"
    return (500 if release.startswith("bad-") else 200), body.encode()


def sleep_secs(path, query):
    """How long a GET of path?query waits before it answers."""
    return float(query) if path == "/sleep" and query else 0.0


def wsgi(environ, start_response):
    path, query = environ.get("PATH_INFO", "/"), environ.get("QUERY_STRING", "")
    time.sleep(sleep_secs(path, query))
    status, body = answer(path)
    start_response(
        "%d %s" % (status, "OK" if status == 200 else "Internal Server Error"),
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path, query = scope["path"], scope["query_string"].decode("latin-1")
    await asyncio.sleep(sleep_secs(path, query))
    status, body = answer(path)
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CloseOnDrain:
    """ASGI middleware: once the process got SIGUSR1 (rolld's drain_signal),
    every response says `Connection: close`."""

    def __init__(self, app):
        self.app = app
        self.draining = False

    def drain(self, *_):
        self.draining = True

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            # In the server's main thread, as it starts.
            signal.signal(signal.SIGUSR1, self.drain)
            return await self.app(scope, receive, send)

        async def send_closing(message):
            if self.draining and message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", ()), (b"connection", b"close")])
            await send(message)

        return await self.app(scope, receive, send_closing)


asgi = CloseOnDrain(app)
