"""The OpenAI-compatible ASGI app: routes, authentication, limits, streaming.

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST
/v1/chat/completions``, ``POST /v1/images/generations``, ``GET /health`` (503
until every model is loaded, and while draining), ``GET /metrics``
(Prometheus), ``GET /`` (the playground page). Errors use OpenAI's JSON shape;
bad input is a 4xx, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import io
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from ..decoding import RowByRow, Sequence_, TokenTextGenerator
from ..errors import AigcError, ConfigError
from ..generator import Generator, ImageGenerator, TextGenerator, TextRequest, TokenLogprob
from . import schema
from .errors import APIError, bad_request
from .metrics import Metrics
from .scheduler import Job, Worker

STATIC = Path(__file__).parent / "static"


class ServedModel:
    """A loaded generator and, for token-level text models, its worker."""

    def __init__(self, name: str, gen: Generator[Any], worker: Worker | None) -> None:
        self.name = name
        self.gen = gen
        self.worker = worker
        self.created = int(time.time())

    def describe(self) -> dict[str, Any]:
        """The /v1/models entry."""
        return {"id": self.name, "object": "model", "created": self.created,
                "owned_by": "aigc-engine", "modality": self.gen.modality,
                "generator": self.gen.name}


class ServeState:
    """What the app serves and how: models (loaded in the background), limits, key."""

    def __init__(self, sources: Mapping[str, Any], *, api_key: str | None,
                 limits: schema.Limits, slots: int, queue_size: int, max_body: int,
                 engine: Any = None) -> None:
        self.sources = dict(sources)
        self.api_key = api_key
        self.limits = limits
        self.slots = slots
        self.queue_size = queue_size
        self.max_body = max_body
        self.engine = engine
        self.models: dict[str, ServedModel] = {}
        self.loaded = threading.Event()
        self.load_error: str | None = None
        self.draining = False
        self.active = 0
        self.metrics = Metrics()

    def load(self) -> None:
        """Load every model (in a thread at start-up) and start the workers."""
        try:
            for name, source in self.sources.items():
                if isinstance(source, Generator):
                    gen = source
                else:
                    if self.engine is None:
                        from ..engine import Engine

                        self.engine = Engine()
                    gen = self.engine.load(source)
                worker = None
                if isinstance(gen, TokenTextGenerator):
                    model = gen.token_model()
                    if not model.batch_invariant:
                        # A seeded request's text must not depend on its batch.
                        model = RowByRow(model)
                    worker = Worker(name, model, slots=self.slots,
                                    queue_size=self.queue_size,
                                    on_tokens=lambda m, k: self.metrics.tokens.labels(m).inc(k))
                self.models[name] = ServedModel(name, gen, worker)
        except Exception as exc:  # reported by /health and the log
            self.load_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.loaded.set()

    def model(self, body: dict[str, Any]) -> ServedModel:
        """The model a request names."""
        return self.models[schema.model_name(body, list(self.models))]

    def close(self) -> None:
        """Stop the workers."""
        for m in self.models.values():
            if m.worker is not None:
                m.worker.close()


def create_app(sources: Mapping[str, Any], *, api_key: str | None = None,
               limits: schema.Limits | None = None, slots: int = 16, queue_size: int = 64,
               max_body: int = 1 << 20, engine: Any = None) -> Starlette:
    """The app serving ``sources`` (name -> bundle path, ARPA file or generator).

    ``api_key`` (or ``AIGC_API_KEY``) requires ``Authorization: Bearer KEY`` on
    the ``/v1`` endpoints; ``slots`` is the most sequences a model decodes at
    once, ``queue_size`` how many requests may wait (then 429), ``max_body``
    the largest request body in bytes (then 413).
    """
    state = ServeState(sources, api_key=api_key or os.environ.get("AIGC_API_KEY") or None,
                       limits=limits or schema.Limits(), slots=slots, queue_size=queue_size,
                       max_body=max_body, engine=engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=state.load, name="aigc-load", daemon=True).start()
        yield
        state.close()

    routes = [
        Route("/", playground),
        Route("/health", health),
        Route("/metrics", metrics),
        Route("/v1/models", list_models),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/images/generations", images, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.aigc = state
    return app


def _state(request: Request) -> ServeState:
    st: ServeState = request.app.state.aigc
    return st


# -- plain endpoints ----------------------------------------------------------------------------
async def playground(request: Request) -> Response:
    return HTMLResponse((STATIC / "playground.html").read_text(encoding="utf-8"))


async def health(request: Request) -> Response:
    st = _state(request)
    if st.load_error is not None:
        return JSONResponse({"status": "error", "error": st.load_error}, status_code=503)
    if not st.loaded.is_set():
        return JSONResponse({"status": "loading"}, status_code=503)
    if st.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    return JSONResponse({"status": "ok", "models": list(st.models)})


async def metrics(request: Request) -> Response:
    st = _state(request)
    for m in st.models.values():
        if m.worker is not None:
            st.metrics.queue.labels(m.name).set(m.worker.queue_depth)
            st.metrics.running.labels(m.name).set(m.worker.running)
    return Response(st.metrics.render(), media_type="text/plain; version=0.0.4")


def _endpoint(handler: Any) -> Any:
    """Authentication, readiness, body parsing and error shape for a /v1 route."""

    async def wrapped(request: Request) -> Response:
        st = _state(request)
        name = request.url.path
        try:
            _authorise(st, request)
            if st.draining:
                raise APIError(503, "the server is shutting down", type="server_error",
                               code="draining")
            if not st.loaded.is_set() or st.load_error is not None:
                raise APIError(503, "the models are still loading" if st.load_error is None
                               else f"a model failed to load: {st.load_error}",
                               type="server_error", code="loading")
            body = await _json_body(st, request) if request.method == "POST" else {}
            st.active += 1
            try:
                response: Response = await handler(st, body)
            except BaseException:
                st.active -= 1
                raise
            _count_until_sent(st, response)
        except APIError as exc:
            st.metrics.requests.labels(name, str(exc.status)).inc()
            return exc.response()
        except ConfigError as exc:
            st.metrics.requests.labels(name, "400").inc()
            return bad_request(str(exc)).response()
        st.metrics.requests.labels(name, str(response.status_code)).inc()
        return response

    return wrapped


def _count_until_sent(st: ServeState, response: Response) -> None:
    """A request is active (SIGTERM waits for it) until its body is sent: a stream
    until its last event."""
    if not isinstance(response, EventSourceResponse):
        st.active -= 1
        return
    events = response.body_iterator

    async def tracked() -> AsyncIterator[Any]:
        try:
            async for item in events:
                yield item
        finally:
            st.active -= 1

    response.body_iterator = tracked()


def _authorise(st: ServeState, request: Request) -> None:
    if st.api_key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                             st.api_key.encode()):
        raise APIError(401, "a valid API key is required (Authorization: Bearer KEY)",
                       type="authentication_error", code="invalid_api_key")


async def _json_body(st: ServeState, request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > st.max_body:
        raise APIError(413, f"the request body is larger than {st.max_body} bytes",
                       code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > st.max_body:
            raise APIError(413, f"the request body is larger than {st.max_body} bytes",
                           code="body_too_large")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"the request body is not valid UTF-8 (byte {exc.start})") from None

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise bad_request("the request body is nested too deeply") from None
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


@_endpoint
async def list_models(st: ServeState, body: dict[str, Any]) -> Response:
    return JSONResponse({"object": "list", "data": [m.describe() for m in st.models.values()]})



# -- text -----------------------------------------------------------------------------------------
def _text_model(st: ServeState, body: dict[str, Any]) -> ServedModel:
    m = st.model(body)
    if not isinstance(m.gen, TextGenerator):
        raise bad_request(f"model {m.name!r} generates {m.gen.modality}, not text "
                          "(use /v1/images/generations)", "model")
    return m


async def _run_jobs(m: ServedModel, requests: list[TextRequest], st: ServeState
                    ) -> AsyncIterator[tuple[int, Any]]:
    """Yield (request index, items) as the worker produces them, then (i, "done", seqs)."""
    loop = asyncio.get_running_loop()
    shared: asyncio.Queue[Any] = asyncio.Queue()
    jobs = [Job(r.with_seed(), loop, shared, i) for i, r in enumerate(requests)]
    assert m.worker is not None
    try:
        for job in jobs:
            m.worker.submit(job)
        remaining = len(jobs)
        first_seen: set[int] = set()
        last: dict[tuple[int, int], float] = {}
        while remaining:
            i, item = await shared.get()
            if isinstance(item, BaseException):
                raise item
            now = time.perf_counter()
            if isinstance(item, tuple) and item and item[0] == "done":
                remaining -= 1
            elif i not in first_seen:
                first_seen.add(i)
                st.metrics.ttft.labels(m.name).observe(now - jobs[i].created)
            else:
                for index, *_ in item:
                    prev = last.get((i, index))
                    if prev is not None:
                        st.metrics.itl.labels(m.name).observe(now - prev)
            if isinstance(item, list):
                for index, *_ in item:
                    last[(i, index)] = now
            yield i, item
    finally:
        for job in jobs:
            job.cancelled = True  # frees the slots if the client went away


async def _complete(m: ServedModel, requests: list[TextRequest], st: ServeState
                    ) -> list[list[Sequence_]]:
    """Every request run to its end through the model's worker."""
    done: dict[int, list[Sequence_]] = {}
    async for i, item in _run_jobs(m, requests, st):
        if isinstance(item, tuple) and item[0] == "done":
            done[i] = item[1]
    return [done[i] for i in range(len(requests))]


def _usage(requests: list[TextRequest], seqs: list[list[Sequence_]]) -> dict[str, int]:
    prompt = sum(len(s[0].prompt_ids) for s in seqs)
    completion = sum(x.drawn for s in seqs for x in s)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion_logprobs(m: ServedModel, lps: list[TokenLogprob] | None, start: int
                         ) -> dict[str, Any] | None:
    if lps is None:
        return None
    tok = m.gen.token_model().tokenizer  # type: ignore[attr-defined]
    tokens, offsets, pos = [], [], start
    for lp in lps:
        t = tok.token_text(lp.token_id)
        tokens.append(t)
        offsets.append(pos)
        pos += len(t)
    return {"tokens": tokens, "token_logprobs": [lp.logprob for lp in lps],
            "top_logprobs": [{tok.token_text(i): v for i, v in lp.top} for lp in lps],
            "text_offset": offsets}


def _chat_logprobs(m: ServedModel, lps: list[TokenLogprob] | None) -> dict[str, Any] | None:
    if lps is None:
        return None
    tok = m.gen.token_model().tokenizer  # type: ignore[attr-defined]

    def entry(i: int, v: float) -> dict[str, Any]:
        return {"token": tok.token_text(i), "logprob": v, "bytes": list(tok.token_bytes(i))}

    return {"content": [{**entry(lp.token_id, lp.logprob),
                         "top_logprobs": [entry(i, v) for i, v in lp.top]} for lp in lps]}


async def _whole_texts(m: ServedModel, requests: list[TextRequest]
                       ) -> list[list[tuple[str, str]]]:
    """(text, finish reason) of every sample, for text generators without a token loop."""
    out = []
    for r in requests:
        res = await run_in_threadpool(m.gen.generate, r)  # type: ignore[attr-defined]
        out.append([(c.text, c.finish_reason) for c in res.choices])
    return out


@_endpoint
async def completions(st: ServeState, body: dict[str, Any]) -> Response:
    schema.check_fields(body, schema.COMPLETION_FIELDS)
    m = _text_model(st, body)
    prompts = schema.completion_prompts(body, st.limits)
    echo = schema._bool(body, "echo", False)
    logprobs = schema.completion_logprobs(body)
    requests = [schema.text_request(body, p, st.limits, logprobs=logprobs, echo=echo)
                for p in prompts]
    stream, include_usage = schema.stream_flags(body)
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    head = {"id": rid, "object": "text_completion", "created": created, "model": m.name}
    n = requests[0].n
    if m.worker is None:
        if stream or logprobs is not None:
            raise bad_request(f"model {m.name!r} makes whole texts: stream and logprobs are "
                              "not available", "stream" if stream else "logprobs")
        texts = await _whole_texts(m, requests)
        whole = [{"index": i * n + j, "text": t, "logprobs": None, "finish_reason": f}
                 for i, samples in enumerate(texts) for j, (t, f) in enumerate(samples)]
        return JSONResponse({**head, "choices": whole,
                             "usage": {"prompt_tokens": 0, "completion_tokens": 0,
                                       "total_tokens": 0}})
    if not stream:
        seqs = await _complete(m, requests, st)
        choices: list[dict[str, Any]] = []
        for i, (r, group) in enumerate(zip(requests, seqs, strict=True)):
            for s in group:
                c = s.completion()
                choices.append({"index": i * n + s.index, "text": c.text,
                                "logprobs": _completion_logprobs(
                                    m, c.logprobs, len(r.prompt) if echo else 0),
                                "finish_reason": c.finish_reason})
        return JSONResponse({**head, "choices": choices, "usage": _usage(requests, seqs)})

    async def events() -> AsyncIterator[str]:
        if echo:
            for i, r in enumerate(requests):
                for j in range(n):
                    yield json.dumps({**head, "choices": [
                        {"index": i * n + j, "text": r.prompt, "logprobs": None,
                         "finish_reason": None}]})
        final: list[list[Sequence_]] = [[] for _ in requests]
        async for i, item in _run_jobs(m, requests, st):
            if isinstance(item, tuple):
                final[i] = item[1]
                continue
            for index, text, finish in _coalesce(item):
                yield json.dumps({**head, "choices": [
                    {"index": i * n + index, "text": text, "logprobs": None,
                     "finish_reason": finish}]})
        if include_usage:
            yield json.dumps({**head, "choices": [], "usage": _usage(requests, final)})
        yield "[DONE]"

    return EventSourceResponse(events(), ping=15)


@_endpoint
async def chat_completions(st: ServeState, body: dict[str, Any]) -> Response:
    schema.check_fields(body, schema.CHAT_FIELDS)
    m = _text_model(st, body)
    prompt = schema.chat_prompt(body, st.limits)
    logprobs = schema.chat_logprobs(body)
    request = schema.text_request(body, prompt, st.limits, logprobs=logprobs, echo=False,
                                  extra_stop=(schema.CHAT_STOP,))
    stream, include_usage = schema.stream_flags(body)
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    head = {"id": rid, "object": "chat.completion", "created": created, "model": m.name}
    if m.worker is None:
        if stream or logprobs is not None:
            raise bad_request(f"model {m.name!r} makes whole texts: stream and logprobs are "
                              "not available", "stream" if stream else "logprobs")
        (samples,) = await _whole_texts(m, [request])
        whole = [{"index": j, "message": {"role": "assistant", "content": t},
                  "logprobs": None, "finish_reason": f} for j, (t, f) in enumerate(samples)]
        return JSONResponse({**head, "choices": whole,
                             "usage": {"prompt_tokens": 0, "completion_tokens": 0,
                                       "total_tokens": 0}})
    if not stream:
        (seqs,) = await _complete(m, [request], st)
        choices: list[dict[str, Any]] = []
        for s in seqs:
            c = s.completion()
            choices.append({"index": s.index,
                            "message": {"role": "assistant", "content": _reply(c.text)},
                            "logprobs": _chat_logprobs(m, c.logprobs),
                            "finish_reason": c.finish_reason})
        return JSONResponse({**head, "choices": choices, "usage": _usage([request], [seqs])})

    chunk_head = {**head, "object": "chat.completion.chunk"}

    async def events() -> AsyncIterator[str]:
        started: set[int] = set()  # samples whose reply has begun (leading space dropped)
        final: list[Sequence_] = []
        for j in range(request.n):
            yield json.dumps({**chunk_head, "choices": [
                {"index": j, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                 "finish_reason": None}]})
        async for _i, item in _run_jobs(m, [request], st):
            if isinstance(item, tuple):
                final = item[1]
                continue
            for index, text, finish in _coalesce(item):
                if index not in started and text:
                    text = _reply(text)
                    if text:
                        started.add(index)
                if text or finish:
                    delta = {"content": text} if text else {}
                    yield json.dumps({**chunk_head, "choices": [
                        {"index": index, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]})
        if include_usage:
            yield json.dumps({**chunk_head, "choices": [], "usage": _usage([request], [final])})
        yield "[DONE]"

    return EventSourceResponse(events(), ping=15)


def _coalesce(items: list[tuple[int, str, int, str | None]]) -> list[tuple[int, str, str | None]]:
    """One streamed piece per sample per step: the text of its tokens joined, and
    its finish reason (if it ended); samples with nothing to say are left out."""
    text: dict[int, str] = {}
    finish: dict[int, str | None] = {}
    for index, piece, _token, end in items:
        text[index] = text.get(index, "") + piece
        finish[index] = end or finish.get(index)
    return [(i, text[i], finish[i]) for i in text if text[i] or finish[i]]


def _reply(text: str) -> str:
    """A base model continues "Assistant:" with a space first: drop that one space."""
    return text[1:] if text.startswith(" ") else text


# -- images ----------------------------------------------------------------------------------------
@_endpoint
async def images(st: ServeState, body: dict[str, Any]) -> Response:
    schema.check_fields(body, schema.IMAGE_FIELDS)
    m = st.model(body)
    if not isinstance(m.gen, ImageGenerator):
        raise bad_request(f"model {m.name!r} generates {m.gen.modality}, not images", "model")
    n, seed, _fmt = schema.image_request(body, st.limits)
    labels = body.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in labels)):
        raise bad_request("labels must be a list of class ids", "labels")
    try:
        result = await run_in_threadpool(
            m.gen.generate, n=n, seed=seed, labels=tuple(labels) if labels else None)
    except AigcError as exc:
        raise bad_request(str(exc)) from None
    from PIL import Image

    data = []
    for img in result.images:
        arr = img[:, :, 0] if img.shape[-1] == 1 else img
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        data.append({"b64_json": base64.b64encode(buf.getvalue()).decode("ascii")})
    return JSONResponse({"created": int(time.time()), "data": data,
                         "seed": result.metadata.get("seed")})
