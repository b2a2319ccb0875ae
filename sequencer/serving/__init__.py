"""The HTTP translation server: a FastAPI app around a run folder or an export (SavedModel or CTranslate2).

`create_app(backend, config)` answers `POST /translate` (by search or by sampling, from
prefixes or not), `POST /score` (the model's log-probability of given translations),
`GET /health`, the page at `/` (files in `sequencer/web/`) and FastAPI's docs at `/docs`;
`listen` and `run_server` serve it under uvicorn. One module per job:

- `backends`: what translates a list of sentences and scores pairs: `TranslatorBackend`, a
  thin wrapper of a run's `Translator` or an export's translator (any beam width up to
  `max_beam_width`, sampling, prefixes and scoring; a SavedModel export, its own beam width and
  n-best only, and nothing else).
- `requests`: every request is bounded: its body is read up to what `max_request_sentences`
  sentences of `max_sentence_chars` characters (and as many prefixes, or targets) can need,
  for at most `BODY_SECONDS`, and checked field by field before anything is decoded, its cost
  (source tokens x beam width or samples; source and target tokens to score) within
  `max_request_tokens`. A bad request gets a 4xx and `{"error": "..."}` (a `ServingError`),
  one sentence naming the JSON field.
- `batching`: requests are decoded on one worker thread, off the event loop; with
  `dynamic_batching`, the sentences of concurrent requests together (`Batcher`), so that
  throughput rises with load instead of each request decoding alone; a request that samples
  is drawn alone, so that its seed gives the same samples whatever else is in flight.
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
from sequencer.serving.requests import ServingError, body_limit, parse_request, parse_score_request, read_body
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
    "parse_score_request",
    "read_body",
    "read_export",
    "run_server",
    "warm_up",
]
