"""Torch custom ops of the shared sampler: ``torch.ops.aigc.sample`` and
``torch.ops.aigc.filter_probs``.

Import this module only from code that already uses torch. The ops are
registered from Python with :func:`torch.library.custom_op`, so the compiled
core never links a particular torch:

* CPU kernel: the C++ sampler of :mod:`aigc_engine.sampling`, run on the
  tensor's memory without a copy (float32, contiguous logits; other floating
  dtypes are converted first), over ``torch.get_num_threads()`` threads.
* CUDA kernel: ``aigc_engine._cuda`` (built when a CUDA compiler was present),
  launched on the current stream with the tensors' device pointers; the row
  logic (Philox draw, exp, penalties, checks) is the same code as on CPU.
* A fake (meta) implementation, so ``torch.compile`` can trace through them.

Semantics, parameters and errors are those of :mod:`aigc_engine.sampling`.
The ops take the per-row parameters packed: a ``(rows, 7)`` int32 tensor in the
layout of :data:`aigc_engine.sampling.PARAMS_DTYPE` (the C++ and CUDA
``sampling::SamplingParams``; float fields by their bits), made by
:func:`pack_params`; keys are ``(rows,)`` int64 tensors read as uint64; ``history`` is a padded
``(rows, H)`` int64 tensor whose negative entries are padding (``H`` may be 0).
On CUDA the checks of values (NaN logits, bad parameters) happen in the kernel;
the op then synchronises once to raise ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from aigc_engine import _core
from aigc_engine.generator import SamplingParams
from aigc_engine.sampling import PARAMS_DTYPE, RowParams, cuda_status

__all__ = ["filter_probs", "pack_params", "sample"]

# The packed layout of the ops' params argument: (rows, _WORDS) int32 words,
# field `name` in column _COLUMNS[name] (float fields by their bits).
_PARAM_NAMES: tuple[str, ...] = tuple(PARAMS_DTYPE.names or ())
_WORDS = PARAMS_DTYPE.itemsize // 4
_COLUMNS = {name: PARAMS_DTYPE.fields[name][1] // 4 for name in _PARAM_NAMES}  # type: ignore[index]

# Error codes written by the CUDA kernel (csrc/cuda/sampling_kernels.cu).
_CUDA_ERRORS = {
    1: "temperature must be finite and >= 0 (0 = greedy)",
    2: "top_p must be > 0 (>= 1 disables it)",
    3: "min_p must be <= 1 (<= 0 disables it)",
    4: "repetition_penalty must be finite and > 0 (1 disables it)",
    5: "presence_penalty must be finite",
    6: "frequency_penalty must be finite",
    10: "NaN logit",
    11: "+inf logit (logits must be finite or -inf)",
    12: "the row has no finite logit",
    13: "history token id out of range",
}


def _check(logits: Tensor, params: Tensor, keys: Sequence[Tensor], history: Tensor) -> None:
    if logits.dim() != 2 or logits.shape[1] == 0:
        raise ValueError(
            f"logits must be 2-D (rows, vocab) with vocab >= 1, got {tuple(logits.shape)}"
        )
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be a floating tensor, got {logits.dtype}")
    rows = logits.shape[0]
    if params.dtype != torch.int32 or params.shape != (rows, _WORDS):
        raise ValueError(
            f"params must be an int32 tensor of shape ({rows}, {_WORDS}) in the packed layout "
            f"(see pack_params), got {params.dtype} of shape {tuple(params.shape)}"
        )
    if params.device != logits.device:
        raise ValueError(f"params is on {params.device} but logits are on {logits.device}")
    for name, t in zip(("seed", "stream", "step"), keys, strict=True):
        if t.shape != (rows,):
            raise ValueError(f"{name} must have shape ({rows},), got {tuple(t.shape)}")
        if t.device != logits.device:
            raise ValueError(f"{name} is on {t.device} but logits are on {logits.device}")
    if history.dim() != 2 or history.shape[0] != rows:
        raise ValueError(f"history must have shape ({rows}, H), got {tuple(history.shape)}")
    if history.device != logits.device:
        raise ValueError(f"history is on {history.device} but logits are on {logits.device}")


def _pack_tensors(values: Sequence[Tensor], device: torch.device) -> Tensor:
    """Per-row tensors (in PARAMS_DTYPE's field order) as (rows, 7) int32 words of
    the packed layout: the int field as is, the float fields by their bits."""
    rows = values[0].shape[0]
    packed = torch.empty((rows, _WORDS), dtype=torch.int32, device=device)
    floats = packed.view(torch.float32)
    for name, t in zip(_PARAM_NAMES, values, strict=True):
        col = _COLUMNS[name]
        if name == "top_k":
            packed[:, col] = t.detach().clamp(-(2**31), 2**31 - 1).to(torch.int32)
        else:
            floats[:, col] = t.detach().float()
    return packed


_CpuArgs = tuple[np.ndarray, np.ndarray, "np.ndarray | None", "np.ndarray | None"]


def _cpu_args(logits: Tensor, params: Tensor, history: Tensor) -> _CpuArgs:
    """(logits, packed params, history, history_offsets) for the core's batch calls."""
    x = logits.detach()
    if x.dtype != torch.float32:
        x = x.float()
    x = x.contiguous()
    tokens = offsets = None
    rows, h = history.shape
    if h > 0:
        vocab = logits.shape[1]
        hist = history.detach().clamp(min=-1)
        if bool((hist >= vocab).any()):
            bad = int(hist[hist >= vocab][0])
            raise ValueError(f"history token id {bad} is out of range for a vocabulary of {vocab}")
        tokens = hist.to(torch.int32).contiguous().numpy().reshape(-1)
        offsets = np.arange(rows + 1, dtype=np.int64) * h
    packed = params.detach().contiguous().numpy().view(PARAMS_DTYPE).reshape(rows)
    return x.numpy(), packed, tokens, offsets


def _u64(t: Tensor) -> np.ndarray:
    return t.detach().to(torch.int64).contiguous().numpy().view(np.uint64)


def _cuda_module() -> Any:
    ok, reason = cuda_status()
    if not ok:
        raise RuntimeError(f"aigc CUDA kernels are not usable: {reason}")
    from aigc_engine import _cuda  # type: ignore[attr-defined]

    return _cuda


def _cuda_launch(
    logits: Tensor,
    params: Tensor,
    keys: Sequence[Tensor] | None,
    history: Tensor,
    probs_out: Tensor | None,
    out: Tensor | None,
) -> None:
    cuda = _cuda_module()
    x = logits.detach()
    if x.dtype != torch.float32:
        x = x.float()
    x = x.contiguous()
    rows, vocab = x.shape
    packed = params.detach().contiguous()
    hist = history.detach().to(torch.int64).contiguous()
    status = torch.zeros(rows, dtype=torch.int32, device=x.device)
    workspace = torch.empty(
        int(cuda.workspace_floats(rows, vocab)), dtype=torch.float32, device=x.device
    )
    if keys is not None:
        seed, stream, step = (q.detach().to(torch.int64).contiguous() for q in keys)
    else:
        seed = stream = step = torch.zeros(rows, dtype=torch.int64, device=x.device)
    with torch.cuda.device(x.device):
        cuda.launch(
            logits=x.data_ptr(),
            rows=rows,
            vocab=vocab,
            params=packed.data_ptr(),
            seed=seed.data_ptr(),
            stream=stream.data_ptr(),
            step=step.data_ptr(),
            history=hist.data_ptr(),
            history_len=hist.shape[1],
            workspace=workspace.data_ptr(),
            status=status.data_ptr(),
            out=out.data_ptr() if out is not None else 0,
            probs=probs_out.data_ptr() if probs_out is not None else 0,
            cuda_stream=torch.cuda.current_stream(x.device).cuda_stream,
            device=x.device.index if x.device.index is not None else torch.cuda.current_device(),
        )
    bad = torch.nonzero(status).flatten()
    if bad.numel():  # one synchronisation: never hand out a garbage token
        row = int(bad[0])
        code = int(status[row])
        raise ValueError(f"row {row}: {_CUDA_ERRORS.get(code, f'error code {code}')}")


@torch.library.custom_op("aigc::sample", mutates_args=(), device_types="cpu")
def _sample_op(
    logits: Tensor, params: Tensor, seed: Tensor, stream: Tensor, step: Tensor, history: Tensor
) -> Tensor:
    _check(logits, params, (seed, stream, step), history)
    x, packed, tokens, offsets = _cpu_args(logits, params, history)
    out = _core.sample_batch(x, packed, _u64(seed), _u64(stream), _u64(step), tokens, offsets,
                             torch.get_num_threads())
    return torch.from_numpy(out).to(torch.int64)


@_sample_op.register_kernel("cuda")
def _sample_cuda(
    logits: Tensor, params: Tensor, seed: Tensor, stream: Tensor, step: Tensor, history: Tensor
) -> Tensor:
    _check(logits, params, (seed, stream, step), history)
    out = torch.empty(logits.shape[0], dtype=torch.int64, device=logits.device)
    _cuda_launch(logits, params, (seed, stream, step), history, None, out)
    return out


@_sample_op.register_fake
def _sample_fake(logits: Tensor, *args: Tensor) -> Tensor:
    return logits.new_empty((logits.shape[0],), dtype=torch.int64)


@torch.library.custom_op("aigc::filter_probs", mutates_args=(), device_types="cpu")
def _filter_probs_op(logits: Tensor, params: Tensor, history: Tensor) -> Tensor:
    zeros = torch.zeros(logits.shape[0], dtype=torch.int64) if logits.dim() else logits
    _check(logits, params, (zeros, zeros, zeros), history)
    probs, _ = _core.filter_batch(*_cpu_args(logits, params, history), torch.get_num_threads(),
                                  True, False)
    return torch.from_numpy(probs)


@_filter_probs_op.register_kernel("cuda")
def _filter_probs_cuda(logits: Tensor, params: Tensor, history: Tensor) -> Tensor:
    zeros = torch.zeros(logits.shape[0], dtype=torch.int64, device=logits.device)
    _check(logits, params, (zeros, zeros, zeros), history)
    probs = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    _cuda_launch(logits, params, None, history, probs, None)
    return probs


@_filter_probs_op.register_fake
def _filter_probs_fake(logits: Tensor, *args: Tensor) -> Tensor:
    return logits.new_empty(logits.shape, dtype=torch.float32)


def _row_tensor(
    value: float | int | Tensor, rows: int, dtype: torch.dtype, device: torch.device, name: str
) -> Tensor:
    if isinstance(value, Tensor):
        if value.dtype == torch.bool or (
                not dtype.is_floating_point and value.dtype.is_floating_point):
            raise ValueError(f"{name} must be an integer tensor, got {value.dtype}")
        t = value.to(device=device, dtype=dtype)
        if t.dim() == 0:
            t = t.expand(rows)
        if t.shape != (rows,):
            raise ValueError(
                f"{name} must be a scalar or have shape ({rows},), got {tuple(t.shape)}"
            )
        return t.contiguous()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number or a tensor, got {value!r}")
    if not dtype.is_floating_point:
        if not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        lo, hi = _INT_RANGES[name]
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
        if name in _KEYS and value > 2**63 - 1:
            value -= 2**64  # read back as uint64 by the kernels
    return torch.full((rows,), value, dtype=dtype, device=device)


_KEYS = ("seed", "stream", "step")
_INT_RANGES = {"top_k": (-(2**31), 2**31 - 1), **{k: (0, 2**64 - 1) for k in _KEYS}}


def _history_tensor(history: Any, rows: int, squeeze: bool, dev: torch.device) -> Tensor:
    """A padded (rows, H) int64 tensor from a tensor or from one id sequence per row."""
    if history is None:
        return torch.empty((rows, 0), dtype=torch.int64, device=dev)
    if not isinstance(history, Tensor):
        per_row = [history] if squeeze else list(history)
        if len(per_row) != rows:
            raise ValueError(f"got {len(per_row)} histories for {rows} rows")
        width = max((len(h) for h in per_row), default=0)
        padded = torch.full((rows, width), -1, dtype=torch.int64)
        for r, h in enumerate(per_row):
            if len(h):
                padded[r, :len(h)] = torch.as_tensor(list(h), dtype=torch.int64)
        history = padded
    elif history.dtype.is_floating_point or history.dtype == torch.bool:
        raise ValueError(f"history must hold integer token ids, got {history.dtype}")
    hist: Tensor = history.to(device=dev, dtype=torch.int64)
    if squeeze and hist.dim() == 1:
        hist = hist.unsqueeze(0)
    return hist


def _packed_params(
    params: Any, values: Mapping[str, float | int | Tensor | None], rows: int, dev: torch.device
) -> Tensor:
    """The ops' params tensor from SamplingParams or per-field values (scalars or
    per-row tensors; missing fields take their defaults)."""
    flat = {k: v for k, v in values.items() if v is not None}
    if params is not None:
        if flat:
            raise ValueError(f"give sampling options either as params or as keywords, not both "
                             f"(got params and {', '.join(sorted(flat))})")
        plist = [params] * rows if isinstance(params, SamplingParams) else list(params)
        if len(plist) != rows:
            raise ValueError(f"got {len(plist)} SamplingParams for {rows} rows")
        for i, p in enumerate(plist):
            if not isinstance(p, SamplingParams):
                raise ValueError(f"params[{i}] must be a SamplingParams, got {type(p).__name__}")
        words = RowParams(plist).packed.view(np.int32).reshape(rows, _WORDS)
        return torch.from_numpy(words).to(dev)
    unknown = sorted(set(flat) - set(_PARAM_NAMES))
    if unknown:
        raise ValueError(f"unknown sampling option(s) {unknown}; valid: {list(_PARAM_NAMES)}")
    defaults = dataclasses.asdict(_DEFAULT)
    per_row = [
        _row_tensor(flat.get(name, defaults[name]), rows,
                    torch.int32 if name == "top_k" else torch.float32, dev, name)
        for name in _PARAM_NAMES
    ]
    return _pack_tensors(per_row, dev)


def pack_params(
    rows: int,
    params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    device: torch.device | str | None = None,
    **options: float | int | Tensor,
) -> Tensor:
    """The ``params`` argument of ``torch.ops.aigc.sample`` / ``filter_probs``:
    a ``(rows, 7)`` int32 tensor in the packed layout of
    :data:`aigc_engine.sampling.PARAMS_DTYPE` (float fields by their bits), from
    one :class:`SamplingParams` for every row, one per row, or per-field
    keywords (scalars or ``(rows,)`` tensors; the others take their defaults)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _packed_params(params, options, rows, dev)


def _prepare(
    logits: Tensor, params: Any, history: Any, values: dict[str, float | int | Tensor | None]
) -> tuple[Tensor, Tensor, Tensor, bool]:
    if not isinstance(logits, Tensor):
        raise ValueError(f"logits must be a torch tensor, got {type(logits).__name__}")
    if logits.dim() not in (1, 2):
        raise ValueError(
            f"logits must be 1-D (vocab,) or 2-D (rows, vocab), got shape {tuple(logits.shape)}")
    squeeze = logits.dim() == 1
    x = logits.unsqueeze(0) if squeeze else logits
    rows, dev = x.shape[0], x.device
    packed = _packed_params(params, values, rows, dev)
    return x, packed, _history_tensor(history, rows, squeeze, dev), squeeze


_DEFAULT = SamplingParams()


def sample(
    logits: Tensor,
    params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    seed: int | Tensor,
    stream: int | Tensor = 0,
    step: int | Tensor = 0,
    history: Tensor | Sequence[Sequence[int]] | None = None,
    temperature: float | Tensor | None = None,
    top_k: int | Tensor | None = None,
    top_p: float | Tensor | None = None,
    min_p: float | Tensor | None = None,
    repetition_penalty: float | Tensor | None = None,
    presence_penalty: float | Tensor | None = None,
    frequency_penalty: float | Tensor | None = None,
) -> Tensor:
    """Draws one token per row of ``logits`` (``(V,)`` or ``(rows, V)``) with the op
    ``torch.ops.aigc.sample``: the torch face of :func:`aigc_engine.sampling.sample`.

    ``params`` and ``history`` take the same forms as the numpy face (one
    :class:`SamplingParams` for every row or one per row; one id sequence per
    row, or a padded ``(rows, H)`` tensor with negative padding). Per-row
    parameter tensors (already on the device) may be given as keywords
    instead of ``params``. Keys (``seed``, ``stream``, ``step``) are ints in
    ``[0, 2**64)`` or int64 tensors read as uint64. Returns int64 token ids,
    as the numpy face does: shape ``()`` for 1-D logits, ``(rows,)`` otherwise.
    """
    values = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
              "repetition_penalty": repetition_penalty, "presence_penalty": presence_penalty,
              "frequency_penalty": frequency_penalty}
    x, prm, hist, squeeze = _prepare(logits, params, history, values)
    rows, dev = x.shape[0], x.device
    keys = [
        _row_tensor(v, rows, torch.int64, dev, n)
        for n, v in (("seed", seed), ("stream", stream), ("step", step))
    ]
    out: Tensor = torch.ops.aigc.sample(x, prm, *keys, hist)
    return out[0] if squeeze else out


def filter_probs(
    logits: Tensor,
    params: SamplingParams | Sequence[SamplingParams] | None = None,
    *,
    history: Tensor | Sequence[Sequence[int]] | None = None,
    temperature: float | Tensor | None = None,
    top_k: int | Tensor | None = None,
    top_p: float | Tensor | None = None,
    min_p: float | Tensor | None = None,
    repetition_penalty: float | Tensor | None = None,
    presence_penalty: float | Tensor | None = None,
    frequency_penalty: float | Tensor | None = None,
) -> Tensor:
    """The distribution :func:`sample` draws from (float32, shaped like ``logits``), via
    ``torch.ops.aigc.filter_probs``; arguments as :func:`sample`."""
    values = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p,
              "repetition_penalty": repetition_penalty, "presence_penalty": presence_penalty,
              "frequency_penalty": frequency_penalty}
    x, prm, hist, squeeze = _prepare(logits, params, history, values)
    out: Tensor = torch.ops.aigc.filter_probs(x, prm, hist)
    return out[0] if squeeze else out
