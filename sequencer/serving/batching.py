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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sequencer.serving.backends import Backend, Hypothesis
from sequencer.serving.requests import ServingError

log = logging.getLogger(__name__)


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
