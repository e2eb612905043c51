"""The shared token sampler: the typed numpy face of the C++ core.

Every text generator turns scores into tokens through this module (or its torch
twin, :mod:`aigc_engine.ops`), so temperature, top-k, top-p, min-p and the
penalties mean the same thing everywhere. This module never imports torch.

Semantics of one row of ``V`` logits (natural-log scores; ``-inf`` = impossible):

1. **Penalties** over the row's token history (ids in ``[0, V)``; negative ids
   are padding and ignored): for each *distinct* token ``t`` seen ``c`` times,
   the repetition penalty ``r`` divides a positive logit and multiplies a
   non-positive one (Hugging Face / vLLM), then ``c * frequency_penalty +
   presence_penalty`` is subtracted (OpenAI's definitions). A penalised logit
   that overflows saturates at the largest float32.
2. **Temperature**: weights ``w = exp((x - max) / T)``. ``T == 0`` is greedy:
   the first maximum of the penalised row, whatever the other filters say.
3. **Top-k** (``0 < top_k < V``): keeps the tokens whose logit is ``>=`` the
   k-th largest (counted with multiplicity), so tokens tied with the k-th are
   all kept.
4. **Top-p** (``top_p < 1``), on the top-k-renormalised distribution: keeps
   the smallest set *by value* whose mass reaches ``top_p``: the largest
   weight ``t`` with ``sum(w[w >= t]) >= top_p * sum(w)``; tokens tied at the
   threshold are all kept.
5. **Min-p** (``min_p > 0``): keeps tokens with ``p >= min_p * max(p)``.
6. **One draw** from the renormalised kept weights, by inverse CDF in token id
   order with one uniform number from Philox4x32-10 keyed by ``(seed, stream,
   step)``: the same key gives the same token whatever the thread count, the
   batch size or the row's position in the batch. (Top-p alone with
   ``top_p >= 0.5`` is drawn by rejection rounds with the same distribution,
   each round's number from the same key; see ``docs/sampling.md``.)

Off switches: ``top_k <= 0`` or ``>= V``, ``top_p >= 1``, ``min_p <= 0``,
``repetition_penalty == 1``, ``presence_penalty == frequency_penalty == 0``.
Errors (``ValueError``, naming the row and the value): NaN or ``+inf`` logits, a
row without a finite logit, ``temperature < 0`` or not finite, ``top_p <= 0``,
``min_p > 1``, ``repetition_penalty <= 0``, non-finite penalties, history ids
``>= V``.

Arithmetic is float32 for the weights (a shared polynomial ``exp``, exact 1 at
the maximum, 0 below about ``exp(-87.7)`` relative to the maximum, so such
tokens can be kept but are never drawn) and float64 for the sums. See
``docs/sampling.md`` for the comparison with HF, vLLM and llama.cpp.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from aigc_engine import _core
from aigc_engine.errors import ConfigError
from aigc_engine.generator import SamplingParams

__all__ = [
    "RowParams",
    "SamplingParams",
    "apply_penalties",
    "cuda_status",
    "draw_uniform",
    "filter_probs",
    "kept_mask",
    "penalize_counts",
    "sample",
    "sample_rows",
]

_INT32_MAX = 2**31 - 1
_UINT64_MAX = 2**64 - 1


ParamsArg: TypeAlias = "SamplingParams | Sequence[SamplingParams] | None"
KeyArg: TypeAlias = "int | Sequence[int] | npt.ArrayLike"
HistoryArg: TypeAlias = "Sequence[int] | Sequence[Sequence[int]] | npt.ArrayLike | None"


def _as_rows(logits: npt.ArrayLike) -> tuple[np.ndarray, bool]:
    if (
        isinstance(logits, np.ndarray)
        and logits.dtype == np.float32
        and logits.ndim == 2
        and logits.flags.c_contiguous
        and logits.shape[1] > 0
    ):
        return logits, False
    arr = np.asarray(logits)
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"logits must be a numeric array, got dtype {arr.dtype}")
    single = arr.ndim == 1
    if arr.ndim not in (1, 2):
        raise ConfigError(
            f"logits must be 1-D (vocab,) or 2-D (rows, vocab), got shape {arr.shape}"
        )
    rows = np.ascontiguousarray(arr.reshape(1, -1) if single else arr, dtype=np.float32)
    if rows.shape[1] == 0:
        raise ConfigError(f"logits rows must hold at least one score, got shape {arr.shape}")
    return rows, single


_FIELDS = (
    ("temperature", np.float32),
    ("top_k", np.int32),
    ("top_p", np.float32),
    ("min_p", np.float32),
    ("repetition_penalty", np.float32),
    ("presence_penalty", np.float32),
    ("frequency_penalty", np.float32),
)
_DEFAULT = SamplingParams()


def _filled(rows: int, value: float | int, dtype: Any) -> np.ndarray:
    a = np.empty(rows, dtype=dtype)
    a.fill(value)
    return a


@functools.lru_cache(maxsize=128)
def _uniform_param_arrays(params: SamplingParams, rows: int) -> dict[str, np.ndarray]:
    out = {}
    for name, dt in _FIELDS:
        a = _filled(rows, getattr(params, name), dt)
        a.flags.writeable = False
        out[name] = a
    return out


def _param_arrays(params: ParamsArg, rows: int) -> dict[str, np.ndarray]:
    if params is None or isinstance(params, SamplingParams):
        return _uniform_param_arrays(_DEFAULT if params is None else params, rows)
    plist = list(params)
    if len(plist) != rows:
        raise ConfigError(f"got {len(plist)} SamplingParams for {rows} rows")
    for i, p in enumerate(plist):
        if not isinstance(p, SamplingParams):
            raise ConfigError(f"params[{i}] must be a SamplingParams, got {type(p).__name__}")
    return {name: np.array([getattr(p, name) for p in plist], dtype=dt) for name, dt in _FIELDS}


def _history_csr(
    history: HistoryArg, rows: int, single: bool, vocab: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if history is None:
        return None, None
    if single:
        per_row: list[Any] = [history]
    elif isinstance(history, np.ndarray) and history.ndim == 2:
        per_row = list(history)
    else:
        per_row = list(history)  # type: ignore[arg-type]
    if len(per_row) != rows:
        raise ConfigError(f"got {len(per_row)} histories for {rows} rows")
    parts = []
    for r, h in enumerate(per_row):
        a = np.asarray(h if h is not None else [])
        if a.size and a.dtype.kind not in "iu":
            raise ConfigError(
                f"history of row {r} must hold integer token ids, got dtype {a.dtype}")
        a = a.astype(np.int64, copy=False).reshape(-1)
        if a.size and int(a.max()) >= vocab:
            bad = int(a[a >= vocab][0])
            raise ConfigError(
                f"history of row {r} holds token id {bad}, out of range for a vocabulary of {vocab}"
            )
        parts.append(a)
    offsets = np.zeros(rows + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in parts])
    tokens = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    tokens = np.maximum(tokens, -1).astype(np.int32)  # negative ids are padding
    return tokens, offsets


def _keys(value: KeyArg, rows: int, name: str) -> np.ndarray:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _UINT64_MAX:
        return _filled(rows, value, np.uint64)
    if isinstance(value, int) and not isinstance(value, bool):
        raise ConfigError(f"{name} must be in [0, 2**64), got {value}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ConfigError(f"{name} must be an int in [0, 2**64) or an array of them, "
                          f"got {value!r}")
    if arr.ndim == 0:
        arr = np.full(rows, arr)
    if arr.shape != (rows,):
        raise ConfigError(f"{name} must be an int or have shape ({rows},), got shape {arr.shape}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > _UINT64_MAX):
        raise ConfigError(f"{name} values must be in [0, 2**64), got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint64)


def _threads(threads: int) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 0:
        raise ConfigError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}")
    return int(threads)


def sample(
    logits: npt.ArrayLike,
    params: ParamsArg = None,
    *,
    seed: KeyArg,
    stream: KeyArg = 0,
    step: KeyArg = 0,
    history: HistoryArg = None,
    threads: int = 0,
) -> Any:
    """Draws one token per row.

    Args:
        logits: ``(V,)`` or ``(rows, V)`` scores (float32 rows are used without
            a copy; other dtypes are converted).
        params: one :class:`SamplingParams` for every row, a sequence with one
            per row, or ``None`` for the defaults (plain sampling at T = 1).
        seed, stream, step: the key of each row's draw, ints or arrays of
            ``rows`` ints in ``[0, 2**64)``. A draw depends on its key only.
        history: earlier token ids for the penalties: a sequence of ids for
            1-D logits, one sequence per row (or a padded 2-D array, negative
            ids = padding) for 2-D logits.
        threads: worker threads over rows (0 = all cores); no effect on results.

    Returns:
        An ``int`` for 1-D logits, else an ``int64`` array of shape ``(rows,)``
        (the dtype :func:`aigc_engine.ops.sample` returns too).

    Raises:
        ValueError: invalid parameters (``ConfigError``) or rows (NaN, ``+inf``,
            no finite logit), with the row and the value.
    """
    rows, single = _as_rows(logits)
    b, v = rows.shape
    p = _param_arrays(params, b)
    tokens, offsets = _history_csr(history, b, single, v)
    out = _core.sample_batch(
        rows,
        seeds=_keys(seed, b, "seed"),
        streams=_keys(stream, b, "stream"),
        steps=_keys(step, b, "step"),
        history=tokens,
        history_offsets=offsets,
        threads=_threads(threads),
        **p,
    )
    return int(out[0]) if single else out.astype(np.int64)


class RowParams:
    """The sampling parameters of a batch's rows in the core's layout, built once.

    For loops that sample the same rows many times (the engine's decoding
    loop): :func:`sample_rows` then skips the per-call conversion that
    :func:`sample` does.
    """

    def __init__(self, params: Sequence[SamplingParams]) -> None:
        self.rows = len(params)
        self.arrays = _param_arrays(list(params), self.rows) if params else {
            name: np.zeros(0, dtype=dt) for name, dt in _FIELDS}


def sample_rows(logits: np.ndarray, params: RowParams, seeds: np.ndarray, streams: np.ndarray,
                steps: np.ndarray, *, threads: int = 1) -> np.ndarray:
    """:func:`sample` without conversions: float32 C-contiguous ``(rows, V)`` logits,
    uint64 key arrays of ``rows`` values, no history (apply penalties first with
    :func:`penalize_counts`). Returns int32 ids (the core's own array)."""
    out: np.ndarray = _core.sample_batch(logits, seeds=seeds, streams=streams, steps=steps,
                                         history=None, history_offsets=None, threads=threads,
                                         **params.arrays)
    return out


def penalize_counts(row: np.ndarray, ids: np.ndarray, counts: np.ndarray,
                    params: SamplingParams) -> None:
    """Apply ``params``' penalties in place to one float32 row, for the distinct
    token ``ids`` (int32) seen ``counts[id]`` times (int32, one entry per token):
    the formula :func:`sample` applies to a history, from counts kept incrementally."""
    _core.penalize_counts(row, ids, counts, params.repetition_penalty, params.presence_penalty,
                          params.frequency_penalty)


def _filter(
    logits: npt.ArrayLike, params: ParamsArg, history: HistoryArg, threads: int, probs: bool
) -> np.ndarray:
    rows, single = _as_rows(logits)
    b, v = rows.shape
    tokens, offsets = _history_csr(history, b, single, v)
    result = _core.filter_batch(
        rows,
        history=tokens,
        history_offsets=offsets,
        threads=_threads(threads),
        want_probs=probs,
        want_kept=not probs,
        **_param_arrays(params, b),
    )
    out: np.ndarray = result[0] if probs else result[1]
    return out[0] if single else out


def filter_probs(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None, threads: int = 0
) -> np.ndarray:
    """The distribution :func:`sample` draws from: float32, same shape as ``logits``.

    Zero outside the kept set; each row sums to 1 (a one-hot row for T = 0).
    """
    return _filter(logits, params, history, threads, probs=True)


def kept_mask(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None, threads: int = 0
) -> np.ndarray:
    """The kept set after all filters: a bool array shaped like ``logits``.

    ``True`` for finite tokens that survive top-k, top-p and min-p (the first
    maximum only for T = 0). Tokens whose weight underflows to 0 may be kept
    but are never drawn.
    """
    return _filter(logits, params, history, threads, probs=False)


def apply_penalties(
    logits: npt.ArrayLike, params: ParamsArg = None, *, history: HistoryArg = None
) -> np.ndarray:
    """The logits after the penalties only (float32, shaped like ``logits``)."""
    rows, single = _as_rows(logits)
    b, v = rows.shape
    tokens, offsets = _history_csr(history, b, single, v)
    out: np.ndarray = _core.penalize_batch(
        rows, history=tokens, history_offsets=offsets, **_param_arrays(params, b)
    )
    return out[0] if single else out


def draw_uniform(seed: int, stream: int = 0, step: int = 0) -> float:
    """The uniform number in ``[0, 1)`` used by the draw keyed by ``(seed, stream, step)``
    (the first round's, for a top-p draw by rejection)."""
    return float(_core.draw_uniform(seed, stream, step))


def cuda_status() -> tuple[bool, str]:
    """Whether the CUDA sampling kernels are built and usable here, and why not.

    Returns ``(True, description)`` when ``aigc_engine._cuda`` was built and a
    CUDA device is visible, else ``(False, reason)``. Never imports torch.
    """
    try:
        from aigc_engine import _cuda  # type: ignore[attr-defined]
    except ImportError as exc:
        return False, (
            "aigc_engine._cuda is not built (no CUDA compiler when the package was built"
            f", or it failed to load: {exc})"
        )
    ok, reason = _cuda.status()
    return bool(ok), str(reason)
