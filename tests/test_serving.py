"""The HTTP server: translations, limits and errors, dynamic batching, and scripts/serve.py as a user runs it."""

import asyncio
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import TINY_CONFIG
from fastapi.testclient import TestClient
from starlette.datastructures import Headers
from starlette.requests import Request

from sequencer import Predictor
from sequencer import serving as serving_module
from sequencer.config import load_config
from sequencer.errors import DataError
from sequencer.export import export
from sequencer.runs import EXPORT_FILE, load_run
from sequencer.serving import (
    Batcher,
    ExportBackend,
    PredictorBackend,
    ServingError,
    _refusal,
    _shown,
    _uvicorn_server,
    body_limit,
    create_app,
    listen,
    read_body,
    read_export,
)

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["Hello!", "I am cold.", "Who are you? Ж🐞", "It's me, Tom."]
# The test client's requests, as a browser on this machine would send them to a server on 127.0.0.1.
BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


@pytest.fixture(scope="module")
def config(run):
    return run.config.replace(max_beam_width=4)


@pytest.fixture(scope="module")
def backend(run, config):
    return PredictorBackend(Predictor(run, config), config.max_beam_width)


@contextmanager
def serving(backend, config):
    """A test client of the app, its lifespan (the batcher) running."""
    with TestClient(create_app(backend, config), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def client(backend, config):
    with serving(backend, config) as client:
        yield client


def test_translations_are_the_predictors(client, backend, run):
    answer = client.post("/translate", json={"text": SENTENCES})
    assert answer.status_code == 200, answer.text
    expected = backend.predictor.hypotheses(SENTENCES)
    assert answer.json()["translations"] == [hypotheses[0][0] for hypotheses in expected]
    assert answer.json()["scores"] == pytest.approx([hypotheses[0][1] for hypotheses in expected], abs=1e-4)
    assert answer.json()["model"] == run.path.name
    # As `curl -d` sends it: a form's content type, read as JSON all the same.
    curled = client.post(
        "/translate", content=b'{"text": ["Hello!"]}', headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert curled.status_code == 200 and curled.json()["translations"] == [expected[0][0][0]]


def test_n_best_lists_and_empty_sentences(client, backend):
    answer = client.post("/translate", json={"text": ["", *SENTENCES, " "], "beam_width": 3, "n_best": 2})
    assert answer.status_code == 200, answer.text
    expected = backend.predictor.hypotheses(SENTENCES, 3, 2)
    translations, scores = answer.json()["translations"], answer.json()["scores"]
    assert translations[0] == ["", ""] and scores[0] == [0.0, 0.0]
    assert translations[-1] == ["", ""]  # white space alone is an empty sentence
    assert translations[1:-1] == [[text for text, _ in hypotheses] for hypotheses in expected]
    assert scores[1:-1] == [pytest.approx([score for _, score in hypotheses], abs=1e-4) for hypotheses in expected]
    single = client.post("/translate", json={"text": [""]}).json()
    assert single["translations"] == [""] and single["scores"] == [0.0]
    assert client.post("/translate", json={"text": []}).json()["translations"] == []


def test_health_page_and_docs(client, run):
    assert client.get("/health").json() == {"status": "ok", "model": run.path.name}
    head = client.head("/health")
    assert head.status_code == 200 and head.content == b""
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert '<label for="text">' in page.text and 'src="page.js"' in page.text and "http" not in page.text
    assert 'fetch("translate"' in client.get("/page.js").text
    assert client.get("/page.css").headers["content-type"].startswith("text/css")
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()["paths"]["/translate"]["post"]
    assert "beam_width" in schema["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert client.get("/index.html").json()["error"].startswith("GET /index.html: there is nothing here")
    assert client.get("/translate").status_code == 405 and "error" in client.get("/translate").json()
    slash = client.post("/translate/", json={"text": ["Hello."]})  # no redirect to follow
    assert slash.status_code == 404 and slash.json()["error"].startswith("POST /translate/: there is nothing here")
    long = client.get("/" + "a" * 10_000).json()["error"]
    assert long.startswith("GET /" + "a" * 76 + "...: there is nothing here") and len(long) < 200


def test_requests_from_other_sites_pages_are_refused(client, backend, config):
    hello = {"json": {"text": ["Hello."]}}

    def status(app_client=client, **headers):
        return app_client.post("/translate", **hello, headers=headers).status_code

    assert status() == 200  # curl, a script: no Origin
    for own in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "http://127.0.1.1:8000"):
        assert status(Host=own.removeprefix("http://"), Origin=own) == 200
    assert status(Host="LocalHost", Origin="https://localhost") == 200  # through a TLS proxy on the default port
    # DNS rebinding: a page of attacker.example, whose name now resolves to this server.
    rebinding = client.post("/translate", **hello, headers={"Host": "attacker.example:8000"})
    assert rebinding.status_code == 400
    assert rebinding.json()["error"] == (
        'the Host header names "attacker.example", which this server does not answer to; it answers to '
        "IP addresses, localhost and the names in allowed_hosts"
    )
    for origin in (
        "http://attacker.example",
        "http://127.0.0.1:9000",
        "http://127.0.0.1",
        "http://localhost:8000",
        "null",
        "http://[",  # not a URL at all: urlsplit raises
        "http://[::1",
    ):
        foreign = client.post("/translate", **hello, headers={"Origin": origin, "Content-Type": "text/plain"})
        assert foreign.status_code == 403
        assert foreign.json()["error"] == (
            f"the request comes from another site's page (Origin {json.dumps(origin)}); this server answers its own "
            "page, pages of the names in allowed_hosts, and clients that send no Origin"
        )
    # Behind a reverse proxy: its public name, as Host (passed through) or as the page's Origin (Host rewritten).
    with serving(backend, config.replace(allowed_hosts="translate.example.org")) as proxied:
        assert status(proxied, Host="translate.example.org") == 200
        assert status(proxied, Origin="https://translate.example.org") == 200
        assert status(proxied, Host="attacker.example") == 400
    with serving(backend, config.replace(host="box.lan")) as named:  # bound to a name: it answers to it
        assert status(named, Host="box.lan:8000", Origin="http://box.lan:8000") == 200
        assert status(named, Host="attacker.example:8000") == 400
    with serving(backend, config.replace(allowed_hosts="*")) as anywhere:
        assert status(anywhere, Host="translator.lan:8000") == 200
        assert status(anywhere, Origin="http://attacker.example") == 403
    # HTTP/1.0 without a Host (a health checker's): nothing to rebind; with an Origin, no site to match.
    assert _refusal(Headers(raw=[]), frozenset()) is None
    assert _refusal(Headers(raw=[(b"origin", b"http://127.0.0.1")]), frozenset()).status == 403


def test_a_content_length_of_other_digits_than_ascii_is_not_read_as_a_number():
    body = b'{"text": ["Hello."]}'
    parts = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive():
        return next(parts)

    request = Request(
        {"type": "http", "method": "POST", "headers": [(b"content-length", "²".encode("latin-1"))]}, receive
    )
    assert asyncio.run(read_body(request, 1000)) == body  # "²".isdigit(), but int("²") fails


def test_a_body_that_stops_arriving_is_a_408(monkeypatch):
    monkeypatch.setattr(serving_module, "BODY_SECONDS", 0.05)
    parts = iter([{"type": "http.request", "body": b'{"text": ', "more_body": True}])

    async def receive():
        try:
            return next(parts)
        except StopIteration:
            await asyncio.sleep(60)  # the client sends no more

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(ServingError) as refused:
        asyncio.run(read_body(request, 1000))
    assert (refused.value.status, refused.value.message) == (
        408,
        "the body did not arrive within 0.05 seconds (9 bytes came)",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"text": ["caf\xe9"]}', "the body is not UTF-8 (byte 0xe9 at offset 14)"),
        (b'{"text": [', "the body is not JSON (Expecting value: line 1 column 11 (char 10))"),
        (b"", "the body is not JSON"),
        (b"[" * 100_000, "the body nests JSON arrays or objects too deeply to read"),
        (b'["Hello."]', 'the body must be a JSON object such as {"text": ["Hello."]}, not ["Hello."]'),
        (b'{"text": ["Hello."], "beam": 2}', 'unknown field "beam"; a request has text, beam_width and n_best'),
        (b'{"beam_width": 2}', 'text is missing; send {"text": ["a sentence", ...]}'),
        (b'{"text": "Hello."}', 'text must be a list of sentences (strings), not "Hello."'),
        (b'{"text": ["Hello.", 42]}', "text[1] must be a string, not 42"),
        (b'{"text": ["Hello.", ["a"]]}', 'text[1] must be a string, not ["a"]'),
        (b'{"text": ["ok", "\\ud800"]}', "text[1] holds a lone surrogate ('\\ud800'), which is not text"),
        (b'{"text": [], "beam_width": "4"}', 'beam_width must be an integer from 1 to 4 (max_beam_width), not "4"'),
        (b'{"text": [], "beam_width": 0}', "beam_width must be an integer from 1 to 4 (max_beam_width), not 0"),
        (b'{"text": [], "beam_width": 5}', "beam_width must be an integer from 1 to 4 (max_beam_width), not 5"),
        (b'{"text": [], "beam_width": 2.0}', "beam_width must be an integer from 1 to 4 (max_beam_width), not 2.0"),
        (b'{"text": [], "beam_width": true}', "beam_width must be an integer from 1 to 4 (max_beam_width), not true"),
        (b'{"text": [], "n_best": 2}', "n_best must be an integer from 1 to the beam width, 1, not 2"),
        (b'{"text": [], "beam_width": 2, "n_best": 3}', "n_best must be an integer from 1 to the beam width, 2, not 3"),
        (b'{"text": [], "n_best": -1}', "n_best must be an integer from 1 to the beam width, 1, not -1"),
        (b'{"text": ["a"], "text": 5}', 'the body names "text" twice in one object; name each field once'),
        (b'{"text": [], "beam_width": 9, "beam_width": 2}', 'the body names "beam_width" twice in one object'),
    ],
)
def test_a_malformed_body_is_a_400_naming_the_field(client, body, message, caplog):
    with caplog.at_level(logging.INFO, "sequencer"):
        answer = client.post("/translate", content=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": answer.json()["error"]} and answer.json()["error"].startswith(message)
    assert "POST /translate 400: " in caplog.text and message in caplog.text


def test_limits(backend, config):
    small = config.replace(max_request_sentences=3, max_sentence_chars=10)
    with serving(backend, small) as client:
        many = client.post("/translate", json={"text": ["a", "b", "c", "d"]})
        assert many.status_code == 413
        assert many.json()["error"] == "text holds 4 sentences; a request may hold at most 3 (max_request_sentences)"
        long = client.post("/translate", json={"text": ["Hello.", "x" * 11]})
        assert long.status_code == 400
        assert long.json()["error"] == "text[1] has 11 characters; a sentence may have at most 10 (max_sentence_chars)"
        assert client.post("/translate", json={"text": ["🐞" * 10] * 3}).status_code == 200  # characters, not bytes

        # The most a valid request can need: three sentences of ten characters, each an escaped surrogate pair.
        widest = json.dumps({"text": ["🐞" * 10] * 3}, indent=8).encode()
        assert len(widest) < body_limit(small) and client.post("/translate", content=widest).status_code == 200
        oversized = b'{"text": ["' + b"a" * body_limit(small) + b'"]}'
        declared = client.post("/translate", content=oversized)
        assert declared.status_code == 413 and declared.json()["error"].startswith(
            "the body is larger than 4,504 bytes"
        )
        streamed = client.post("/translate", content=(oversized[i : i + 1000] for i in range(0, len(oversized), 1000)))
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413 and "max_request_sentences" in streamed.json()["error"]


def test_a_value_nested_too_deeply_to_quote_is_named_not_quoted():
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert _shown(nested) == "a deeply nested list"


@pytest.fixture(scope="module")
def exported(run, config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "beam2"
    export(run, config.replace(beam_width=2, n_best=2), folder)
    return folder


def test_the_export_backend_translates_with_its_own_beam_only(exported, backend, config, run):
    with serving(ExportBackend.load(exported, config), config) as client:
        assert client.get("/health").json() == {"status": "ok", "model": run.path.name}
        answer = client.post("/translate", json={"text": [*SENTENCES, ""]})
        assert answer.status_code == 200, answer.text
        expected = backend.predictor.hypotheses(SENTENCES, 2, 2)
        assert answer.json()["translations"] == [[text for text, _ in found] for found in expected] + [["", ""]]
        assert answer.json()["scores"][:-1] == [
            pytest.approx([score for _, score in found], abs=1e-4) for found in expected
        ]
        assert client.post("/translate", json={"text": ["Hi."], "beam_width": 2, "n_best": 2}).status_code == 200
        wider = client.post("/translate", json={"text": ["Hi."], "beam_width": 4})
        assert wider.status_code == 400
        assert (
            wider.json()["error"]
            == "beam_width must be 2 (this export decodes with beam_width=2 and n_best=2 only), not 4"
        )
        fewer = client.post("/translate", json={"text": ["Hi."], "n_best": 1})
        assert fewer.status_code == 400 and fewer.json()["error"].startswith("n_best must be 2 (this export decodes")


def test_an_export_folder_is_checked_before_tensorflow_loads_it(exported, tmp_path):
    assert read_export(exported)["beam_width"] == 2
    with pytest.raises(DataError, match=r"the export folder .* does not exist"):
        read_export(tmp_path / "missing")
    with pytest.raises(DataError, match=r"is not an export of scripts/export\.py: it has no export\.json"):
        read_export(tmp_path)
    (tmp_path / EXPORT_FILE).write_text('{"run": "r", "beam_width": "2", "n_best": 1, "needs_tensorflow_text": false}')
    with pytest.raises(DataError, match=r"export\.json: beam_width is missing or not int"):
        read_export(tmp_path)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("another-signature", r"its serving_default signature takes \(x: string\) and returns \(score, translation\)"),
        ("fails-to-translate", r'the SavedModel cannot translate "Hello\." \(InvalidArgumentError: '),
    ],
)
def test_a_saved_model_that_is_not_an_export_is_a_data_error(exported, tmp_path, config, kind, message):
    import tensorflow as tf

    def another_signature(x):
        return {"translation": x, "score": tf.zeros_like(x, tf.float32)}

    def fails_to_translate(text):
        return {"translation": text, "score": tf.strings.to_number(text)}

    serve = another_signature if kind == "another-signature" else fails_to_translate
    module = tf.Module()
    module.serve = tf.function(serve, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    (tmp_path / EXPORT_FILE).write_bytes((exported / EXPORT_FILE).read_bytes())  # claims to be an export
    with pytest.raises(DataError, match=f"^{tmp_path}: {message}"):
        ExportBackend.load(tmp_path, config)


class Recorder:
    """A stub backend that records the sentences of each decoding call, and takes a while for each."""

    name, beam_width, n_best = "stub", 1, 1

    def __init__(self, seconds=0.05, failure=None):
        self.calls = []
        self.seconds = seconds
        self.failure = failure

    def allowed(self, field, beam_width):
        return range(1, 3), "1 or 2"

    def translate(self, sentences, beam_width, n_best):
        self.calls.append((list(sentences), beam_width))
        time.sleep(self.seconds)
        if self.failure:
            raise self.failure
        return [[(sentence.upper(), -1.0)] * n_best for sentence in sentences]


def concurrently(client, bodies):
    """POST each body at the same time; the answers' JSON, in the order of `bodies`."""
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda body: client.post("/translate", json=body), bodies))
    assert all(answer.status_code == 200 for answer in answers), [answer.text for answer in answers]
    return [answer.json() for answer in answers]


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
    assert json.loads(body) == {"error": serving_module.NOT_HTTP}


def test_a_request_beyond_the_connection_limit_gets_a_json_503_and_one_within_it_its_answer(config, monkeypatch):
    monkeypatch.setattr(serving_module, "MAX_CONNECTIONS", 3)
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
    monkeypatch.setattr(serving_module, "HEAD_SECONDS", 1.0)
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


def test_concurrent_requests_are_decoded_together(config):
    recorder = Recorder()
    bodies = [{"text": [f"r{i}a", f"r{i}b"]} for i in range(6)]
    with serving(recorder, config.replace(batch_wait_ms=500, decode_batch_size=256)) as client:
        answers = concurrently(client, bodies)
    assert [answer["translations"] for answer in answers] == [[f"R{i}A", f"R{i}B"] for i in range(6)]
    assert len(recorder.calls) < 6 and max(len(sentences) for sentences, _ in recorder.calls) > 2
    assert sorted(sentence for sentences, _ in recorder.calls for sentence in sentences) == sorted(
        sentence for body in bodies for sentence in body["text"]
    )


def test_a_batch_holds_at_most_decode_batch_size_and_one_setting(config):
    recorder = Recorder()
    bodies = [{"text": [f"b{1 + i % 2}-{i}a", f"b{1 + i % 2}-{i}b"], "beam_width": 1 + i % 2} for i in range(8)]
    with serving(recorder, config.replace(batch_wait_ms=500, decode_batch_size=4)) as client:
        answers = concurrently(client, bodies)
    assert [answer["translations"] for answer in answers] == [
        [text.upper() for text in body["text"]] for body in bodies
    ]
    for sentences, beam_width in recorder.calls:
        assert len(sentences) <= 4 + 2  # a request joins while fewer than decode_batch_size are gathered
        assert all(sentence.startswith(f"b{beam_width}-") for sentence in sentences)


def test_without_dynamic_batching_each_request_is_decoded_alone(config):
    recorder = Recorder()
    bodies = [{"text": [f"r{i}a", f"r{i}b"]} for i in range(4)]
    with serving(recorder, config.replace(dynamic_batching=False)) as client:
        concurrently(client, bodies)
    assert sorted(sentences for sentences, _ in recorder.calls) == sorted(body["text"] for body in bodies)


def test_closing_the_batcher_decodes_what_waits(config):
    recorder = Recorder()

    async def main():
        batcher = Batcher(recorder, batch_size=2, wait_seconds=0.05)
        waiting = [asyncio.create_task(batcher.translate([f"s{i}"], 1, 1)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.close()
        return [task.result() for task in waiting]

    assert asyncio.run(main()) == [[[(f"S{i}", -1.0)]] for i in range(5)]
    assert [len(sentences) for sentences, _ in recorder.calls] == [2, 2, 1]


def test_a_decoding_failure_is_a_500_without_its_traceback(config, caplog):
    with caplog.at_level(logging.INFO, "sequencer"), serving(Recorder(failure=RuntimeError("boom")), config) as client:
        answer = client.post("/translate", json={"text": ["Hello.", "Bye."]})
        assert client.get("/health").status_code == 200  # the server goes on
    assert answer.status_code == 500
    assert answer.json() == {"error": "decoding failed on the server; its log says why"}
    assert "decoding 2 sentences failed" in caplog.text and "RuntimeError: boom" in caplog.text
    assert "POST /translate 500: 2 sentences, " in caplog.text


def test_any_other_failure_is_a_500_in_json(config, caplog):
    class Broken(Recorder):
        def allowed(self, field, beam_width):
            raise KeyError(field)

    with (
        caplog.at_level(logging.INFO, "sequencer"),
        TestClient(create_app(Broken(), config), base_url=BASE_URL, raise_server_exceptions=False) as client,
    ):
        answer = client.post("/translate", json={"text": ["Hello."]})
    assert answer.status_code == 500 and answer.json() == {"error": "the server failed to answer; its log says why"}
    assert "POST /translate 500: " in caplog.text


# ---- scripts/serve.py as a user runs it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "scripts" / "serve.py"), "--config", str(TINY_CONFIG), *args]


def environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}


def post(url: str, body: dict, timeout: float = 120) -> tuple[int, dict]:
    """POST JSON as `curl -d` does (a form's content type); the status and the JSON answer."""
    request = urllib.request.Request(url + "translate", data=json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@contextmanager
def server_process(*args: str, cwd: Path):
    """scripts/serve.py on a free port: (the process, its URL, the file its standard error goes to).

    It yields once /health answers; leaving the block ends the process if it still runs.
    """
    port = free_port()
    stderr = cwd / f"serve-{port}.log"
    with open(stderr, "w") as output:
        process = subprocess.Popen(
            serve_command("--port", str(port), *args), cwd=cwd, stderr=output, text=True, env=environment()
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "the server did not answer /health within 120 s"
            try:
                with urllib.request.urlopen(url + "health", timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        yield process, url, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def oversized_body_status(url: str, limit: int) -> str:
    """The status line of a chunked POST that sends `limit` + 1 bytes and never ends its body.

    A server that read the whole body before checking its size would wait for the rest until the
    socket times out; one that counts as it reads answers at once. (Nothing is sent past the
    limit, so that the server has read all of it when it closes the connection.)
    """
    host, port = url.removeprefix("http://").strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(b"POST /translate HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, limit + 1, 65536):
            size = min(65536, limit + 1 - start)
            connection.sendall(b"%x\r\n%s\r\n" % (size, b"a" * size))
        return connection.recv(65536).split(b"\r\n", 1)[0].decode()[: len("HTTP/1.1 413")]


def in_background(function, *args):
    """Start `function(*args)` on a thread; the returned function waits for its result."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function(*args)))
    thread.start()
    return lambda: (thread.join(timeout=120), result["value"])[1]


def test_serve_script_translates_and_ctrl_c_finishes_the_request_in_flight(trained_run, backend, tmp_path):
    with server_process("--run", str(trained_run), "--batch_wait_ms", "1500", cwd=tmp_path) as (process, url, log):
        status, answer = post(url, {"text": SENTENCES})
        assert status == 200
        assert answer["translations"] == [found[0][0] for found in backend.predictor.hypotheses(SENTENCES)]
        status, refused = post(url, {"text": ["Hi."], "beam_width": 99})
        assert status == 400 and refused["error"].startswith("beam_width must be an integer from 1 to 8")
        assert oversized_body_status(url, body_limit(load_config(TINY_CONFIG, environ={}))) == "HTTP/1.1 413"

        in_flight = in_background(post, url, {"text": ["Hello!"]})  # waits 1.5 s for others to join it
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        status, alone = in_flight()
        assert status == 200 and alone["translations"] == answer["translations"][:1]
        assert process.wait(timeout=60) == 130
    lines = log.read_text().splitlines()
    assert f"translating with {trained_run}" in lines and "serving on " + url + " (Ctrl-C stops)" in lines
    requests = [line for line in lines if line.startswith("POST /translate ")]  # one line each
    assert len(requests) == 4 and requests[0].startswith("POST /translate 200: 4 sentences, ")
    assert requests[1].startswith("POST /translate 400: ") and "beam_width" in requests[1]
    assert requests[2].startswith("POST /translate 413: ")
    assert requests[3].startswith("POST /translate 200: 1 sentence, ")
    assert lines[-1] == "interrupted" and "Traceback" not in log.read_text()


def test_serve_script_serves_an_export_until_sigterm(exported, tmp_path):
    arguments = ("--export", str(exported), "--quiet", "--n_best", "2")  # applied, it would need beam_width >= 2
    with server_process(*arguments, cwd=tmp_path) as (process, url, log):
        status, answer = post(url, {"text": ["Hello!", ""]})
        assert status == 200 and len(answer["translations"][0]) == 2 and answer["translations"][1] == ["", ""]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 130
    assert log.read_text() == (
        "warning: --n_best does not apply to an export, which decodes as it was exported; it is ignored\ninterrupted\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--export", "missing"], "error: the export folder {tmp}/missing does not exist"),
        (["--export", "."], "error: {tmp} is not an export of scripts/export.py: it has no export.json"),
        (["--run", "missing"], "error: the run folder {tmp}/models/missing does not exist"),
        (["--run", "{run}", "--export", "."], "error: --run and --export each name a model to serve; give one of them"),
        (["--run", "{run}", "--beam_width", "9"], "error: beam_width=9 is more than max_beam_width=8, the widest beam"),
        (
            ["--run", "{run}", "--port", "0"],
            "error: --port: port='0' is not allowed; expected an integer in [1, 65535]",
        ),
        (["--run", "{run}", "--port", "{taken}"], "error: cannot listen on 127.0.0.1:{taken} (Address already in use)"),
    ],
)
def test_a_bad_configuration_is_one_line_and_exit_2(trained_run, tmp_path, args, message):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        values = {"tmp": tmp_path, "run": trained_run, "taken": taken.getsockname()[1]}
        command = serve_command("--model_dir", "models", *(arg.format(**values) for arg in args))
        started = time.monotonic()
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=environment())
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(**values)) and len(result.stderr.splitlines()) == 1
    assert time.monotonic() - started < 20  # before TensorFlow starts


def test_help_lists_the_serving_keys(tmp_path):
    helped = subprocess.run(serve_command("--help"), cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0
    for flag in ("--export", "--run", "--beam_width", "--decode_batch_size", "--port", "--max_beam_width", "--device"):
        assert flag in helped.stdout
    assert "--epochs" not in helped.stdout and "--predict_in" not in helped.stdout
