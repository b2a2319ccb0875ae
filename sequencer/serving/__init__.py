"""The HTTP translation server: a FastAPI app around a run folder or an export (SavedModel or CTranslate2).

`create_app(backend, config)` answers `POST /translate`, `GET /health`, the page at `/` (files
in `sequencer/web/`) and FastAPI's docs at `/docs`; `listen` and `run_server` serve it under
uvicorn. One module per job:

- `backends`: what translates a list of sentences with a beam width and an n-best count:
  `TranslatorBackend`, a thin wrapper of a run's `Translator` or an export's translator (any
  beam width up to `max_beam_width`; a SavedModel export, its own beam width and n-best only).
- `requests`: every request is bounded: its body is read up to what `max_request_sentences`
  sentences of `max_sentence_chars` characters can need, for at most `BODY_SECONDS`, and
  checked field by field before anything is decoded, its cost (source tokens x beam width)
  within `max_request_tokens`. A bad request gets a 4xx and
  `{"error": "..."}` (a `ServingError`), one sentence naming the JSON field.
- `batching`: requests are decoded on one worker thread, off the event loop; with
  `dynamic_batching`, the sentences of concurrent requests together (`Batcher`), so that
  throughput rises with load instead of each request decoding alone.
- `app`: the endpoints, their JSON errors (a failure while decoding is a 500, its traceback
  logged and never sent), a log line per request.
- `guard`: a request another site's page sent is refused (`RefuseOtherSites`).
- `server`: uvicorn: the socket, the connection and head bounds, a graceful stop, and the one
  class that reaches into uvicorn's internals.

TensorFlow (or CTranslate2) is imported only by the backends, so that the script checks its settings first.
"""

from sequencer.exports import read_export
from sequencer.serving.app import create_app
from sequencer.serving.backends import Backend, Hypothesis, TranslatorBackend, check_settings, warm_up
from sequencer.serving.batching import Batcher
from sequencer.serving.requests import ServingError, body_limit, parse_request, read_body
from sequencer.serving.server import listen, run_server

__all__ = [
    "Backend",
    "Batcher",
    "Hypothesis",
    "ServingError",
    "TranslatorBackend",
    "body_limit",
    "check_settings",
    "create_app",
    "listen",
    "parse_request",
    "read_body",
    "read_export",
    "run_server",
    "warm_up",
]
