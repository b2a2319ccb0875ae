"""What a request may be, checked before anything is decoded: `ServingError`, the body's limits, its fields, its cost.

The endpoint reads and checks the body itself rather than letting FastAPI validate a model: so
that the body is bounded while it is read (a size counted as it arrives, a time it must arrive
in), and so that a wrong field gets a 400 naming it in the project's words, where FastAPI would
answer a 422 listing pydantic's. Every refusal is a `ServingError`: a status, and one sentence
saying what was wrong and where, which the app answers as `{"error": "..."}`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request

from sequencer.config import Config
from sequencer.errors import SequencerError

if TYPE_CHECKING:
    from sequencer.serving.backends import Backend

REQUEST_FIELDS = ("text", "beam_width", "n_best")
# How long a request's body may take to arrive: a client that stops sending gets a 408 after it,
# rather than holding its connection, and a graceful stop, for as long as it likes.
BODY_SECONDS = 30.0


class ServingError(SequencerError):
    """A request that gets an error status, with one sentence saying what was wrong and where."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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
        raise ServingError(400, f'the body must be a JSON object such as {{"text": ["Hello."]}}, not {shown(data)}')
    unknown = [name for name in data if name not in REQUEST_FIELDS]
    if unknown:
        raise ServingError(400, f"unknown field {shown(unknown[0])}; a request has text, beam_width and n_best")
    sentences = _sentences(data, config)
    beam_width = _integer(data, "beam_width", backend.beam_width, backend.allowed("beam_width", 0))
    n_best = _integer(data, "n_best", min(backend.n_best, beam_width), backend.allowed("n_best", beam_width))
    _check_cost(sentences, beam_width, backend, config)
    return TranslationRequest(sentences, beam_width, n_best)


def _check_cost(sentences: list[str], beam_width: int, backend: Backend, config: Config) -> None:
    """ServingError 413 for a request whose decoding would cost more than `max_request_tokens`:
    its sentences' source tokens (as the model reads them) times its beam width. The other limits
    bound a request's size, not its work: without this, 64 sentences of 1,000 characters at beam
    width 8 held a server for about a minute (docs/serving.md)."""
    if not config.max_request_tokens:
        return
    tokens, most = backend.source_tokens([sentence for sentence in sentences if sentence]), config.max_request_tokens
    if tokens * beam_width > most:
        raise ServingError(
            413,
            f"text holds {tokens:,} source tokens, which at beam width {beam_width} cost {tokens * beam_width:,}; "
            f"a request may cost at most {most:,} (max_request_tokens: source tokens x beam width)",
        )


def _object_of_distinct_names(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict; ServingError for a name given twice, whose last value json.loads would keep silently."""
    names = set()
    for name, _ in pairs:
        if name in names:
            raise ServingError(400, f"the body names {shown(name)} twice in one object; name each field once")
        names.add(name)
    return dict(pairs)


def _sentences(data: dict, config: Config) -> list[str]:
    if "text" not in data:
        raise ServingError(400, 'text is missing; send {"text": ["a sentence", ...]}')
    text = data["text"]
    if not isinstance(text, list):
        raise ServingError(400, f"text must be a list of sentences (strings), not {shown(text)}")
    if len(text) > config.max_request_sentences:
        raise ServingError(
            413,
            f"text holds {len(text)} sentences; a request may hold at most "
            f"{config.max_request_sentences} (max_request_sentences)",
        )
    for index, sentence in enumerate(text):
        if not isinstance(sentence, str):
            raise ServingError(400, f"text[{index}] must be a string, not {shown(sentence)}")
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
        raise ServingError(400, f"{field} must be {expected}, not {shown(value)}")
    return value


def shown(value: Any) -> str:
    """A JSON value as a message quotes it: control characters escaped, at most 40 characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except RecursionError:  # nested a little less deeply than json.loads allows, more than json.dumps does
        return f"a deeply nested {'list' if isinstance(value, list) else 'object'}"
    return text if len(text) <= 40 else text[:37] + "..."


def method_and_path(method: str, path: str) -> str:
    """`POST /translate`, as an error or the log quotes it: the path URL-quoted, at most 80 characters."""
    path = quote(path)
    return f"{method} {path if len(path) <= 80 else path[:77] + '...'}"
