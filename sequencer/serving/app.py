"""The FastAPI app: `POST /translate` and `/score`, `GET /health`, the page at `/`, the docs at `/docs`, JSON errors.

`create_app(backend, config)` wires the parts of this package together: the request checks of
`requests`, the `Batcher` the app's lifespan runs, the guard against other sites' pages, and a
log line per request. Every error is answered as `{"error": "..."}`: a refusal's own sentence,
FastAPI's (no such path, a method not allowed) in the same form, and any other failure as a 500
whose traceback is logged and never sent. The server reads no path a request names: the page's
files are read once, when the app is made.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sequencer import __version__
from sequencer.config import Config
from sequencer.scoring import PairScore
from sequencer.serving.backends import Backend, Hypothesis
from sequencer.serving.batching import Batcher
from sequencer.serving.guard import RefuseOtherSites
from sequencer.serving.requests import (
    ServingError,
    body_limit,
    method_and_path,
    parse_request,
    parse_score_request,
    read_body,
)

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
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


class TranslateBody(BaseModel):
    """The body of POST /translate (for the docs: the endpoint reads and checks the body itself)."""

    model_config = ConfigDict(extra="forbid")

    text: list[str] = Field(
        description="sentences to translate: at most max_request_sentences, each at most max_sentence_chars "
        "characters; an empty one translates to an empty string",
        examples=[["Hello.", "I am cold."]],
    )
    prefix: list[str] | None = Field(
        None,
        description='one per sentence ("" for none): target text its translation starts with, taken as it is; '
        "shorter than max_output_len target tokens (not with a SavedModel export)",
        examples=[["Bonjour", ""]],
    )
    decoding: Literal["search", "sample"] | None = Field(
        None,
        description="search (greedy or beam) or sample (draw n_best translations); default: the config's "
        "(a SavedModel export searches only)",
    )
    beam_width: int | None = Field(
        None,
        ge=1,
        description="decoding=search: 1 decodes greedily; at most max_beam_width; default: the config's "
        "(a SavedModel export takes its own only)",
    )
    n_best: int | None = Field(
        None,
        ge=1,
        description="translations per sentence: with decoding=search at most beam_width (a SavedModel export takes "
        "its own only), with decoding=sample the samples drawn, at most max_beam_width",
    )
    temperature: float | None = Field(
        None, ge=0, description="decoding=sample: divides the log-probabilities (0 is greedy); default: the config's"
    )
    top_k: int | None = Field(
        None,
        ge=0,
        description="decoding=sample: draw among this many most probable tokens (0: all); default: the config's",
    )
    top_p: float | None = Field(
        None,
        gt=0,
        le=1,
        description="decoding=sample: draw among the fewest most probable tokens whose probabilities add up to this "
        "(1: all); default: the config's",
    )
    seed: int | None = Field(
        None,
        ge=0,
        le=2**32 - 1,
        description="decoding=sample: the same seed, sentences and settings draw the same; default: the config's",
    )


class ScoreBody(BaseModel):
    """The body of POST /score (for the docs: the endpoint reads and checks the body itself)."""

    model_config = ConfigDict(extra="forbid")

    source: list[str] = Field(
        description="source sentences: at least one, at most max_request_sentences, each at most max_sentence_chars "
        "characters and not empty",
        examples=[["Hello."]],
    )
    target: list[str] = Field(
        description="a translation of each source sentence, to score (cut at max_output_len - 1 tokens)",
        examples=[["Bonjour."]],
    )


class Translations(BaseModel):
    """With n_best 1, a translation and a score per sentence; above, lists of n_best of them, best first."""

    translations: list[str] | list[list[str]]
    scores: list[float | None] | list[list[float | None]] = Field(
        description="log-probability divided by the length penalty; null for a best translation of probability 0 "
        "(the others of probability 0 are left out of an n-best list)"
    )
    model: str = Field(description="the run translated with")


class Scored(BaseModel):
    """A score per pair, in order: null for a pair of probability 0."""

    scores: list[float | None] = Field(
        description="the log-probability of the target given the source: its tokens' and its end marker's"
    )
    per_token: list[float | None] = Field(description="the score divided by tokens, comparable across lengths")
    tokens: list[int] = Field(description="the target tokens scored, the end marker included")
    model: str = Field(description="the run that scored")


class Health(BaseModel):
    status: str
    model: str


class ErrorBody(BaseModel):
    error: str = Field(description="one sentence: what was wrong and where")


def create_app(backend: Backend, config: Config) -> FastAPI:
    """The app: `backend` translates, `config`'s Serving and Prediction keys bound and batch the requests."""
    pages = {path: ((WEB_DIR / name).read_bytes(), media) for path, (name, media) in PAGE_FILES.items()}
    app = FastAPI(
        title="sequencer",
        version=__version__,
        description='Translates sentences with a sequencer model. Errors are JSON: `{"error": "..."}`.',
        lifespan=_lifespan(backend, config),
        redirect_slashes=False,  # /translate/ is no endpoint: a 404, not a redirect
    )
    _add_error_handlers(app)
    app.add_middleware(RefuseOtherSites, allowed_hosts=config.allowed_hosts, host=config.host)
    app.add_middleware(RequestLog)  # added last, so outside the other: it logs the refusals too
    _add_endpoints(app, backend, config)
    for path, (content, media) in pages.items():
        app.get(path, include_in_schema=False)(_page(content, media))
    return app


def _lifespan(backend: Backend, config: Config):
    """The app's lifespan: a `Batcher` made on the running event loop as the server starts, and closed as it stops."""

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

    return lifespan


def _add_endpoints(app: FastAPI, backend: Backend, config: Config) -> None:
    """`POST /translate`, `POST /score` and `GET /health` (and `HEAD /health`)."""
    limit = body_limit(config)

    @app.post("/translate", response_model=Translations, **_documented(TranslateBody))
    async def translate(request: Request) -> dict:
        """Translate sentences: `{"text": ["Hello.", "I am cold."]}`. The other fields are optional: by search
        (`beam_width`, `n_best`; a run's server or a CTranslate2 export's takes any beam width up to its
        max_beam_width, a SavedModel export only its own) or `"decoding": "sample"` (`n_best` samples drawn with
        `temperature`, `top_k`, `top_p` and `seed`), from a `prefix` per sentence or not."""
        asked = parse_request(await read_body(request, limit), backend, config)
        request.state.sentences = len(asked.sentences)
        found = await request.app.state.batcher.translate(
            asked.sentences, asked.beam_width, asked.n_best, prefixes=asked.prefixes, sampling=asked.sampling
        )
        return _answer(found, asked.n_best, backend.name)

    @app.post("/score", response_model=Scored, **_documented(ScoreBody))
    async def score(request: Request) -> dict:
        """Score given translations: `{"source": ["Hello."], "target": ["Bonjour."]}`, each pair's log-probability
        under the model (a run's server or a CTranslate2 export's; a SavedModel export cannot)."""
        pairs = parse_score_request(await read_body(request, limit), backend, config)
        request.state.pairs = len(pairs)
        return _scored(await request.app.state.batcher.score(pairs), backend.name)

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        """Whether the server is up, and the run it translates with."""
        return {"status": "ok", "model": backend.name}

    app.head("/health", include_in_schema=False)(health)  # what some health checks send


def _documented(body: type[BaseModel]) -> dict:
    """The OpenAPI description of an endpoint that reads `body` itself, and of its errors."""
    content = {"application/json": {"schema": body.model_json_schema()}}
    return {
        "responses": {code: {"model": ErrorBody} for code in (400, 413, 500, 503)},
        "openapi_extra": {"requestBody": {"required": True, "content": content}},
    }


def _answer(found: list[list[Hypothesis]], n_best: int, model: str) -> dict:
    """The JSON of `Translations`: with `n_best` 1, a translation and a score per sentence; above, lists of them."""
    translations = [[text for text, _ in hypotheses] for hypotheses in found]
    # JSON has no -inf: a translation of probability 0 (a beam wider than the vocabulary allows) scores null.
    scores = [[score if math.isfinite(score) else None for _, score in hypotheses] for hypotheses in found]
    if n_best == 1:
        translations, scores = [row[0] for row in translations], [row[0] for row in scores]
    return {"translations": translations, "scores": scores, "model": model}


def _scored(scores: list[PairScore], model: str) -> dict:
    """The JSON of `Scored`; JSON has no -inf, so a pair of probability 0 scores null."""

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "scores": [finite(score.total) for score in scores],
        "per_token": [finite(score.per_token) for score in scores],
        "tokens": [score.tokens for score in scores],
        "model": model,
    }


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
        where = method_and_path(request.method, request.url.path)
        endpoints = "POST /translate, POST /score, GET /health, GET / and GET /docs"
        message = {
            404: f"{where}: there is nothing here; the endpoints are {endpoints}",
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
    and the error if there was one (from the request's state: `sentences` or `pairs`, `error`).

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
            for noun in ("sentence", "pair"):
                count = state.get(noun + "s")
                if count is not None:
                    parts.insert(0, f"{count} {noun}{'' if count == 1 else 's'}")
            error = state.get("error")
            line = f"{method_and_path(scope['method'], scope['path'])} {status}: {', '.join(parts)}"
            log.info("%s", line + (f" ({error})" if error else ""))
