"""The HTTP translation server: a FastAPI app around a run folder or an exported SavedModel.

`create_app(backend, config)` answers `POST /translate`, `GET /health`, the page at `/` (files
in `sequencer/web/`) and FastAPI's docs at `/docs`. A backend translates a list of sentences with
a beam width and an n-best count: `PredictorBackend` with a run's model through `Predictor` (any
beam width up to `max_beam_width`), `ExportBackend` with a SavedModel of `scripts/export.py`
(its own beam width and n-best only).

Requests are decoded on one worker thread, off the event loop. With `dynamic_batching`, the
sentences of concurrent requests are decoded together (see `Batcher`), so throughput rises with
load instead of each request decoding alone.

Every request is bounded: its body is read up to what `max_request_sentences` sentences of
`max_sentence_chars` characters can need, for at most `BODY_SECONDS`, and checked field by field
before anything is decoded; a request another site's page sent is refused (`RefuseOtherSites`).
A bad request gets a 4xx and `{"error": "..."}`, one sentence naming the JSON field; a failure
while decoding gets a 500 with such a body, its traceback logged and never sent. The server reads
no path a request names: the page's files are read once, when the app is made.

TensorFlow is imported only by the backends, so that the script checks its settings first.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import json
import logging
import math
import socket
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlsplit

import h11
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from sequencer import __version__
from sequencer.config import Config
from sequencer.errors import ConfigError, DataError, SequencerError
from sequencer.runs import read_export
from sequencer.text import first_line

if TYPE_CHECKING:
    from sequencer.prediction import Predictor

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
# The page: URL path -> (file in WEB_DIR, media type). Nothing else is read from disk.
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page.css": ("page.css", "text/css; charset=utf-8"),
}
# The page loads nothing from elsewhere, and neither may anything injected into it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
}
REQUEST_FIELDS = ("text", "beam_width", "n_best")
# Open connections beyond this get a 503 from uvicorn, which bounds the requests waiting to be decoded.
MAX_CONNECTIONS = 256
# How long a request's body may take to arrive: a client that stops sending gets a 408 after it,
# rather than holding its connection, and a graceful stop, for as long as it likes.
BODY_SECONDS = 30.0
# How long a connection may take to send a request's head (its request line and headers), from
# when it opens or its last answer went: a client that sends none is closed after it, rather
# than holding one of the MAX_CONNECTIONS places for as long as it likes.
HEAD_SECONDS = 10.0
# How long Ctrl-C or SIGTERM waits for the requests in flight before the server stops regardless.
GRACEFUL_SHUTDOWN_SECONDS = 60
LISTEN_BACKLOG = 2048  # uvicorn's default
# The answer to bytes that are not an HTTP/1.1 request: h11, which reads them, does not say what.
NOT_HTTP = (
    "the request is not HTTP/1.1 the server can read: a malformed request line, header or "
    "Content-Length, or too long a request line and headers"
)

Hypothesis = tuple[str, float]  # a translation and its score, the log-probability divided by the length penalty


class Backend(Protocol):
    """What the server translates with: a model, its name and the decoding a request may ask for."""

    name: str  # the run's name, sent with every translation
    beam_width: int  # what a request that names none gets
    n_best: int

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        """The values `field` (beam_width, or n_best with that beam width) may take, and how to say so."""
        ...

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each non-empty sentence, best first."""
        ...


class PredictorBackend:
    """A run folder's model through `Predictor`: any beam width up to `max_beam_width`.

    `Predictor` makes one decoder per beam width when it is first asked for, and keeps it.
    """

    def __init__(self, predictor: Predictor, max_beam_width: int):
        self.predictor = predictor
        self.name = predictor.run.path.name
        self.beam_width, self.n_best = predictor.beam_width, predictor.n_best
        self.max_beam_width = max_beam_width

    @classmethod
    def load(cls, config: Config) -> PredictorBackend:
        from sequencer.prediction import Predictor

        return cls(Predictor.from_config(config), config.max_beam_width)

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        if field == "beam_width":
            return range(1, self.max_beam_width + 1), f"an integer from 1 to {self.max_beam_width} (max_beam_width)"
        return range(1, beam_width + 1), f"an integer from 1 to the beam width, {beam_width}"

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        found = self.predictor.hypotheses(sentences, beam_width, n_best)
        # Counted for predict.py's warning at the end of a file; a server would only accumulate them.
        self.predictor.unknown_tokens.clear()
        return found


class ExportBackend:
    """A SavedModel written by `scripts/export.py`: it decodes with the beam width and n-best fixed in it."""

    def __init__(self, folder: Path, description: dict, batch_size: int):
        import tensorflow as tf

        if description["needs_tensorflow_text"]:
            import tensorflow_text  # noqa: F401 -- registers the SentencePiece ops of a subword export

        try:
            self._saved_model = tf.saved_model.load(str(folder))  # kept: its signature uses the model's tables
            self._signature = self._saved_model.signatures["serving_default"]
        except Exception as error:  # TensorFlow raises many types for a damaged or foreign folder
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f"{folder}: cannot load the SavedModel ({problem})") from None
        self._tf = tf
        self.name = description["run"]
        self.beam_width, self.n_best = description["beam_width"], description["n_best"]
        self.batch_size = batch_size
        self._check_signature(folder)

    def _check_signature(self, folder: Path) -> None:
        """DataError unless the signature is export.py's (text in; translation and score out) and translates."""
        tf = self._tf
        inputs = self._signature.structured_input_signature[1]
        outputs = self._signature.structured_outputs
        text = inputs.get("text")
        if text is None or text.dtype != tf.string or not {"translation", "score"} <= set(outputs):
            shown = ", ".join(f"{name}: {spec.dtype.name}" for name, spec in inputs.items())
            raise DataError(
                f"{folder}: its serving_default signature takes ({shown}) and returns ({', '.join(sorted(outputs))}), "
                "not export.py's (text: string) and (translation, score)"
            )
        try:
            self.translate(["Hello."], self.beam_width, self.n_best)
        except Exception as error:  # whatever the graph raises, it is the export's
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f'{folder}: the SavedModel cannot translate "Hello." ({problem})') from None

    @classmethod
    def load(cls, folder: Path, config: Config) -> ExportBackend:
        from sequencer.devices import configure_device

        configure_device(config.device, config.threads)
        log.info("translating with the export %s", folder)
        return cls(folder, read_export(folder), config.decode_batch_size)

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        value = self.beam_width if field == "beam_width" else self.n_best
        fixed = f"beam_width={self.beam_width} and n_best={self.n_best}"
        return range(value, value + 1), f"{value} (this export decodes with {fixed} only)"

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        found: list[list[Hypothesis]] = []
        for start in range(0, len(sentences), self.batch_size):
            batch = sentences[start : start + self.batch_size]
            output = self._signature(text=self._tf.constant(batch, self._tf.string))
            translations = output["translation"].numpy().reshape(len(batch), -1)  # (B,) or (B, n_best)
            scores = output["score"].numpy().reshape(len(batch), -1)
            for row, row_scores in zip(translations, scores):
                hypotheses = [(text.decode("utf-8"), float(score)) for text, score in zip(row, row_scores)]
                found.append(hypotheses[:1] + [pair for pair in hypotheses[1:] if math.isfinite(pair[1])])
        return found


def check_settings(config: Config) -> None:
    """ConfigError for Serving settings that contradict the Prediction ones."""
    if config.beam_width > config.max_beam_width:
        raise ConfigError(
            f"beam_width={config.beam_width} is more than max_beam_width={config.max_beam_width}, "
            "the widest beam a request may ask for"
        )


class ServingError(SequencerError):
    """A request that gets an error status, with one sentence saying what was wrong and where."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# ---- Requests


@dataclass(frozen=True)
class TranslationRequest:
    """A checked `POST /translate` body."""

    sentences: list[str]
    beam_width: int
    n_best: int


def body_limit(config: Config) -> int:
    """The largest body a valid request can need, in bytes.

    A character may be sent as an escaped surrogate pair (`\\ud83d\\ude00`, 12 bytes); each
    sentence adds quotes, a separator and some white space, and the rest of the object a little.
    """
    return config.max_request_sentences * (12 * config.max_sentence_chars + 16) + 4096


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with a 413 as soon as it passes `limit` bytes, and with a 408
    if it takes more than `BODY_SECONDS` to arrive."""
    too_large = ServingError(
        413, f"the body is larger than {limit:,} bytes, the most max_request_sentences and max_sentence_chars allow"
    )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # "²" is a digit too
        raise too_large
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:  # a missing or false Content-Length does not get past this
                raise too_large

    try:
        await asyncio.wait_for(read(), BODY_SECONDS)
    except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
        raise ServingError(
            408, f"the body did not arrive within {BODY_SECONDS:g} seconds ({len(body):,} bytes came)"
        ) from None
    except ClientDisconnect:
        raise ServingError(400, "the client closed the connection before the whole body arrived") from None
    return bytes(body)


def parse_request(body: bytes, backend: Backend, config: Config) -> TranslationRequest:
    """The sentences, beam width and n-best of a `POST /translate` body; ServingError naming the field if it is wrong.

    The body is read as JSON whatever its Content-Type says, so that `curl -d` works as it is.
    Each sentence loses its leading and trailing white space, as a line does in predict.py.
    """
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_object_of_distinct_names)
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        raise ServingError(400, f"the body is not UTF-8 (byte {byte:#04x} at offset {error.start})") from None
    except ServingError:  # a ValueError too, but already one sentence
        raise
    except ValueError as error:
        raise ServingError(400, f"the body is not JSON ({error})") from None
    except RecursionError:
        raise ServingError(400, "the body nests JSON arrays or objects too deeply to read") from None
    if not isinstance(data, dict):
        raise ServingError(400, f'the body must be a JSON object such as {{"text": ["Hello."]}}, not {_shown(data)}')
    unknown = [name for name in data if name not in REQUEST_FIELDS]
    if unknown:
        raise ServingError(400, f"unknown field {_shown(unknown[0])}; a request has text, beam_width and n_best")
    sentences = _sentences(data, config)
    beam_width = _integer(data, "beam_width", backend.beam_width, backend.allowed("beam_width", 0))
    n_best = _integer(data, "n_best", min(backend.n_best, beam_width), backend.allowed("n_best", beam_width))
    return TranslationRequest(sentences, beam_width, n_best)


def _object_of_distinct_names(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict; ServingError for a name given twice, whose last value json.loads would keep silently."""
    names = set()
    for name, _ in pairs:
        if name in names:
            raise ServingError(400, f"the body names {_shown(name)} twice in one object; name each field once")
        names.add(name)
    return dict(pairs)


def _sentences(data: dict, config: Config) -> list[str]:
    if "text" not in data:
        raise ServingError(400, 'text is missing; send {"text": ["a sentence", ...]}')
    text = data["text"]
    if not isinstance(text, list):
        raise ServingError(400, f"text must be a list of sentences (strings), not {_shown(text)}")
    if len(text) > config.max_request_sentences:
        raise ServingError(
            413,
            f"text holds {len(text)} sentences; a request may hold at most "
            f"{config.max_request_sentences} (max_request_sentences)",
        )
    for index, sentence in enumerate(text):
        if not isinstance(sentence, str):
            raise ServingError(400, f"text[{index}] must be a string, not {_shown(sentence)}")
        try:
            sentence.encode("utf-8")
        except UnicodeEncodeError as error:
            lone = sentence[error.start]
            raise ServingError(400, f"text[{index}] holds a lone surrogate ({lone!r}), which is not text") from None
        if len(sentence) > config.max_sentence_chars:
            raise ServingError(
                400,
                f"text[{index}] has {len(sentence)} characters; a sentence may have at most "
                f"{config.max_sentence_chars} (max_sentence_chars)",
            )
    return [sentence.strip() for sentence in text]


def _integer(data: dict, field: str, default: int, allowed: tuple[range, str]) -> int:
    """`data[field]`, or `default` if it is absent or null, which must be one of `allowed`'s values."""
    value = data.get(field)
    if value is None:
        return default
    values, expected = allowed
    if type(value) is not int or value not in values:  # not isinstance: JSON's true is no beam width
        raise ServingError(400, f"{field} must be {expected}, not {_shown(value)}")
    return value


def _shown(value: Any) -> str:
    """A JSON value as a message quotes it: control characters escaped, at most 40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:  # nested a little less deeply than json.loads allows, more than json.dumps does
        return f"a deeply nested {'list' if isinstance(value, list) else 'object'}"
    return text if len(text) <= 40 else text[:37] + "..."


# ---- Batching


@dataclass(frozen=True)
class _Job:
    """One request's sentences, waiting for the worker."""

    sentences: list[str]
    settings: tuple[int, int]  # beam_width, n_best
    done: asyncio.Future[list[list[Hypothesis]]]
    arrived: float  # the event loop's time


class Batcher:
    """Decodes the requests on one worker thread, in arrival order, gathering concurrent ones.

    With `wait_seconds` (dynamic batching), the worker takes the oldest waiting request and the
    requests after it, while fewer than `batch_size` sentences are gathered: those waiting
    already at once, then those that arrive until `wait_seconds` after the oldest arrived (so a
    request that waited while the worker decoded waits no longer). The gathered requests with
    the same beam width and n-best are decoded in one call, so under load a call holds the
    sentences of many requests. With `wait_seconds` None, each request is decoded alone. The
    event loop only queues and gathers; TensorFlow decodes on the worker thread, using every
    core itself.

    Must be made and closed inside the running event loop (the app's lifespan); `close` decodes
    the requests still waiting, then stops the worker; `abandon` stops it at once.
    """

    def __init__(self, backend: Backend, batch_size: int, wait_seconds: float | None):
        self.backend = backend
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()  # None: stop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self._worker = asyncio.create_task(self._work())

    async def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each sentence; an empty sentence gets `n_best` times ("", 0.0)."""
        loop = asyncio.get_running_loop()
        job = _Job(sentences, (beam_width, n_best), loop.create_future(), loop.time())
        self._queue.put_nowait(job)
        try:
            return await job.done
        except asyncio.CancelledError:  # uvicorn stopped before the answer: a second Ctrl-C, or the stop timed out
            raise ServingError(503, "the server stopped before it translated this request") from None

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._worker
        self._executor.shutdown()

    def abandon(self) -> None:
        """Stop at once, decoding nothing more: the sentences being decoded are left to their thread."""
        self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        stopping = False
        while not stopping:
            jobs, stopping = await self._gather()
            groups: dict[tuple[int, int], list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.settings, []).append(job)
            for group in groups.values():
                await self._decode(group)

    async def _gather(self) -> tuple[list[_Job], bool]:
        """The next requests to decode, and whether the batcher is to stop after them."""
        first = await self._queue.get()
        if first is None:
            return [], True
        jobs, size = [first], len(first.sentences)
        if self.wait_seconds is None:
            return jobs, False
        loop = asyncio.get_running_loop()
        deadline = first.arrived + self.wait_seconds
        while size < self.batch_size:
            if self._queue.empty():
                if loop.time() >= deadline:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                    break
            else:
                job = self._queue.get_nowait()
            if job is None:
                return jobs, True
            jobs.append(job)
            size += len(job.sentences)
        return jobs, False

    async def _decode(self, jobs: list[_Job]) -> None:
        """Decode the sentences of `jobs` (of the same settings) in one call, and hand each job its share."""
        jobs = [job for job in jobs if not job.done.done()]  # a request cancelled while it waited
        if not jobs:
            return
        sentences = [sentence for job in jobs for sentence in job.sentences]
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._executor, _translate, self.backend, sentences, *jobs[0].settings)
        except Exception:
            log.exception("decoding %d sentences failed", len(sentences))
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(ServingError(500, "decoding failed on the server; its log says why"))
            return
        start = 0
        for job in jobs:
            if not job.done.done():
                job.done.set_result(found[start : start + len(job.sentences)])
            start += len(job.sentences)


def _translate(backend: Backend, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
    """The backend's translations of the non-empty sentences; an empty one gets `n_best` times ("", 0.0)."""
    kept = [index for index, sentence in enumerate(sentences) if sentence]
    found: list[list[Hypothesis]] = [[("", 0.0)] * n_best for _ in sentences]
    if kept:
        for index, hypotheses in zip(kept, backend.translate([sentences[i] for i in kept], beam_width, n_best)):
            found[index] = hypotheses
    return found


# ---- The app


class TranslateBody(BaseModel):
    """The body of POST /translate (for the docs: the endpoint reads and checks the body itself)."""

    model_config = ConfigDict(extra="forbid")

    text: list[str] = Field(
        description="sentences to translate: at most max_request_sentences, each at most max_sentence_chars "
        "characters; an empty one translates to an empty string",
        examples=[["Hello.", "I am cold."]],
    )
    beam_width: int | None = Field(None, ge=1, description="1 decodes greedily; default: the config's")
    n_best: int | None = Field(None, ge=1, description="translations per sentence, at most beam_width")


class Translations(BaseModel):
    """With n_best 1, a translation and a score per sentence; above, lists of n_best of them, best first."""

    translations: list[str] | list[list[str]]
    scores: list[float | None] | list[list[float | None]] = Field(
        description="log-probability divided by the length penalty; null for a best translation of probability 0 "
        "(the others of probability 0 are left out of an n-best list)"
    )
    model: str = Field(description="the run translated with")


class Health(BaseModel):
    status: str
    model: str


class ErrorBody(BaseModel):
    error: str = Field(description="one sentence: what was wrong and where")


def create_app(backend: Backend, config: Config) -> FastAPI:
    """The app: `backend` translates, `config`'s Serving and Prediction keys bound and batch the requests."""
    limit = body_limit(config)
    body_schema = TranslateBody.model_json_schema()
    pages = {path: ((WEB_DIR / name).read_bytes(), media) for path, (name, media) in PAGE_FILES.items()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wait_seconds = config.batch_wait_ms / 1000 if config.dynamic_batching else None
        app.state.batcher = Batcher(backend, config.decode_batch_size, wait_seconds)
        try:
            yield
        except asyncio.CancelledError:
            # A second Ctrl-C: uvicorn skipped the app's shutdown and the event loop is being torn
            # down. Ending here rather than re-raising keeps Starlette from logging the
            # cancellation as a failed shutdown, with its traceback.
            app.state.batcher.abandon()
        else:
            await app.state.batcher.close()

    app = FastAPI(
        title="sequencer",
        version=__version__,
        description='Translates sentences with a sequencer model. Errors are JSON: `{"error": "..."}`.',
        lifespan=lifespan,
        redirect_slashes=False,  # /translate/ is no endpoint: a 404, not a redirect
    )
    _add_error_handlers(app)
    app.add_middleware(RefuseOtherSites, allowed_hosts=config.allowed_hosts, host=config.host)
    app.add_middleware(RequestLog)  # added last, so outside the other: it logs the refusals too

    @app.post(
        "/translate",
        response_model=Translations,
        responses={code: {"model": ErrorBody} for code in (400, 413, 500, 503)},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body_schema}}}},
    )
    async def translate(request: Request) -> dict:
        """Translate sentences: `{"text": ["Hello."], "beam_width": 4, "n_best": 1}`."""
        asked = parse_request(await read_body(request, limit), backend, config)
        request.state.sentences = len(asked.sentences)
        found = await request.app.state.batcher.translate(asked.sentences, asked.beam_width, asked.n_best)
        translations = [[text for text, _ in hypotheses] for hypotheses in found]
        # JSON has no -inf: a translation of probability 0 (a beam wider than the vocabulary allows) scores null.
        scores = [[score if math.isfinite(score) else None for _, score in hypotheses] for hypotheses in found]
        if asked.n_best == 1:
            translations, scores = [row[0] for row in translations], [row[0] for row in scores]
        return {"translations": translations, "scores": scores, "model": backend.name}

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        """Whether the server is up, and the run it translates with."""
        return {"status": "ok", "model": backend.name}

    app.head("/health", include_in_schema=False)(health)  # what some health checks send

    for path, (content, media) in pages.items():
        app.get(path, include_in_schema=False)(_page(content, media))
    return app


def _page(content: bytes, media: str):
    async def page() -> Response:
        return Response(content, media_type=media, headers=PAGE_HEADERS)

    return page


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as `{"error": "..."}`: the requests' own, FastAPI's (no such path...) and any other."""

    async def serving_error(request: Request, error: ServingError) -> JSONResponse:
        request.state.error = error.message
        # A client that stopped sending its body holds a connection that will never be ready for
        # another request: it is closed rather than kept alive.
        headers = {"Connection": "close"} if error.status == 408 else None
        return JSONResponse({"error": error.message}, status_code=error.status, headers=headers)

    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        where = _method_and_path(request.method, request.url.path)
        message = {
            404: f"{where}: there is nothing here; the endpoints are POST /translate, GET /health, GET / and GET /docs",
            405: f"{where}: the method is not allowed here",
        }.get(error.status_code, f"{where}: {error.detail}")
        request.state.error = message
        return JSONResponse({"error": message}, status_code=error.status_code, headers=error.headers)

    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": "the server failed to answer; its log says why"}, status_code=500)

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)


class RequestLog:
    """An ASGI middleware that logs one line per request: `POST /translate 200: 3 sentences, 41 ms`,
    and the error if there was one (from the request's state: `sentences`, `error`).

    Plain ASGI rather than FastAPI's `@app.middleware("http")`, which wraps every request and
    response in extra tasks and streams: under load that cost a sixth of the throughput.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            state = scope.get("state", {})
            parts = [f"{(time.perf_counter() - started) * 1000:.0f} ms"]
            sentences = state.get("sentences")
            if sentences is not None:
                parts.insert(0, f"{sentences} sentence{'' if sentences == 1 else 's'}")
            error = state.get("error")
            line = f"{_method_and_path(scope['method'], scope['path'])} {status}: {', '.join(parts)}"
            log.info("%s", line + (f" ({error})" if error else ""))


def _method_and_path(method: str, path: str) -> str:
    """`POST /translate`, as an error or the log quotes it: the path URL-quoted, at most 80 characters."""
    path = quote(path)
    return f"{method} {path if len(path) <= 80 else path[:77] + '...'}"


class RefuseOtherSites:
    """An ASGI middleware that answers a request another site's page sent with an error, before the app sees it.

    Binding to 127.0.0.1 keeps other machines out, but not the pages a local browser shows: any
    page can POST to a local server (a `text/plain` body needs no CORS preflight, and the body is
    read as JSON whatever its type), and one on a domain that resolves to the server's address
    (DNS rebinding) can also read the answer. So a request whose `Host` names the server by a DNS
    name other than localhost, `allowed_hosts` and the `host` it is bound to gets a 400 (an IP
    address cannot be rebound), and one whose `Origin` is neither the server's own nor one of
    those names a 403. Clients that are not browsers (curl, scripts) send no Origin and name the
    server as they reach it.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: str, host: str):
        self.app = app
        names = [name.lower() for name in allowed_hosts.split(",") if name]
        if not _named_by_address(host.lower()):  # bound to a name (host=box.lan): the server answers to it
            names.append(host.lower())
        self.names = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _refusal(Headers(scope=scope), self.names) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["error"] = refusal.message  # for RequestLog
        await JSONResponse({"error": refusal.message}, status_code=refusal.status)(scope, receive, send)


def _refusal(headers: Headers, names: frozenset[str]) -> ServingError | None:
    """Why a request of these headers is refused by `RefuseOtherSites`' rules, or None."""
    host = headers.get("host")  # none: HTTP/1.0, which browsers do not send
    address = None
    if host is not None:
        try:
            address = _host_and_port(host)
        except ValueError:
            return ServingError(400, f"the Host header {_shown(host)} is not a host name with an optional port")
        if "*" not in names and not _named_by_address(address[0]) and address[0] not in names:
            return ServingError(
                400,
                f"the Host header names {_shown(address[0])}, which this server does not answer to; it answers to "
                "IP addresses, localhost and the names in allowed_hosts",
            )
    origin = headers.get("origin")
    if origin is not None and not _same_site(origin, address, names):
        return ServingError(
            403,
            f"the request comes from another site's page (Origin {_shown(origin)}); this server answers its own "
            "page, pages of the names in allowed_hosts, and clients that send no Origin",
        )
    return None


def _same_site(origin: str, address: tuple[str, int | None] | None, names: frozenset[str]) -> bool:
    """Whether a page of `origin` is the server's own (the host and port the request names) or an allowed host's."""
    try:
        parts = urlsplit(origin)  # ValueError for a bracket left open ("http://[")
        if parts.scheme not in ("http", "https"):  # "null": a sandboxed page or a file
            return False
        origin_host, origin_port = _host_and_port(parts.netloc)
    except ValueError:
        return False
    if origin_host in names:  # an allowed host, on any port
        return True
    if address is None or origin_host != address[0]:
        return False
    # A Host without a port comes through a proxy on a default port (perhaps https); otherwise the
    # page's port, or its scheme's default, must be the one the request names.
    return address[1] is None or (origin_port or {"http": 80, "https": 443}[parts.scheme]) == address[1]


def _host_and_port(netloc: str) -> tuple[str, int | None]:
    """("localhost", 8000) for `localhost:8000` (a Host header, or an origin's authority); ValueError if it is none."""
    if not netloc or any(character in netloc for character in "/?#@\\"):
        raise ValueError(netloc)
    parts = urlsplit("//" + netloc)
    if not parts.hostname:
        raise ValueError(netloc)
    return parts.hostname, parts.port  # .port raises ValueError for a port that is no number


def _named_by_address(host: str) -> bool:
    """Whether a Host names the server by localhost or an IP address, which no other site can rebind."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# ---- Running


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


def warm_up(backend: Backend) -> None:
    """Translate one sentence, so that the first request does not wait while TensorFlow traces the decoder."""
    backend.translate(["Hello."], backend.beam_width, backend.n_best)


class ServingProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a deadline for request heads, and JSON answers to what is
    not HTTP and to requests beyond `limit_concurrency`.

    uvicorn closes a kept-alive connection that stays silent after an answer (after
    `timeout_keep_alive`), but not one that sends nothing from the start, or stops halfway
    through its headers: enough of those would hold every place `limit_concurrency` allows, so
    this one closes a connection that sends no whole request head within `HEAD_SECONDS`. And
    where uvicorn answers bytes that h11 cannot read as a request with a plain-text 400, or a
    request beyond its limit with a plain-text 503, this one answers with the JSON error every
    other refusal has.
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
        log.warning("%s 503: %s", _method_and_path(scope["method"], scope["path"]), message)
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

    uvicorn's own logging is left unconfigured: the request lines come from `RequestLog`, and
    its warnings and errors still reach standard error.
    """
    return uvicorn.Server(
        uvicorn.Config(
            app,
            http=ServingProtocol,
            log_config=None,
            access_log=False,
            limit_concurrency=MAX_CONNECTIONS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve `app` on `sock` until Ctrl-C or SIGTERM, which let the requests in flight finish first.

    A second Ctrl-C stops at once: the requests in flight get a 503 (`Batcher.translate`). After a
    graceful stop, uvicorn raises the signal again, which `cli.run_script` reports as an
    interruption.
    """
    # What start-up made (TensorFlow, Keras, the model) lives as long as the server: out of the
    # garbage collector's reach, its full collections no longer walk it all, which paused a
    # request for about 250 ms every few hundred requests.
    gc.freeze()
    host, port = sock.getsockname()[:2]
    log.info("serving on http://%s:%d/ (Ctrl-C stops)", f"[{host}]" if ":" in host else host, port)
    _uvicorn_server(app).run(sockets=[sock])
