"""What a request may be, checked before anything is decoded: `ServingError`, the body's limits, its fields, its cost.

The endpoints read and check the body themselves rather than letting FastAPI validate a model:
so that the body is bounded while it is read (a size counted as it arrives, a time it must
arrive in), and so that a wrong field gets a 400 naming it in the project's words, where FastAPI
would answer a 422 listing pydantic's. Every refusal is a `ServingError`: a status, and one
sentence saying what was wrong and where, which the app answers as `{"error": "..."}`. A field
given as null is a field left out.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import ClientDisconnect, Request

from sequencer.config import KEYS_BY_NAME, Config
from sequencer.errors import SequencerError
from sequencer.translation import Sampling

if TYPE_CHECKING:
    from sequencer.serving.backends import Backend

SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "seed")
TRANSLATE_FIELDS = ("text", "prefix", "beam_width", "n_best", "decoding", *SAMPLING_FIELDS)
SCORE_FIELDS = ("source", "target")
# How long a request's body may take to arrive: a client that stops sending gets a 408 after it,
# rather than holding its connection, and a graceful stop, for as long as it likes.
BODY_SECONDS = 30.0
# What the model of a server that cannot sample, take prefixes or score is: the one such translator.
SEARCH_ONLY = "this server's model is a SavedModel export, which"


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
    beam_width: int  # by search; with sampling, the backend's default, which sampling ignores
    n_best: int  # translations per sentence: the best of a search, or the samples drawn
    prefixes: list[str] | None = None  # one per sentence ("" for none), as sent; None: the request gave none
    sampling: Sampling | None = None  # how to draw with decoding=sample; None: by search


def body_limit(config: Config) -> int:
    """The largest body a valid request can need, in bytes.

    A request holds at most two strings per sentence (a sentence and its prefix, or a source and
    its target). A character may be sent as an escaped surrogate pair (`\\ud83d\\ude00`, 12
    bytes); each string adds quotes, a separator and some white space, and the rest of the object
    (the other fields) a little.
    """
    return config.max_request_sentences * 2 * (12 * config.max_sentence_chars + 16) + 4096


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
    """The sentences and decoding of a `POST /translate` body; ServingError naming the field if it is wrong.

    The body is read as JSON whatever its Content-Type says, so that `curl -d` works as it is.
    Each sentence loses its leading and trailing white space, as a line does in predict.py; a
    prefix is kept as it is, since the translation starts with exactly its tokens.
    """
    data = _json_object(body, '{"text": ["Hello."]}')
    _check_names(data, TRANSLATE_FIELDS, "a request")
    text = _strings(data, "text", config, 'send {"text": ["a sentence", ...]}')
    mode = _decoding(data, backend)
    prefixes = _prefixes(data, len(text), backend, config)
    sentences = [sentence.strip() for sentence in text]
    default = backend.default
    if mode == "sample":
        if data.get("beam_width") is not None:
            raise ServingError(
                400,
                'beam_width applies to decoding "search" only, and this request samples '
                "(n_best is the samples it draws)",
            )
        n_best = _integer(data, "n_best", default.n_best, backend.allowed("samples", 0))
        sampling = _sampling(data, default.sampling)
        _check_cost(sentences, n_best, True, backend, config)
        return TranslationRequest(sentences, default.beam_width, n_best, prefixes, sampling)
    for field in SAMPLING_FIELDS:
        if data.get(field) is not None:
            raise _not_sampling(field, backend)
    beam_width = _integer(data, "beam_width", default.beam_width, backend.allowed("beam_width", 0))
    n_best = _integer(data, "n_best", min(default.n_best, beam_width), backend.allowed("n_best", beam_width))
    _check_cost(sentences, beam_width, False, backend, config)
    return TranslationRequest(sentences, beam_width, n_best, prefixes)


def parse_score_request(body: bytes, backend: Backend, config: Config) -> list[tuple[str, str]]:
    """The (source, target) pairs of a `POST /score` body; ServingError naming the field if it is wrong.

    Both sides lose their leading and trailing white space, as score.py reads a pair, and neither
    may be empty then (an empty source is nothing the model can read).
    """
    if not backend.can_score:
        raise ServingError(400, f"POST /score is not possible: {SEARCH_ONLY} only translates")
    data = _json_object(body, '{"source": ["Hello."], "target": ["Bonjour."]}')
    _check_names(data, SCORE_FIELDS, "a score request")
    send = 'send {"source": ["a sentence", ...], "target": ["its translation", ...]}'
    sources = _strings(data, "source", config, send)
    if not sources:
        raise ServingError(400, f"source is empty; {send}")
    targets = _strings(data, "target", config, send)
    if len(targets) != len(sources):
        raise ServingError(
            400, f"target holds {len(targets)} sentences and source {len(sources)}; give one target per source"
        )
    pairs = [(source.strip(), target.strip()) for source, target in zip(sources, targets)]
    for index, pair in enumerate(pairs):
        for field, side in zip(SCORE_FIELDS, pair):
            if not side:
                raise ServingError(400, f"{field}[{index}] is empty; a pair to score has a sentence on each side")
    _check_score_cost(pairs, backend, config)
    return pairs


def _json_object(body: bytes, example: str) -> dict:
    """The body as a JSON object; ServingError if it is not UTF-8, not JSON, or not an object such as `example`."""
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
        raise ServingError(400, f"the body must be a JSON object such as {example}, not {shown(data)}")
    return data


def _check_names(data: dict, fields: tuple[str, ...], what: str) -> None:
    unknown = [name for name in data if name not in fields]
    if unknown:
        listed = ", ".join(fields[:-1]) + " and " + fields[-1]
        raise ServingError(400, f"unknown field {shown(unknown[0])}; {what} has {listed}")


def _strings(data: dict, field: str, config: Config, send: str) -> list[str]:
    """`data[field]`: a list of at most `max_request_sentences` strings of at most
    `max_sentence_chars` characters each; ServingError, saying what to `send` if it is missing."""
    if data.get(field) is None:
        raise ServingError(400, f"{field} is missing; {send}")
    values = data[field]
    if not isinstance(values, list):
        raise ServingError(400, f"{field} must be a list of sentences (strings), not {shown(values)}")
    if len(values) > config.max_request_sentences:
        raise ServingError(
            413,
            f"{field} holds {len(values)} sentences; a request may hold at most "
            f"{config.max_request_sentences} (max_request_sentences)",
        )
    _check_each_string(values, field, config, "a sentence")
    return values


def _check_each_string(values: list, field: str, config: Config, each: str) -> None:
    """ServingError naming the first of `values` (`each` of them "a sentence", or "a prefix") that
    is no string, holds a lone surrogate, or is longer than `max_sentence_chars`."""
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ServingError(400, f"{field}[{index}] must be a string, not {shown(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            lone = value[error.start]
            raise ServingError(400, f"{field}[{index}] holds a lone surrogate ({lone!r}), which is not text") from None
        if len(value) > config.max_sentence_chars:
            raise ServingError(
                400,
                f"{field}[{index}] has {len(value)} characters; {each} may have at most "
                f"{config.max_sentence_chars} (max_sentence_chars)",
            )


def _decoding(data: dict, backend: Backend) -> str:
    """The request's decoding mode: "search" or "sample", by default the backend's."""
    mode = data.get("decoding")
    if mode is None:
        return backend.default.mode
    if mode not in ("search", "sample"):
        raise ServingError(400, f'decoding must be "search" or "sample", not {shown(mode)}')
    if mode == "sample" and not backend.can_sample:
        raise ServingError(400, f'decoding "sample" is not possible: {SEARCH_ONLY} decodes by search only')
    return mode


def _prefixes(data: dict, sentences: int, backend: Backend, config: Config) -> list[str] | None:
    """The request's prefixes, one per sentence, or None; each shorter than a translation may be
    (`max_output_len` target tokens, the end marker included)."""
    prefixes = data.get("prefix")
    if prefixes is None:
        return None
    if not backend.can_force:
        raise ServingError(400, f"prefix is not possible: {SEARCH_ONLY} cannot start a translation with a prefix")
    if not isinstance(prefixes, list):
        raise ServingError(400, f"prefix must be a list of strings, one per sentence of text, not {shown(prefixes)}")
    if len(prefixes) != sentences:
        raise ServingError(
            400, f'prefix has {len(prefixes)} for {sentences} sentences of text; give one per sentence ("" for none)'
        )
    _check_each_string(prefixes, "prefix", config, "a prefix")
    longest = backend.max_output_len - 1
    for index, tokens in enumerate(backend.target_tokens(prefixes)):
        if tokens > longest:
            raise ServingError(
                400,
                f"prefix[{index}] has {tokens} target tokens; a prefix may have at most {longest}, as a translation "
                f"has at most {backend.max_output_len} (max_output_len), its end marker included",
            )
    return prefixes


def _not_sampling(field: str, backend: Backend) -> ServingError:
    """The refusal of a sampling field in a request that decodes by search."""
    if not backend.can_sample:
        return ServingError(400, f"{field} is not possible: {SEARCH_ONLY} decodes by search only")
    return ServingError(
        400, f'{field} applies to decoding "sample" only, and this request decodes by search; send "decoding": "sample"'
    )


def _sampling(data: dict, default: Sampling) -> Sampling:
    """How a decoding=sample request draws: each field it leaves out, the backend's `default`."""
    values = {field: _field(data, field, getattr(default, field), *SAMPLING_RULES[field]) for field in SAMPLING_FIELDS}
    return Sampling(float(values["temperature"]), values["top_k"], float(values["top_p"]), values["seed"])


def _integer(data: dict, field: str, default: int, allowed: tuple[range, str]) -> int:
    """`data[field]`, or `default` if it is absent or null, which must be one of `allowed`'s values."""
    values, expected = allowed
    return _field(data, field, default, expected, lambda value: _is_integer(value) and value in values)


def _field(data: dict, field: str, default: Any, expected: str, accepts: Callable[[Any], bool]) -> Any:
    """`data[field]`, or `default` if it is absent or null; ServingError saying it must be
    `expected` unless `accepts` it."""
    value = data.get(field)
    if value is None:
        return default
    if not accepts(value):
        raise ServingError(400, f"{field} must be {expected}, not {shown(value)}")
    return value


def _is_integer(value: Any) -> bool:
    return type(value) is int  # not isinstance: JSON's true is no count


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _number_within(field: str, integer: bool) -> Callable[[Any], bool]:
    """Whether a value is a JSON number (an integer if `integer`) that the configuration key
    `field` allows: one rule for a config file's value and a request's."""
    key = KEYS_BY_NAME[field]

    def accepts(value: Any) -> bool:
        if not (_is_integer(value) if integer else _is_number(value)):
            return False
        try:
            return key.within(float(value))
        except OverflowError:  # an integer of hundreds of digits, which JSON allows
            return False

    return accepts


# What each sampling field must be, said and checked (as the configuration's key).
SAMPLING_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "temperature": ("a finite number of 0 or more (0 decodes greedily)", _number_within("temperature", False)),
    "top_k": ("an integer of 0 or more (0 draws among all tokens)", _number_within("top_k", True)),
    "top_p": ("a number above 0 and at most 1 (1 draws among all tokens)", _number_within("top_p", False)),
    "seed": (f"an integer from 0 to {2**32 - 1:,}", _number_within("seed", True)),
}


def _check_cost(sentences: list[str], width: int, sampling: bool, backend: Backend, config: Config) -> None:
    """ServingError 413 for a request whose decoding would cost more than `max_request_tokens`:
    its sentences' source tokens (as the model reads them) times its beam width, or its samples
    per sentence with `sampling` (`width` either way: each is a row decoded). The other limits
    bound a request's size, not its work: without this, 64 sentences of 1,000 characters at
    beam width 8 held a server for about a minute (docs/serving.md)."""
    if not config.max_request_tokens:
        return
    tokens, most = backend.source_tokens([sentence for sentence in sentences if sentence]), config.max_request_tokens
    if tokens * width > most:
        at, per = (f"{width} samples a sentence", "samples") if sampling else (f"beam width {width}", "beam width")
        raise ServingError(
            413,
            f"text holds {tokens:,} source tokens, which at {at} cost {tokens * width:,}; "
            f"a request may cost at most {most:,} (max_request_tokens: source tokens x {per})",
        )


def _check_score_cost(pairs: list[tuple[str, str]], backend: Backend, config: Config) -> None:
    """ServingError 413 for pairs whose scoring would cost more than `max_request_tokens`: their
    source tokens and target tokens, as the model reads them (one pass over each, no search)."""
    if not config.max_request_tokens:
        return
    source = backend.source_tokens([source for source, _ in pairs])
    target = sum(backend.target_tokens([target for _, target in pairs]))
    if source + target > config.max_request_tokens:
        raise ServingError(
            413,
            f"source and target hold {source:,} and {target:,} tokens, which cost {source + target:,}; a request may "
            f"cost at most {config.max_request_tokens:,} (max_request_tokens: source + target tokens when scoring)",
        )


def _object_of_distinct_names(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object as a dict; ServingError for a name given twice, whose last value json.loads would keep silently."""
    names = set()
    for name, _ in pairs:
        if name in names:
            raise ServingError(400, f"the body names {shown(name)} twice in one object; name each field once")
        names.add(name)
    return dict(pairs)


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
