"""Request bodies of the OpenAI-compatible endpoints, checked field by field.

Every problem is a 400 naming the field (``param``); unknown fields are
refused too, so a misspelt option never passes silently. The sampling fields
beyond OpenAI's (``top_k``, ``min_p``, ``repetition_penalty``, ``min_tokens``,
``stop_token_ids``, ``ignore_eos``) are those vLLM accepts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..errors import ConfigError
from ..generator import MAX_LOGPROBS, SamplingParams, TextRequest
from .errors import bad_request

#: Chat template for base models (documented in docs/serve.md): each message on
#: its own line as "Role: content", then "Assistant:" for the model to continue.
CHAT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
CHAT_STOP = "\nUser:"


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for."""

    max_tokens: int = 4096
    max_n: int = 16
    max_prompts: int = 16
    max_prompt_chars: int = 100_000
    max_images: int = 64


_COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
           "presence_penalty", "frequency_penalty", "top_k", "min_p", "repetition_penalty",
           "min_tokens", "stop_token_ids", "ignore_eos", "user", "stream_options",
           "logit_bias", "best_of", "suffix"}
COMPLETION_FIELDS = _COMMON | {"prompt", "logprobs", "echo"}
CHAT_FIELDS = _COMMON | {"messages", "logprobs", "top_logprobs", "max_completion_tokens"}
IMAGE_FIELDS = {"model", "prompt", "n", "response_format", "seed", "size", "user", "labels"}


def check_fields(body: Any, allowed: set[str]) -> dict[str, Any]:
    """The body as a dict with only known fields."""
    if not isinstance(body, dict):
        raise bad_request(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}; accepted: {', '.join(sorted(allowed))}",
                          param=unknown[0])
    return body


def _number(body: dict[str, Any], name: str, default: float, *, lo: float | None = None,
            hi: float | None = None) -> float:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise bad_request(f"{name} must be a finite number, got {v!r}", name)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise bad_request(f"{name} must be in [{lo}, {hi}], got {v!r}", name)
    return float(v)


def _int(body: dict[str, Any], name: str, default: int | None, *, lo: int, hi: int
         ) -> int | None:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise bad_request(f"{name} must be an integer, got {v!r}", name)
    if not lo <= v <= hi:
        raise bad_request(f"{name} must be in [{lo}, {hi}], got {v}", name)
    return v


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise bad_request(f"{name} must be true or false, got {v!r}", name)
    return v


def model_name(body: dict[str, Any], models: list[str]) -> str:
    """The ``model`` field: one of the served models (404 otherwise)."""
    from .errors import APIError

    name = body.get("model")
    if name is None and len(models) == 1:
        return models[0]
    if not isinstance(name, str):
        raise bad_request(f"model must be a string naming one of: {', '.join(models)}", "model")
    if name not in models:
        raise APIError(404, f"the model {name!r} does not exist; served: {', '.join(models)}",
                       param="model", code="model_not_found")
    return name


def text_request(body: dict[str, Any], prompt: str, limits: Limits, *,
                 logprobs: int | None, echo: bool, extra_stop: tuple[str, ...] = ()
                 ) -> TextRequest:
    """A TextRequest from the shared sampling fields of a completion or chat body."""
    max_tokens = _int(body, "max_completion_tokens", None, lo=1, hi=limits.max_tokens)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 16, lo=1, hi=limits.max_tokens)
    assert max_tokens is not None
    n = _int(body, "n", 1, lo=1, hi=limits.max_n)
    seed = _int(body, "seed", None, lo=-(2**63), hi=2**64 - 1)
    if seed is not None:
        seed %= 2**63  # any 64-bit seed maps to the engine's [0, 2**63)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(stop)
    else:
        raise bad_request(f"stop must be a string or a list of strings, got {stop!r}", "stop")
    if any(not s for s in stops) or len(stops) > 16:
        raise bad_request("stop holds at most 16 non-empty strings", "stop")
    ids = body.get("stop_token_ids") or []
    if not isinstance(ids, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 2**31 for i in ids):
        raise bad_request(f"stop_token_ids must be a list of token ids, got {ids!r}",
                          "stop_token_ids")
    if body.get("logit_bias"):
        raise bad_request("logit_bias is not supported", "logit_bias")
    best_of = body.get("best_of")
    if best_of not in (None, 1):
        raise bad_request("best_of is not supported (use n)", "best_of")
    if body.get("suffix") not in (None, ""):
        raise bad_request("suffix is not supported", "suffix")
    try:
        sampling = SamplingParams(
            temperature=_number(body, "temperature", 1.0, lo=0.0, hi=100.0),
            top_p=_number(body, "top_p", 1.0, lo=0.0, hi=1.0) or 1e-9,
            top_k=_int(body, "top_k", 0, lo=-1, hi=2**31 - 1) or 0,
            min_p=_number(body, "min_p", 0.0, lo=0.0, hi=1.0),
            repetition_penalty=_number(body, "repetition_penalty", 1.0, lo=1e-6, hi=100.0),
            presence_penalty=_number(body, "presence_penalty", 0.0, lo=-2.0, hi=2.0),
            frequency_penalty=_number(body, "frequency_penalty", 0.0, lo=-2.0, hi=2.0))
        min_tokens = _int(body, "min_tokens", 0, lo=0, hi=max_tokens)
        return TextRequest(prompt=prompt, max_tokens=max_tokens, sampling=sampling, seed=seed,
                           n=n or 1, stop_at_eos=not _bool(body, "ignore_eos", False),
                           stop=stops + extra_stop, stop_token_ids=tuple(ids),
                           min_tokens=min_tokens or 0, logprobs=logprobs, echo=echo)
    except ConfigError as exc:
        raise bad_request(str(exc)) from None


def completion_prompts(body: dict[str, Any], limits: Limits) -> list[str]:
    """``prompt``: a string or a list of strings (token-id prompts are refused)."""
    p = body.get("prompt", "")
    prompts = [p] if isinstance(p, str) else p
    if not isinstance(prompts, list) or not prompts or not all(isinstance(x, str)
                                                               for x in prompts):
        raise bad_request("prompt must be a string or a non-empty list of strings", "prompt")
    if len(prompts) > limits.max_prompts:
        raise bad_request(f"at most {limits.max_prompts} prompts per request", "prompt")
    for x in prompts:
        _check_text(x, "prompt", limits)
    return prompts


def _check_text(text: str, param: str, limits: Limits) -> None:
    if len(text) > limits.max_prompt_chars:
        raise bad_request(f"{param} is longer than {limits.max_prompt_chars} characters", param)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{param} holds a lone surrogate (not valid Unicode)", param) from None


def completion_logprobs(body: dict[str, Any]) -> int | None:
    """``logprobs`` of a completion: null or 0-20 alternatives."""
    return _int(body, "logprobs", None, lo=0, hi=MAX_LOGPROBS)


def chat_prompt(body: dict[str, Any], limits: Limits) -> str:
    """The documented template: "Role: content" lines, then "Assistant:"."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list of {role, content} objects",
                          "messages")
    lines = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content", "name"}:
            raise bad_request(f"messages[{i}] must be an object with role and content",
                              "messages")
        role, content = m.get("role"), m.get("content")
        if role not in CHAT_ROLES:
            raise bad_request(f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}, "
                              f"got {role!r}", "messages")
        if isinstance(content, list):  # content parts: text only
            if not all(isinstance(c, dict) and c.get("type") == "text"
                       and isinstance(c.get("text"), str) for c in content):
                raise bad_request(f"messages[{i}].content parts must be text", "messages")
            content = "".join(c["text"] for c in content)
        if not isinstance(content, str):
            raise bad_request(f"messages[{i}].content must be a string", "messages")
        lines.append(f"{CHAT_ROLES[role]}: {content}")
    prompt = "\n".join(lines) + "\nAssistant:"
    _check_text(prompt, "messages", limits)
    return prompt


def chat_logprobs(body: dict[str, Any]) -> int | None:
    """``logprobs: true`` with ``top_logprobs`` (0-20) as OpenAI's chat API has them."""
    want = _bool(body, "logprobs", False)
    top = _int(body, "top_logprobs", None, lo=0, hi=MAX_LOGPROBS)
    if top is not None and not want:
        raise bad_request("top_logprobs needs logprobs: true", "top_logprobs")
    return (top or 0) if want else None


def stream_flags(body: dict[str, Any]) -> tuple[bool, bool]:
    """(stream, include_usage)."""
    stream = _bool(body, "stream", False)
    opts = body.get("stream_options")
    if opts is None:
        return stream, False
    if not isinstance(opts, dict) or set(opts) - {"include_usage", "continuous_usage_stats"}:
        raise bad_request("stream_options must be {include_usage: bool}", "stream_options")
    return stream, _bool(opts, "include_usage", False)


def image_request(body: dict[str, Any], limits: Limits) -> tuple[int, int | None, str]:
    """(n, seed, response_format) of an image request."""
    n = _int(body, "n", 1, lo=1, hi=limits.max_images)
    seed = _int(body, "seed", None, lo=0, hi=2**63 - 1)
    fmt = body.get("response_format", "b64_json")
    if fmt != "b64_json":
        raise bad_request("response_format must be 'b64_json' (this server keeps no files)",
                          "response_format")
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise bad_request("prompt must be a string", "prompt")
    return n or 1, seed, fmt
