"""Dynamic batching: the requests are decoded on one worker thread, and concurrent ones together.

Translating one sentence costs a decoder little more than translating many at once, so under
load, gathering the sentences of concurrent requests into one decoding call makes throughput
rise with the number of clients instead of each request decoding alone. The event loop only
queues and gathers; TensorFlow decodes on the worker thread, off the loop, so the server keeps
reading requests and answering `/health` while it decodes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from sequencer.scoring import PairScore
from sequencer.serving.backends import Backend, Hypothesis
from sequencer.serving.requests import ServingError
from sequencer.translation import Sampling

log = logging.getLogger(__name__)

Settings = tuple[int, int, Sampling | None]  # beam_width, n_best, and how to draw (None: by search)


@dataclass(frozen=True)
class _Job:
    """One request's sentences to translate, or pairs to score, waiting for the worker."""

    items: list[Any]  # sentences, or (source, target) pairs
    prefixes: list[str] | None  # one per sentence ("" for none); None: the request gave none
    how: Settings | None  # how to translate the sentences; None: score the pairs
    key: Hashable  # the jobs gathered with the same key are decoded in one call
    done: asyncio.Future[list[Any]]
    arrived: float  # the event loop's time


class Batcher:
    """Decodes the requests on one worker thread, in arrival order, gathering concurrent ones.

    With `wait_seconds` (dynamic batching), the worker takes the oldest waiting request and the
    requests after it, while fewer than `batch_size` sentences (or pairs) are gathered: those
    waiting already at once, then those that arrive until `wait_seconds` after the oldest
    arrived (so a request that waited while the worker decoded waits no longer). The gathered
    requests with the same beam width and n-best are decoded in one call, those with prefixes
    and those without together (an empty prefix for each sentence of the latter), and so are
    the pairs to score; a request that samples is drawn alone, so that its seed gives the same
    samples whatever else is in flight. Under load a call holds the sentences of many requests.
    With `wait_seconds` None, each request is decoded alone. The event loop only queues and
    gathers; TensorFlow decodes on the worker thread, using every core itself.

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

    async def translate(
        self,
        sentences: list[str],
        beam_width: int,
        n_best: int,
        *,
        prefixes: list[str] | None = None,
        sampling: Sampling | None = None,
    ) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each sentence (by search, or drawn with `sampling`),
        each starting with its prefix, if any; an empty sentence gets `n_best` times ("", 0.0)."""
        how = (beam_width, n_best, sampling)
        key = object() if sampling else how  # a request that samples is a group of its own
        return await self._submit(sentences, prefixes, how, key, "translated")

    async def score(self, pairs: list[tuple[str, str]]) -> list[PairScore]:
        """The score of each (source, target) pair, in order."""
        return await self._submit(pairs, None, None, "score", "scored")

    async def _submit(
        self, items: list, prefixes: list[str] | None, how: Settings | None, key: Hashable, done: str
    ) -> list[Any]:
        """Queue a job and wait for what the worker gives it; a 503 if the server stops first (`done`:
        what the request would have had done)."""
        loop = asyncio.get_running_loop()
        job = _Job(items, prefixes, how, key, loop.create_future(), loop.time())
        self._queue.put_nowait(job)
        try:
            return await job.done
        except asyncio.CancelledError:  # uvicorn stopped before the answer: a second Ctrl-C, or the stop timed out
            raise ServingError(503, f"the server stopped before it {done} this request") from None

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
            groups: dict[Hashable, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                await self._decode(group)

    async def _gather(self) -> tuple[list[_Job], bool]:
        """The next requests to decode, and whether the batcher is to stop after them."""
        first = await self._queue.get()
        if first is None:
            return [], True
        jobs, size = [first], len(first.items)
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
            size += len(job.items)
        return jobs, False

    async def _decode(self, jobs: list[_Job]) -> None:
        """Decode the items of `jobs` (of the same key) in one call, and hand each job its share."""
        jobs = [job for job in jobs if not job.done.done()]  # a request cancelled while it waited
        if not jobs:
            return
        call, doing, what = _call(self.backend, jobs)
        try:
            found = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except Exception:
            log.exception("%s %s failed", doing, what)
            for job in jobs:
                if not job.done.done():
                    job.done.set_exception(ServingError(500, f"{doing} failed on the server; its log says why"))
            return
        start = 0
        for job in jobs:
            if not job.done.done():
                job.done.set_result(found[start : start + len(job.items)])
            start += len(job.items)


def _call(backend: Backend, jobs: list[_Job]) -> tuple[Callable[[], list], str, str]:
    """What decodes the items of `jobs` in one call on the worker, and what it does to how many, for the log."""
    items = [item for job in jobs for item in job.items]
    how = jobs[0].how
    if how is None:
        return partial(backend.score, items), "scoring", f"{len(items)} pairs"
    prefixes = None
    if any(job.prefixes is not None for job in jobs):
        prefixes = [prefix for job in jobs for prefix in job.prefixes or [""] * len(job.items)]
    return partial(_translate, backend, items, prefixes, *how), "decoding", f"{len(items)} sentences"


def _translate(
    backend: Backend,
    sentences: list[str],
    prefixes: list[str] | None,
    beam_width: int,
    n_best: int,
    sampling: Sampling | None,
) -> list[list[Hypothesis]]:
    """The backend's translations of the non-empty sentences; an empty one gets `n_best` times ("", 0.0)."""
    kept = [index for index, sentence in enumerate(sentences) if sentence]
    found: list[list[Hypothesis]] = [[("", 0.0)] * n_best for _ in sentences]
    if kept:
        asked = backend.translate(
            [sentences[i] for i in kept],
            beam_width,
            n_best,
            prefixes=None if prefixes is None else [prefixes[i] for i in kept],
            sampling=sampling,
        )
        for index, hypotheses in zip(kept, asked):
            found[index] = hypotheses
    return found
