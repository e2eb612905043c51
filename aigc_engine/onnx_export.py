"""ONNX export of the torch text generators, for the torch-free runtime
(:mod:`aigc_engine.runtime.text`). Public for plugin authors; imports torch.

A generator gives a wrapper module whose inputs and outputs are those of one
graph kind of the runtime (``decoder``: optimum's names with explicit past and
present keys/values; ``recurrent``: ``h0``/``c0`` in, ``hn``/``cn`` out), with
the :class:`~aigc_engine.runtime.text.OnnxTextConfig` that drives it.
:func:`export_text_model` exports it (TorchScript exporter, opset 17, dynamic
batch and lengths), checks parity before anything is written (logits within
``tolerance`` of torch on a teacher-forced batch of rows of different
lengths, padded), optionally quantizes the MatMuls to int8 (onnxruntime's
dynamic quantization), and returns the runtime generator to save.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError, ModelFormatError
from .runtime.text import OnnxTextConfig, OnnxTextGenerator
from .tokenizers import Tokenizer

__all__ = ["PARITY_TOLERANCE", "export_text_model"]

PARITY_TOLERANCE = 1e-4
QUANTIZE = ("int8",)


def _dynamic_axes(cfg: OnnxTextConfig) -> dict[str, dict[int, str]]:
    if cfg.kind == "recurrent":
        return {"input_ids": {0: "batch", 1: "length"}, "h0": {1: "batch"}, "c0": {1: "batch"},
                "logits": {0: "batch", 1: "length"}, "hn": {1: "batch"}, "cn": {1: "batch"}}
    axes: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "length"},
        "attention_mask": {0: "batch", 1: "total_length"},
        "position_ids": {0: "batch", 1: "length"},
        "logits": {0: "batch", 1: "length"}}
    for name in cfg.input_names()[3:]:
        axes[name] = {0: "batch", 2: "past_length"}
    for name in cfg.output_names()[1:]:
        axes[name] = {0: "batch", 2: "total_length"}
    return axes


def _example(cfg: OnnxTextConfig, b: int = 2, t: int = 3, p: int = 2) -> tuple[torch.Tensor, ...]:
    ids = torch.zeros(b, t, dtype=torch.int64)
    if cfg.kind == "recurrent":
        z = torch.zeros(cfg.n_layer, b, cfg.hidden)
        return ids, z, z.clone()
    past = [torch.zeros(b, cfg.n_head, p, cfg.head_dim) for _ in range(2 * cfg.n_layer)]
    mask = torch.ones(b, p + t, dtype=torch.int64)
    pos = torch.arange(p, p + t, dtype=torch.int64)[None].expand(b, t).contiguous()
    return (ids, mask, pos, *past)


def export_text_model(wrapper: torch.nn.Module, cfg: OnnxTextConfig, tokenizer: Tokenizer, *,
                      reference: Callable[[torch.Tensor], torch.Tensor],
                      quantize: str | None = None, tolerance: float = PARITY_TOLERANCE,
                      seed: int = 0) -> OnnxTextGenerator:
    """Export ``wrapper``, check it against ``reference`` (the torch model's
    ``(B, T) ids -> (B, T, V) logits``), and return the runtime generator holding it.

    Raises :class:`ModelFormatError` when the exported logits differ from torch's
    by more than ``tolerance`` (before quantization), naming the difference.
    """
    if quantize is not None and quantize not in QUANTIZE:
        raise ConfigError(f"quantize must be one of {', '.join(QUANTIZE)} or None, got "
                          f"{quantize!r}")
    wrapper = wrapper.eval()
    with tempfile.TemporaryDirectory(prefix="aigc-onnx-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's notices
        target = Path(tmp) / "model.onnx"
        with torch.no_grad():
            torch.onnx.export(wrapper, _example(cfg), str(target), dynamo=False,
                              input_names=cfg.input_names(), output_names=cfg.output_names(),
                              dynamic_axes=_dynamic_axes(cfg), opset_version=17,
                              do_constant_folding=True,
                              custom_opsets={"com.microsoft": 1} if cfg.shared_cache else None)
        data = target.read_bytes()
        gen = OnnxTextGenerator(cfg)
        gen.set_model(data, tokenizer)
        worst = parity(gen, reference, cfg, seed=seed)
        if worst > tolerance:
            raise ModelFormatError(
                f"the exported graph's logits differ from torch's by {worst:.3g} (more than "
                f"{tolerance:g}): not written")
        gen.metrics["export_max_abs_diff"] = worst
        if quantize == "int8":
            from onnxruntime.quantization import (  # type: ignore[import-untyped]
                QuantType,
                quantize_dynamic,
            )

            qpath = Path(tmp) / "model.int8.onnx"
            quantize_dynamic(str(target), str(qpath), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"])
            gen = OnnxTextGenerator(cfg.replace(quantized=True))
            gen.set_model(qpath.read_bytes(), tokenizer)
            gen.metrics["export_max_abs_diff"] = worst
            gen.metrics["int8_max_abs_diff"] = parity(gen, reference, cfg, seed=seed)
    return gen


def parity(gen: OnnxTextGenerator, reference: Callable[[torch.Tensor], torch.Tensor],
           cfg: OnnxTextConfig, *, seed: int = 0) -> float:
    """Largest |logit difference| between the runtime and torch on a teacher-forced
    batch of rows of several lengths (right-padded for a decoder)."""
    rng = np.random.default_rng(seed)
    limit = cfg.context or 48
    lengths = sorted({1, 2, max(1, limit // 3), max(1, limit - 1)})
    rows = [[cfg.start_id, *rng.integers(0, cfg.vocab_size, n - 1).tolist()] for n in lengths]
    worst = 0.0
    for r in rows:  # torch on each row alone
        with torch.no_grad():
            want = reference(torch.tensor([r], dtype=torch.int64))[0].float().numpy()
        got = gen.teacher_forced([r])[0][:len(r)]
        worst = max(worst, float(np.abs(got - want).max()))
    batch = gen.teacher_forced(rows)  # the same rows as one padded batch
    for i, r in enumerate(rows):
        with torch.no_grad():
            want = reference(torch.tensor([r], dtype=torch.int64))[0].float().numpy()
        worst = max(worst, float(np.abs(batch[i][:len(r)] - want).max()))
    return worst
