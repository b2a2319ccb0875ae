"""uvicorn, and all this package knows of it: the listening socket, the server's bounds, and how it stops.

What uvicorn's public configuration can say is said in `_uvicorn_server`: the connections it
takes (`limit_concurrency`), how long a kept-alive connection may stay silent after an answer
(`timeout_keep_alive`), how long a request head may grow (`h11_max_incomplete_event_size`),
how long a graceful stop waits. `ServingProtocol`, uvicorn's HTTP/1.1 protocol class with three
changes, serves what nothing public does; it is the one place that reaches into uvicorn, and
says which of its names it relies on (a test checks that they are still there).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from sequencer.errors import ConfigError
from sequencer.serving.requests import method_and_path

log = logging.getLogger(__name__)

# What `ServingProtocol` was written against: a test names these if a newer uvicorn moved what it uses.
WRITTEN_FOR = "uvicorn 0.54.0 and h11 0.16.0"
# Open connections beyond this get a 503, which bounds the requests waiting to be decoded.
MAX_CONNECTIONS = 256
# How long a connection may take to send a request's head (its request line and headers), from
# when it opens or its last answer went: a client that sends none is closed after it, rather
# than holding one of the MAX_CONNECTIONS places for as long as it likes.
HEAD_SECONDS = 10.0
# How many bytes a request head (request line and headers) may hold before it gets a 400: h11's default, named.
HEAD_BYTES = 16 * 1024
# How long a kept-alive connection may stay silent after an answer before it is closed: uvicorn's default.
KEEP_ALIVE_SECONDS = 5
# How long Ctrl-C or SIGTERM waits for the requests in flight before the server stops regardless.
GRACEFUL_SHUTDOWN_SECONDS = 60
LISTEN_BACKLOG = 2048  # uvicorn's default
# The answer to bytes that are not an HTTP/1.1 request: h11, which reads them, does not say what.
NOT_HTTP = (
    "the request is not HTTP/1.1 the server can read: a malformed request line, header or "
    "Content-Length, or too long a request line and headers"
)


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port`, bound before the model loads so that a taken port is a quick error.

    The socket is made with the protocol TCP named, as asyncio makes its own: only then does
    asyncio turn Nagle's algorithm off on the connections, without which each answer on a
    kept-alive connection would wait for the client's delayed acknowledgement (40 ms on Linux).
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
    except socket.gaierror as error:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}); set host to an address of this machine"
        ) from None
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # a restarted server need not wait for old connections
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({error.strerror}); set another port or host") from None
    return sock


class ServingProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for request heads, and JSON answers to what is
    not HTTP and to requests beyond `limit_concurrency`.

    uvicorn closes a kept-alive connection that stays silent after an answer (after
    `timeout_keep_alive`), but not one that sends nothing from the start, or stops halfway
    through its headers: enough of those would hold every place `limit_concurrency` allows, so
    this one closes a connection that sends no whole request head within `HEAD_SECONDS`. And
    where uvicorn answers bytes that h11 cannot read as a request with a plain-text 400, or a
    request beyond its limit with a plain-text 503, this one answers with the JSON error every
    other refusal has. uvicorn has no setting for any of the three.

    `H11Protocol` (uvicorn.protocols.http.h11_impl) is not public API: `uvicorn.Config` takes a
    protocol class as `http`, but what uvicorn's own class holds and calls may change in any
    release. This class relies on these names of it, as uvicorn 0.54 has them:

    - `__init__(*args, **kwargs)`, whatever uvicorn passes, which sets the attributes below.
    - `self.limit_concurrency`: `handle_events` answers a request beyond it with uvicorn's
      plain-text 503 before the app runs. It is set to None on each connection, so that uvicorn
      never does, and kept as `self.limit`.
    - `self.app`: what `handle_events` runs for each request. It becomes `_within_limit`, which
      answers beyond the limit with the JSON 503 and otherwise runs the app, kept as `self._app`.
    - `self.connections` and `self.tasks`: the server's sets of open connections and of running
      request tasks (its `ServerState`'s), which uvicorn's own check counts: `_within_limit`
      counts them as it does.
    - `self.conn`, the connection's `h11.Connection`: its `their_state` tells whether a request
      head came, and `send` makes the bytes of the JSON 400 (both h11's public API).
    - `self.transport` and `self.loop`: the connection's transport (to write to and close) and the
      event loop (for the head deadline's timer).
    - `connection_made` and `connection_lost` (asyncio's protocol methods, which uvicorn's
      implement) and `on_response_complete` (the callback uvicorn gives each request's cycle for
      when its answer has gone): each extended, calling uvicorn's first, to start or stop the
      head deadline.
    - `send_400_response(msg)`: what `handle_events` calls for bytes h11 cannot read (an
      `h11.RemoteProtocolError`), replaced.

    Of h11 only its public API is used; its limit on a request head is set through uvicorn's
    `h11_max_incomplete_event_size`.
    """

    _head_deadline: asyncio.TimerHandle | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn's own check of the limit would answer in plain text: `_within_limit` makes it instead.
        self.limit, self.limit_concurrency = self.limit_concurrency, None
        self.app, self._app = self._within_limit, self.app

    async def _within_limit(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, unless uvicorn's limit is reached: as uvicorn counts, this connection is one of
        the open connections and, by the time the app runs, this request's task one of the tasks."""
        if self.limit is None or (len(self.connections) < self.limit and len(self.tasks) <= self.limit):
            await self._app(scope, receive, send)
            return
        message = f"the server has as many connections and requests as it takes ({self.limit}); try again later"
        log.warning("%s 503: %s", method_and_path(scope["method"], scope["path"]), message)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 503, "headers": [*headers, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._head_deadline:
            self._head_deadline.cancel()

    def _await_head(self) -> None:
        """From now, the next request's head has `HEAD_SECONDS` to arrive (an earlier deadline is over)."""
        if self._head_deadline:
            self._head_deadline.cancel()
        self._head_deadline = self.loop.call_later(HEAD_SECONDS, self._close_without_head)

    def _close_without_head(self) -> None:
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():  # no request line and headers yet
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """Answer what h11 could not read as a request (uvicorn's `msg` says only that), then close."""
        body = json.dumps({"error": NOT_HTTP}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        for event in (
            h11.Response(status_code=400, headers=[*headers, (b"connection", b"close")], reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


def _uvicorn_server(app: FastAPI) -> uvicorn.Server:
    """uvicorn's server for `app`, with the connection, header and shutdown bounds above.

    uvicorn's own logging is left unconfigured: the request lines come from the app's
    `RequestLog`, and uvicorn's warnings and errors still reach standard error.
    """
    return uvicorn.Server(
        uvicorn.Config(
            app,
            http=ServingProtocol,
            log_config=None,
            access_log=False,
            backlog=LISTEN_BACKLOG,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            h11_max_incomplete_event_size=HEAD_BYTES,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on `sock` until Ctrl-C or SIGTERM, which let the requests in flight finish first.

    After SIGTERM, how systemd, Docker and Kubernetes stop a service, this returns, so that the
    script exits with status 0 as uvicorn and gunicorn do; after Ctrl-C, uvicorn raises SIGINT
    again, which `cli.run_script` reports as an interruption (status 130). A second Ctrl-C stops
    at once: the requests in flight get a 503 (`Batcher.translate`).
    """
    # What start-up made (TensorFlow, Keras, the model) lives as long as the server: out of the
    # garbage collector's reach, its full collections no longer walk it all, which paused a
    # request for about 250 ms every few hundred requests.
    gc.freeze()
    host, port = sock.getsockname()[:2]
    log.info("serving on http://%s:%d/ (Ctrl-C stops)", f"[{host}]" if ":" in host else host, port)
    server = _uvicorn_server(app)
    with _sigterm_stops(server):
        server.run(sockets=[sock])


@contextmanager
def _sigterm_stops(server: uvicorn.Server) -> Iterator[None]:
    """While the block runs, SIGTERM asks `server` for a graceful stop, and does nothing else.

    uvicorn handles SIGINT and SIGTERM itself while it runs; after a graceful stop it puts back
    the handlers it found and raises the signals it caught again, for the program's own handling
    to follow. The script's (`cli.run_script`) turns SIGTERM into KeyboardInterrupt, an
    interruption with status 130, which is right for a job cut short but not for a server's
    ordinary stop. So while uvicorn runs, the handler it finds, and calls again, only sets
    `server.should_exit` (what uvicorn's own handler sets, and its main loop watches): a no-op
    after uvicorn's stop, and a graceful stop if SIGTERM comes before uvicorn handles it. Ctrl-C
    is left as it was.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread can handle signals
        yield
        return

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
