"""sequencer/serving/server.py: the server under uvicorn, its bounds and JSON refusals, how it stops, and
the names of uvicorn's that its protocol class relies on.

The app decodes with a stub backend (`Recorder`); scripts/serve.py's own stops are in test_serving.py.
"""

import asyncio
import gc
import http.client
import inspect
import json
import logging
import os
import signal
import socket
import threading
import time
from contextlib import contextmanager

import h11
import pytest
import uvicorn
from test_serving import Recorder, stub_config
from uvicorn.protocols.http.h11_impl import H11Protocol

from sequencer.serving import create_app, listen, run_server
from sequencer.serving import server as server_module
from sequencer.serving.server import MAX_CONNECTIONS, NOT_HTTP, WRITTEN_FOR, ServingProtocol, _uvicorn_server

# What ServingProtocol uses of uvicorn's H11Protocol (its docstring says why): attributes each
# connection's protocol sets as it is made...
H11_ATTRIBUTES = ("conn", "connections", "tasks", "app", "limit_concurrency", "transport", "loop")
# ...the methods it extends or replaces...
H11_METHODS = ("connection_made", "connection_lost", "on_response_complete", "send_400_response")
# ...and what `handle_events` must go on doing for those to work: read `self.limit_concurrency`
# and `self.app` for each request, answer what h11 cannot read through `self.send_400_response`,
# and give each request's cycle `self.on_response_complete` to call when its answer has gone.
HANDLE_EVENTS_USES = (
    "self.limit_concurrency",
    "app = self.app",
    "self.send_400_response(",
    "on_response=self.on_response_complete",
)


@pytest.fixture
def config():
    return stub_config()


@contextmanager
def uvicorn_thread(config, backend=None):
    """The app of `backend` (an instant `Recorder`) under the server's uvicorn, on a thread: (its port, the server)."""
    sock = listen("127.0.0.1", 0)
    server = _uvicorn_server(create_app(backend or Recorder(seconds=0), config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        yield sock.getsockname()[1], server
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def answer_to_raw(port, data: bytes) -> bytes:
    """Everything the server sends back to `data` on a new connection, until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "data",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ten\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"x" * 20_000,  # and more to come
    ],
    ids=["not-http", "bad-content-length", "head-over-16KB-so-far"],
)
def test_what_is_not_http_gets_a_json_400(config, data):
    with uvicorn_thread(config) as (port, _):
        answer = answer_to_raw(port, data)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": NOT_HTTP}


def test_a_request_beyond_the_connection_limit_gets_a_json_503_and_one_within_it_its_answer(config, monkeypatch):
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 3)
    with uvicorn_thread(config) as (port, _):
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        time.sleep(0.2)  # accepted: with the next one, 3 connections are open
        beyond = answer_to_raw(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for connection in idle:
            connection.close()
        time.sleep(0.2)
        within = answer_to_raw(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    head, _, body = beyond.partition(b"\r\n\r\n")
    assert (
        head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") and b"content-type: application/json" in head.lower()
    )
    assert json.loads(body) == {
        "error": "the server has as many connections and requests as it takes (3); try again later"
    }
    assert within.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_connection_that_sends_no_whole_request_head_is_closed(config, monkeypatch):
    monkeypatch.setattr(server_module, "HEAD_SECONDS", 1.0)
    with uvicorn_thread(config) as (port, _):
        silent, halfway = (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2))
        halfway.sendall(b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
        kept_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        used = []
        for pause in (0, 0.3):  # a kept-alive connection's next request, before its deadline
            time.sleep(pause)
            kept_alive.request("POST", "/translate", json.dumps({"text": ["hi"]}))
            answer = kept_alive.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["translations"] == ["HI"]
            used.append(kept_alive.sock)
        assert used[0] is used[1]  # the same connection both times
        assert silent.recv(1) == b"" and halfway.recv(1) == b""  # closed by the server, unanswered
        for connection in (silent, halfway, kept_alive):
            connection.close()


def test_a_forced_stop_answers_the_requests_in_flight_with_a_json_503(config, caplog):
    recorder, answers = Recorder(seconds=2), []

    def ask() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", "/translate", json.dumps({"text": ["hi"]}))
        answer = connection.getresponse()
        answers.append((answer.status, json.loads(answer.read())))

    with uvicorn_thread(config, recorder) as (port, server):
        asking = [threading.Thread(target=ask) for _ in range(2)]
        for thread in asking:
            thread.start()
        while not recorder.calls:  # decoding
            time.sleep(0.01)
        server.should_exit = server.force_exit = True  # what a second Ctrl-C does
        for thread in asking:
            thread.join(timeout=30)
    assert answers == [(503, {"error": "the server stopped before it translated this request"})] * 2
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


def test_sigterm_finishes_the_request_in_flight_and_returns(config):
    """SIGTERM, how systemd, Docker and Kubernetes stop a service, is a graceful stop after which
    `run_server` returns (serve.py exits with status 0), the handler it found back in place and
    never called: cli.run_script's would have made it an interruption, status 130."""
    recorder, answers, called = Recorder(seconds=1), [], []
    sock = listen("127.0.0.1", 0)  # listening: a request waits in its backlog until uvicorn runs

    def ask_then_stop() -> None:
        connection = http.client.HTTPConnection(*sock.getsockname()[:2], timeout=30)
        connection.request("POST", "/translate", json.dumps({"text": ["hi"]}))
        while not recorder.calls:  # decoding
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        answer = connection.getresponse()
        answers.append((answer.status, json.loads(answer.read())["translations"]))

    def noted(signum, frame) -> None:  # cli.run_script's handler raises KeyboardInterrupt
        called.append(signum)

    found = signal.signal(signal.SIGTERM, noted)
    asking = threading.Thread(target=ask_then_stop)
    asking.start()
    try:
        run_server(create_app(recorder, config), sock)
    finally:
        asking.join(timeout=30)
        left = signal.signal(signal.SIGTERM, found)
        gc.unfreeze()  # run_server froze what the tests made so far
    assert answers == [(200, ["HI"])]
    assert called == [] and left is noted


def test_uvicorn_still_has_what_the_serving_protocol_relies_on(config):
    """Fails when a uvicorn release moves a name ServingProtocol uses: then read its docstring,
    and uvicorn's h11_impl.py, before changing the version in requirements.txt."""
    server = _uvicorn_server(create_app(Recorder(), config))
    loop = asyncio.new_event_loop()
    try:
        made = {"config": server.config, "server_state": server.server_state, "app_state": {}, "_loop": loop}
        plain, ours = H11Protocol(**made), ServingProtocol(**made)
    finally:
        loop.close()
    upgraded = (
        f"with uvicorn {uvicorn.__version__} and h11 {h11.__version__}, ServingProtocol "
        f"(sequencer/serving/server.py, written for {WRITTEN_FOR}) no longer works:"
    )
    missing = [name for name in H11_ATTRIBUTES if name not in vars(plain)]
    missing += [f"{name}()" for name in H11_METHODS if not callable(getattr(H11Protocol, name, None))]
    assert not missing, f"{upgraded} H11Protocol has no {', '.join(missing)}"
    source = inspect.getsource(H11Protocol.handle_events)
    gone = [use for use in HANDLE_EVENTS_USES if use not in source]
    assert not gone, f"{upgraded} H11Protocol.handle_events no longer has {', '.join(gone)}"
    state = server.server_state
    assert isinstance(plain.conn, h11.Connection) and plain.conn.their_state is h11.IDLE, upgraded
    assert (plain.connections, plain.tasks) == (state.connections, state.tasks), upgraded
    assert plain.connections is state.connections and plain.tasks is state.tasks, upgraded
    assert plain.limit_concurrency == MAX_CONNECTIONS and plain.loop is loop, upgraded
    assert (ours.limit, ours.limit_concurrency, ours.app) == (MAX_CONNECTIONS, None, ours._within_limit)
    assert server.should_exit is False, f"{upgraded} uvicorn.Server has no should_exit for SIGTERM to set"
