"""Benchmark: the torch-free text runtime (onnxruntime) against our torch generator and
Hugging Face ``transformers.generate`` (installed for this benchmark only), one run.

A 10 M-parameter GPT shape (6 layers, 6 heads, 384 dims, context 256) with random
weights, vocabularies of 65 (characters) and 8192 (BPE trained on tiny
shakespeare), 256 new tokens, top-k 50, 1 thread everywhere:

- runtime fp32 at batch 1 against HF generate (target >= 2.5x) and against our
  torch generator (>= 1.3x); int8 against fp32 (>= 1.5x); batch 8 aggregate
  against batch 1 (>= 4x); prefill of a 256-token prompt (ms);
- LSTM 2x512: runtime against our torch generator (>= 2x);
- int8's quality cost in bits per byte (a trained model: --train-steps).

    python benchmarks/text_runtime.py [--rounds 3] [--tokens 256] [--train-steps 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def timed(fn: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gpt(vocab_tok: Any) -> Any:
    """The 10 M-parameter GPT shape of the speed benchmarks (6x384, context 256, learned
    positions as GPT-2's), random weights, on ``vocab_tok``."""
    from aigc_engine.plugins.transformer.generator import TransformerGenerator

    gen = TransformerGenerator(n_layer=6, n_head=6, n_embd=384, context=256, threads=1,
                               positions="learned")
    gen.tok = vocab_tok
    gen.net = gen.build(vocab_tok.vocab_size).eval()
    return gen


def hf_generate(vocab: int, tokens: int, rounds: int) -> float | None:
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    cfg = GPT2Config(vocab_size=vocab, n_positions=256, n_embd=384, n_layer=6, n_head=6)
    model = GPT2LMHeadModel(cfg).eval()
    ids = torch.zeros(1, 1, dtype=torch.long)

    def run() -> None:
        with torch.no_grad():
            model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=True,
                           top_k=50, pad_token_id=0)

    run()
    return tokens / timed(run, rounds)


def feed_paths(model: Path, batch: int, tokens: int, rounds: int) -> dict[str, float]:
    """ms per decode step over ``tokens`` steps from an empty cache, four ways of
    handing the cache back to onnxruntime: ``present`` fed back as the next ``past``
    as numpy arrays (outputs come back over onnxruntime's buffers, no copy), as
    OrtValues (``run_with_ort_values``) or through an IOBinding whose outputs stay in
    onnxruntime (each step's present a new, longer copy of the cache); and "in place",
    the runtime's way: one IOBinding binding a preallocated buffer as both past and
    present, GroupQueryAttention writing each step's keys/values into it."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    past_names = [i.name for i in sess.get_inputs()][3:]
    outs = [o.name for o in sess.get_outputs()]
    heads, dim = sess.get_inputs()[3].shape[1], sess.get_inputs()[3].shape[3]

    def small(t: int) -> dict[str, np.ndarray]:
        return {"input_ids": np.ones((batch, 1), np.int64),
                "attention_mask": np.ones((batch, t + 1), np.int64),
                "position_ids": np.full((batch, 1), t, np.int64)}

    empty = np.zeros((batch, heads, 0, dim), np.float32)

    def with_numpy() -> None:
        past = [empty] * len(past_names)
        for t in range(tokens):
            res = sess.run(outs, {**small(t), **dict(zip(past_names, past, strict=True))})
            past = res[1:]

    def with_ortvalues() -> None:
        past = [ort.OrtValue.ortvalue_from_numpy(empty)] * len(past_names)
        for t in range(tokens):
            feeds = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in small(t).items()}
            res = sess.run_with_ort_values(outs, {**feeds, **dict(zip(past_names, past,
                                                                      strict=True))})
            past = list(res)[1:]

    def with_iobinding() -> None:
        io = sess.io_binding()
        for name in past_names:
            io.bind_cpu_input(name, empty)
        for t in range(tokens):
            for k, v in small(t).items():
                io.bind_cpu_input(k, v)
            for name in outs:
                io.bind_output(name, "cpu")
            sess.run_with_iobinding(io)
            res = io.get_outputs()
            for name, value in zip(past_names, res[1:], strict=True):
                io.bind_ortvalue_input(name, value)

    def in_place() -> None:
        io = sess.io_binding()
        logits = np.empty((batch, 1, sess.get_outputs()[0].shape[-1]), np.float32)
        io.bind_output(outs[0], "cpu", 0, np.float32, logits.shape, logits.ctypes.data)
        caches = [np.zeros((batch, heads, tokens + 1, dim), np.float32) for _ in past_names]
        for past, present, cache in zip(past_names, outs[1:], caches, strict=True):
            io.bind_input(past, "cpu", 0, np.float32, cache.shape, cache.ctypes.data)
            io.bind_output(present, "cpu", 0, np.float32, cache.shape, cache.ctypes.data)
        for t in range(tokens):
            for k, v in small(t).items():
                io.bind_cpu_input(k, v)
            sess.run_with_iobinding(io)

    ways = {"numpy": with_numpy, "ortvalue": with_ortvalues, "iobinding": with_iobinding,
            "in place": in_place}
    out = {name: [] for name in ways}
    for _ in range(rounds):  # alternated, so load changes hit all three alike
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn()
            out[name].append((time.perf_counter() - t0) / tokens * 1e3)
    return {name: statistics.median(v) for name, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--train-steps", type=int, default=2000,
                    help="steps of the 4x128 character model int8's quality is measured on "
                         "(nanoGPT's baby recipe: 2,000)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from aigc_engine import Engine
    from aigc_engine.tokenizers import BPETokenizer, CharTokenizer

    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores; torch and onnxruntime "
          f"1 thread")
    text = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8")
    toks = {"65": CharTokenizer.from_text([text]),
            "8192": BPETokenizer.train([text], vocab_size=8192)}
    engine = Engine()
    n = args.tokens
    req = {"prompt": "", "max_tokens": n, "min_tokens": n, "top_k": 50, "seed": 1}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n{'vocab':>6} | {'HF tok/s':>9} | {'torch':>8} | {'rt fp32':>8} | {'rt int8':>8} |"
              f" {'b8 agg':>8} | fp32/HF | fp32/torch | int8/fp32 | b8/b1 | prefill256 ms")
        feeds: dict[str, dict[int, dict[str, float]]] = {}
        for name, tok in toks.items():
            gen = gpt(tok)
            fp32 = engine.load(gen.export(Path(tmp) / f"g{name}", format="onnx"))
            feeds[name] = {b: feed_paths(Path(tmp) / f"g{name}" / "model.onnx", b, n,
                                         args.rounds) for b in (1, 8)}
            int8 = engine.load(gen.export(Path(tmp) / f"q{name}", format="onnx",
                                          quantize="int8"))
            gen.generate(max_tokens=4)
            t_torch = n / timed(lambda: gen.generate(**req), args.rounds)  # noqa: B023
            t_fp32 = n / timed(lambda: fp32.generate(**req), args.rounds)  # noqa: B023
            t_int8 = n / timed(lambda: int8.generate(**req), args.rounds)  # noqa: B023
            t_b8 = 8 * n / timed(lambda: fp32.generate(**req, n=8), args.rounds)  # noqa: B023
            hf = hf_generate(tok.vocab_size, n, args.rounds)
            tm = fp32.token_model()
            prompt = [[1 + i % (tok.vocab_size - 2) for i in range(255)]]
            pre = timed(lambda: tm.prefill(prompt), args.rounds) * 1e3  # noqa: B023
            hf_s = f"{hf:9.1f}" if hf else f"{'n/a':>9}"
            ratio_hf = f"{t_fp32 / hf:7.2f}" if hf else "    n/a"
            print(f"{name:>6} | {hf_s} | {t_torch:8.1f} | {t_fp32:8.1f} | {t_int8:8.1f} | "
                  f"{t_b8:8.1f} | {ratio_hf} | {t_fp32 / t_torch:10.2f} | "
                  f"{t_int8 / t_fp32:9.2f} | {t_b8 / t_fp32:5.2f} | {pre:8.1f}", flush=True)
        print("\nthe cache between steps, ms per step over a whole decode "
              f"({n} steps): present fed back as numpy / OrtValues / IOBinding, and "
              "in place (one IOBinding, the runtime's way)")
        for name, by_batch in feeds.items():
            for b, ms in by_batch.items():
                print(f"   vocab {name:>5}, batch {b}: " + " / ".join(
                    f"{k} {v:.2f}" for k, v in ms.items()))
        # LSTM 2x512
        from aigc_engine.plugins.lstm.generator import LSTMGenerator

        lstm = LSTMGenerator(n_layer=2, n_embd=512, hidden=512, threads=1)
        lstm.tok = toks["65"]
        lstm.net = lstm.build(lstm.tok.vocab_size).eval()
        rt = engine.load(lstm.export(Path(tmp) / "lstm", format="onnx"))
        lstm.generate(max_tokens=4)
        a = n / timed(lambda: lstm.generate(**req), args.rounds)
        b = n / timed(lambda: rt.generate(**req), args.rounds)
        print(f"\nLSTM 2x512, vocab 65: torch {a:.1f} tok/s, runtime {b:.1f} tok/s: {b / a:.2f}x "
              "(target >= 2x)")
        # int8 quality on a trained model
        if args.train_steps:
            from text_lm import BABY  # nanoGPT's baby CPU recipe

            small = engine.create("transformer", **{**BABY, "max_steps": args.train_steps,
                                                    "log_every": 0, "eval_every": 0}, threads=2)
            small.fit(str(DATA / "ts_train.txt"))
            f = engine.load(small.export(Path(tmp) / "s32", format="onnx"))
            q = engine.load(small.export(Path(tmp) / "s8", format="onnx", quantize="int8"))
            test = str(DATA / "ts_test.txt")
            bf, bq = f.evaluate(test)["bits_per_byte"], q.evaluate(test)["bits_per_byte"]
            print(f"\nint8 quality (baby recipe, {args.train_steps} steps, ts_test): fp32 "
                  f"{bf:.4f} bits/byte, int8 {bq:.4f}: {100 * (bq - bf) / bf:+.2f}% "
                  "(target <= +1%)")


if __name__ == "__main__":
    main()
