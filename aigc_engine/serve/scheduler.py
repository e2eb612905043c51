"""Per-model workers: continuous batching of concurrent requests.

Each token-level text model has one worker thread that owns a
:class:`~aigc_engine.decoding.DecodeBatch`. Requests wait in a bounded queue
and join the running batch at a step boundary while sequence slots are free;
finished and cancelled ones leave at the next step. A request's draws are
keyed by its own seed and sample index and its rows are its own, so its text
does not depend on what else shares the batch.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..decoding import DecodeBatch, Sequence_, TokenModel
from ..generator import TextRequest
from .errors import APIError

#: How long one sequence's C++ chunk may take while serving (keeps every stream moving).
SERVE_CHUNK_SECONDS = 0.004


class Job:
    """One request in a worker: its sequences and the queue its events go to.

    Events arrive in ``events`` as ``(tag, item)``: ``item`` is a list of
    ``(sample index, text, token, finish reason)`` (one per token, or one per
    chunk of a model that samples ahead, token -1), ``("done", sequences)`` at
    the end, or an exception that failed the request.
    """

    def __init__(self, request: TextRequest, loop: asyncio.AbstractEventLoop,
                 events: asyncio.Queue[Any], tag: int = 0) -> None:
        self.request = request
        self.loop = loop
        self.events = events
        self.tag = tag
        self.seqs: list[Sequence_] = []
        self.cancelled = False
        self.created = time.perf_counter()
        self.reported = 0  # tokens counted in the metrics so far

    def send(self, item: Any) -> None:
        """Hand an event to the request's coroutine (thread-safe)."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, (self.tag, item))


class Worker:
    """The decoding thread of one model."""

    def __init__(self, name: str, model: TokenModel, *, slots: int, queue_size: int,
                 on_tokens: Callable[[str, int], None] | None = None) -> None:
        self.name = name
        self.model = model
        self.slots = slots
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._jobs: list[Job] = []
        self._stop = threading.Event()
        self._on_tokens = on_tokens
        self._thread = threading.Thread(target=self._run, name=f"aigc-worker-{name}",
                                        daemon=True)
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return self._queue.qsize()

    @property
    def running(self) -> int:
        """Requests being decoded."""
        return len(self._jobs)

    def submit(self, job: Job) -> None:
        """Queue a job; 429 with Retry-After when the queue is full."""
        if job.request.n > self.slots:
            raise APIError(400, f"n={job.request.n} is more than this model's {self.slots} "
                           "slots", param="n")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise APIError(429, f"model {self.name!r} is busy: its queue is full; retry later",
                           type="rate_limit_error", code="queue_full",
                           headers={"Retry-After": "1"}) from None

    def close(self) -> None:
        """Stop the thread (after the running jobs are cancelled)."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        batch = DecodeBatch(self.model, chunk_seconds=SERVE_CHUNK_SECONDS)
        waiting: Job | None = None
        while not self._stop.is_set():
            free = self.slots - sum(len(j.seqs) for j in self._jobs)
            while True:
                if waiting is None:
                    try:
                        waiting = self._queue.get(timeout=0.05) if batch.done else \
                            self._queue.get_nowait()
                    except queue.Empty:
                        break
                if waiting.cancelled:
                    waiting = None
                    continue
                if waiting.request.n > free:
                    break
                try:
                    waiting.seqs = batch.add(waiting.request)
                except Exception as exc:  # a bad request for this model (e.g. a token id)
                    waiting.send(exc)
                    waiting = None
                    continue
                free -= waiting.request.n
                self._jobs.append(waiting)
                waiting = None
            for job in [j for j in self._jobs if j.cancelled]:
                batch.cancel(job.seqs)
                self._jobs.remove(job)
            if batch.done:
                continue
            try:
                steps = batch.step(events=False)
            except Exception as exc:  # the model failed: fail its requests, keep serving
                for job in self._jobs:
                    job.send(exc)
                self._jobs = []
                batch = DecodeBatch(self.model, chunk_seconds=SERVE_CHUNK_SECONDS)
                continue
            owner = {id(s): j for j in self._jobs for s in j.seqs}
            per_job: dict[int, list[tuple[int, str, int, str | None]]] = {}
            for seq, text, token, finish in steps:
                holder = owner.get(id(seq))
                if holder is not None:
                    per_job.setdefault(id(holder), []).append((seq.index, text, token, finish))
            for job in list(self._jobs):
                items = per_job.get(id(job))
                if items:
                    job.send(items)
                    drawn = sum(s.drawn for s in job.seqs)
                    if self._on_tokens is not None:
                        self._on_tokens(self.name, drawn - job.reported)
                    job.reported = drawn
                if all(s.finish is not None for s in job.seqs):
                    job.send(("done", job.seqs))
                    self._jobs.remove(job)
