"""The HTTP server through its app (translations, the page, limits and errors, an export) and
scripts/serve.py as a user runs it; the helpers the other tests/test_serving_*.py files share.

The tests that need no model are beside the module of sequencer/serving/ they test, in
test_serving_MODULE.py (requests, guard, batching, server).
"""

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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, untrained_transformer
from fastapi.testclient import TestClient

from sequencer.config import load_config
from sequencer.errors import DataError
from sequencer.exports import EXPORT_FILE
from sequencer.runs import load_run
from sequencer.savedmodel import export
from sequencer.scoring import PairScore
from sequencer.serving import TranslatorBackend, body_limit, create_app, read_export
from sequencer.translation import Decoding, Sampling, Translator

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
    return TranslatorBackend(Translator(run, config), config.max_beam_width)


@contextmanager
def serving(backend, config):
    """A test client of the app, its lifespan (the batcher) running."""
    with TestClient(create_app(backend, config), base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def client(backend, config):
    with serving(backend, config) as client:
        yield client


def stub_config():
    """The tiny config, for the tests that decode with a `Recorder`: no model loads."""
    return load_config(TINY_CONFIG, environ={})


def test_translations_are_the_predictors(client, backend, run):
    answer = client.post("/translate", json={"text": SENTENCES})
    assert answer.status_code == 200, answer.text
    expected = backend.translator.translate(SENTENCES).hypotheses
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
    expected = backend.translator.translate(SENTENCES, 3, 2).hypotheses
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


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"text": ["caf\xe9"]}', "the body is not UTF-8 (byte 0xe9 at offset 14)"),
        (b'{"text": [', "the body is not JSON (Expecting value: line 1 column 11 (char 10))"),
        (b"", "the body is not JSON"),
        (b"[" * 100_000, "the body nests JSON arrays or objects too deeply to read"),
        (b'["Hello."]', 'the body must be a JSON object such as {"text": ["Hello."]}, not ["Hello."]'),
        (
            b'{"text": ["Hello."], "beam": 2}',
            'unknown field "beam"; a request has text, prefix, beam_width, n_best, decoding, temperature, top_k, '
            "top_p and seed",
        ),
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
            "the body is larger than 4,912 bytes"
        )
        streamed = client.post("/translate", content=(oversized[i : i + 1000] for i in range(0, len(oversized), 1000)))
        assert "content-length" not in streamed.request.headers
        assert streamed.status_code == 413 and "max_request_sentences" in streamed.json()["error"]


@pytest.fixture(scope="module")
def exported(run, config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export") / "beam2"
    export(run, config.replace(beam_width=2, n_best=2), folder)
    return folder


def test_the_export_backend_translates_with_its_own_beam_only(exported, backend, config, run):
    with serving(TranslatorBackend.load(config, export_dir=exported), config) as client:
        assert client.get("/health").json() == {"status": "ok", "model": run.path.name}
        answer = client.post("/translate", json={"text": [*SENTENCES, ""]})
        assert answer.status_code == 200, answer.text
        expected = backend.translator.translate(SENTENCES, 2, 2).hypotheses
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
        only = "is not possible: this server's model is a SavedModel export, which"
        for body, message in [
            ({"decoding": "sample"}, f'decoding "sample" {only} decodes by search only'),
            ({"temperature": 0.5}, f"temperature {only} decodes by search only"),
            ({"prefix": ["Je"]}, f"prefix {only} cannot start a translation with a prefix"),
        ]:
            refused = client.post("/translate", json={"text": ["Hi."], **body})
            assert (refused.status_code, refused.json()) == (400, {"error": message})
        scored = client.post("/score", json={"source": ["Hi."], "target": ["Salut."]})
        assert (scored.status_code, scored.json()) == (400, {"error": f"POST /score {only} only translates"})


def test_an_export_folder_is_checked_before_tensorflow_loads_it(exported, tmp_path):
    assert read_export(exported)["beam_width"] == 2
    with pytest.raises(DataError, match=r"the export folder .* does not exist"):
        read_export(tmp_path / "missing")
    with pytest.raises(DataError, match=r"is not an export of scripts/export\.py: it has no export\.json"):
        read_export(tmp_path)
    description = {**json.loads((exported / EXPORT_FILE).read_text()), "beam_width": "2"}
    (tmp_path / EXPORT_FILE).write_text(json.dumps(description))
    with pytest.raises(DataError, match=r"export\.json: beam_width is missing or not int"):
        read_export(tmp_path)
    (tmp_path / EXPORT_FILE).write_text(json.dumps({**description, "format": "onnx"}))
    with pytest.raises(DataError, match=r'export\.json: format is "onnx", not one of savedmodel, ctranslate2'):
        read_export(tmp_path)
    del description["format"]  # an export made before there were two formats: a SavedModel
    (tmp_path / EXPORT_FILE).write_text(json.dumps({**description, "beam_width": 2}))
    with pytest.raises(DataError, match=r"is not an export of scripts/export\.py: it has no saved_model\.pb"):
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
        TranslatorBackend.load(config, export_dir=tmp_path)


@pytest.fixture(scope="module")
def ctranslate2_export(tmp_path_factory):
    from sequencer.ctranslate import convert

    run = untrained_transformer(tmp_path_factory.mktemp("ct2"), "char")
    return convert(run, run.path.parent / "ct2")


def test_a_ctranslate2_export_is_served_with_any_beam_width_up_to_the_limit(ctranslate2_export, config):
    config = config.replace(max_output_len=12)
    backend = TranslatorBackend.load(config, export_dir=ctranslate2_export)
    with serving(backend, config) as client:
        assert client.get("/health").json() == {"status": "ok", "model": "transformer-char"}
        answer = client.post("/translate", json={"text": [*SENTENCES, ""], "beam_width": 3, "n_best": 2})
        assert answer.status_code == 200, answer.text
        expected = backend.translator.translate(SENTENCES, 3, 2).hypotheses
        assert answer.json()["translations"] == [[text for text, _ in found] for found in expected] + [["", ""]]
        assert client.post("/translate", json={"text": ["Hi."]}).json()["translations"] == [
            backend.translator.translate(["Hi."]).best[0]
        ]
        wider = client.post("/translate", json={"text": ["Hi."], "beam_width": 5})
        assert wider.json()["error"] == "beam_width must be an integer from 1 to 4 (max_beam_width), not 5"
        translator = backend.translator
        prefixed = client.post("/translate", json={"text": SENTENCES[:2], "prefix": ["on", ""]})
        assert prefixed.json()["translations"] == translator.translate(SENTENCES[:2], prefixes=["on", ""]).best
        assert prefixed.json()["translations"][0].startswith("on")
        body = {"text": SENTENCES, "decoding": "sample", "n_best": 2, "seed": 3, "top_k": 1000}  # top_k: all of 66
        drawn = [client.post("/translate", json=body).json()["translations"] for _ in range(2)]
        sampling = Sampling(1.0, 66, 1.0, 3)
        expected = translator.translate(SENTENCES, n_best=2, decoding="sample", sampling=sampling).hypotheses
        assert drawn[0] == drawn[1] == [[text for text, _ in found] for found in expected]
        targets = ["on", "Bonjour !", "x", "Qui ?"]
        scored = client.post("/score", json={"source": SENTENCES, "target": targets})
        totals = [pair.total for pair in translator.score(list(zip(SENTENCES, targets))).pairs]
        assert scored.json()["scores"] == pytest.approx(totals, abs=1e-4)


def test_a_request_costing_more_than_max_request_tokens_is_a_413(backend, config):
    assert backend.source_tokens(["Hello!", "Hi."]) == 9  # characters, as the run's model reads them
    with serving(Recorder(seconds=0), config.replace(max_request_tokens=20)) as client:
        assert client.post("/translate", json={"text": ["abcde", "fghij", ""], "beam_width": 2}).status_code == 200
        costly = client.post("/translate", json={"text": ["abcde", "fghij", "k"], "beam_width": 2})
        assert costly.status_code == 413
        assert costly.json()["error"] == (
            "text holds 11 source tokens, which at beam width 2 cost 22; a request may cost at most 20 "
            "(max_request_tokens: source tokens x beam width)"
        )
        assert client.post("/translate", json={"text": ["abcde", "fghij", "k"]}).status_code == 200  # greedy: 11
    with serving(Recorder(seconds=0), config.replace(max_request_tokens=0)) as client:  # no bound
        assert client.post("/translate", json={"text": ["a" * 1000] * 3, "beam_width": 2}).status_code == 200


@dataclass(frozen=True)
class Call:
    """One call of a `Recorder`: what it translated (or scored, `how` "score") and how."""

    items: list
    how: str | int  # a beam width, "sample" or "score"
    prefixes: list[str] | None = None
    sampling: Sampling | None = None


class Recorder:
    """A stub backend that records each decoding call, and takes a while for each: a sentence
    translates to itself in capitals after its prefix, a pair scores minus its target's length."""

    name, max_output_len = "stub", 10
    default = Decoding("search", 1, 1, Sampling(1.0, 0, 1.0, 7))
    can_sample = can_force = can_score = True

    def __init__(self, seconds=0.05, failure=None):
        self.calls = []
        self.seconds = seconds
        self.failure = failure

    def allowed(self, field, beam_width):
        return range(1, 3), "1 or 2"

    def source_tokens(self, sentences):
        return sum(len(sentence) for sentence in sentences)

    def target_tokens(self, texts):
        return [len(text) for text in texts]

    def translate(self, sentences, beam_width, n_best, *, prefixes=None, sampling=None):
        self._record(Call(list(sentences), "sample" if sampling else beam_width, prefixes, sampling))
        return [
            [(prefix + sentence.upper(), -1.0)] * n_best
            for sentence, prefix in zip(sentences, prefixes or [""] * len(sentences))
        ]

    def score(self, pairs):
        self._record(Call(list(pairs), "score"))
        return [PairScore(-float(len(target)), len(target) + 1) for _, target in pairs]

    def _record(self, call):
        self.calls.append(call)
        time.sleep(self.seconds)
        if self.failure:
            raise self.failure


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


@pytest.mark.slow
def test_serve_script_translates_and_ctrl_c_finishes_the_request_in_flight(trained_run, backend, tmp_path):
    with server_process("--run", str(trained_run), "--batch_wait_ms", "1500", cwd=tmp_path) as (process, url, log):
        status, answer = post(url, {"text": SENTENCES})
        assert status == 200
        assert answer["translations"] == [found[0][0] for found in backend.translator.translate(SENTENCES).hypotheses]
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


@pytest.mark.slow
def test_serve_script_serves_an_export_until_sigterm(exported, tmp_path):
    arguments = ("--export", str(exported), "--quiet", "--n_best", "2")  # applied, it would need beam_width >= 2
    with server_process(*arguments, cwd=tmp_path) as (process, url, log):
        status, answer = post(url, {"text": ["Hello!", ""]})
        assert status == 200 and len(answer["translations"][0]) == 2 and answer["translations"][1] == ["", ""]
        process.send_signal(signal.SIGTERM)  # how systemd, Docker and Kubernetes stop a service
        assert process.wait(timeout=60) == 0  # a graceful stop, as uvicorn's and gunicorn's
    assert log.read_text() == (
        "warning: --n_best does not apply to an export, which decodes as it was exported; it is ignored\n"
    )


@pytest.mark.slow
def test_serve_script_serves_a_ctranslate2_export(ctranslate2_export, config, tmp_path):
    with server_process("--export", str(ctranslate2_export), "--max_output_len", "12", cwd=tmp_path) as (
        process,
        url,
        log,
    ):
        status, answer = post(url, {"text": SENTENCES, "beam_width": 2})
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    translator = TranslatorBackend.load(config.replace(max_output_len=12), export_dir=ctranslate2_export).translator
    assert status == 200 and answer["translations"] == translator.translate(SENTENCES, 2).best
    assert f"translating with the export {ctranslate2_export}" in log.read_text().splitlines()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--export", "missing"], "error: the export folder {tmp}/missing does not exist"),
        (["--export", "."], "error: {tmp} is not an export of scripts/export.py: it has no export.json"),
        (["--run", "missing"], "error: the run folder {tmp}/models/missing does not exist"),
        (["--run", "{run}", "--export", "."], "error: --run and --export each name a model to translate with; give"),
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


def test_the_package_imports_no_tensorflow():
    """serve.py checks its settings, the model's folder and the address before TensorFlow starts:
    importing sequencer.serving must not start it (only making a backend does)."""
    code = "import sys, sequencer.serving; print('tensorflow' in sys.modules)"
    imported = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert imported.stdout == "False\n", imported.stderr
