"""Neural text models on nanoGPT's character split of tiny-shakespeare, against peers.

    python benchmarks/text_lm.py baby [--nanogpt DIR] [--threads 2]
    python benchmarks/text_lm.py transformer --seconds 600 [--set key=value ...]
    python benchmarks/text_lm.py lstm --seconds 600 [--set key=value ...]
    python benchmarks/text_lm.py ngram
    python benchmarks/text_lm.py mix --first TRANSFORMER_BUNDLE [--order 8]
    python benchmarks/text_lm.py speed [--tokens 256]
    python benchmarks/text_lm.py steps [--threads 2]

The split is nanoGPT's: the first 90% of the characters of
``../shared/data/tinyshakespeare.txt`` train, the last 10% validate. Validation
loss is nats per character over the whole validation text (``evaluate``;
for the n-gram, bits per byte x ln 2, the same unit on this ASCII text).

``baby``: nanoGPT's CPU recipe (4 layers, 4 heads, 128 dims, context 64,
batch 12, lr 1e-3 to 1e-4, warm-up 100, beta2 0.99, no dropout, 2,000 steps).
With ``--nanogpt DIR`` (a folder holding nanoGPT's ``model.py``) the same
shape of nanoGPT's own GPT is timed for the same steps' shape in this process,
and the ratio of training tokens per second is printed.

``mix``: the character n-gram (``--order``, trained here) mixed with a saved
model (``--save DIR`` of the ``transformer`` command keeps its bundle); the
weight is fitted on the first half of the validation text and the loss is
reported on the second half and on the whole of it.

``speed``: generation tokens/s of a 10 M-parameter GPT shape (6 layers, 6
heads, 384 dims, context 256) with random weights, batch 1, one thread, 256
new tokens, top-k 50, through the engine's loop, against Hugging Face
``transformers`` ``generate`` on a GPT-2 model of the same shape (installed for
the benchmark only), in the same run.

``steps``: milliseconds per training step of the baby shape (batch 12, context
64) through the same forward, loss, backward, clipping and AdamW as
``train_lm``, eager and under ``torch.compile``, with AdamW's default (foreach)
and fused implementations: what the ``compile`` option buys on this machine.

Every figure is printed with the machine's load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from aigc_engine import Engine


def _data() -> Path:
    """``shared/data/tinyshakespeare.txt`` next to the checkout (or a worktree's main checkout)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "data" / "tinyshakespeare.txt"
        if candidate.is_file():
            return candidate
    return Path(os.environ.get("AIGC_SHARED_DATA", "/work/shared/data")) / "tinyshakespeare.txt"


DATA = _data()
BABY = {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 64, "positions": "learned",
        "dropout": 0.0,
        "batch_size": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 100, "beta2": 0.99,
        "max_steps": 2000, "eval_every": 500, "eval_windows": 200, "log_every": 100}


def load() -> str:
    return f"load average {os.getloadavg()[0]:.2f}, {os.getloadavg()[1]:.2f}, " \
           f"{os.getloadavg()[2]:.2f} on {os.cpu_count()} cores"


def split(tmp: Path) -> tuple[Path, Path]:
    """nanoGPT's split written as two files (first 90% / last 10% of the characters)."""
    text = DATA.read_text(encoding="utf-8")
    n = int(len(text) * 0.9)
    train, valid = tmp / "train.txt", tmp / "valid.txt"
    train.write_text(text[:n], encoding="utf-8")
    valid.write_text(text[n:], encoding="utf-8")
    return train, valid


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        k, _, v = pair.partition("=")
        out[k] = v
    return out


def train_and_eval(name: str, options: dict[str, Any], tmp: Path, *, label: str,
                   save: str = "") -> Any:
    train, valid = split(tmp)
    engine = Engine()
    cls = engine.create(name).config_class
    strings = {k: str(v) for k, v in options.items()}
    gen = engine.create(name, cls.from_mapping(strings, coerce=True))
    print(f"[{label}] {load()} before training", flush=True)
    t0 = time.perf_counter()
    metrics = gen.fit(str(train), progress=_Printer())
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    scores = gen.evaluate(str(valid))
    print(f"[{label}] {load()} after training")
    print(f"[{label}] parameters {metrics['parameters']:,}, steps {metrics['steps']}, "
          f"train {metrics['train_seconds']:.1f} s (fit {wall:.1f} s wall, "
          f"{metrics['fit_cpu_seconds']:.1f} s CPU), "
          f"{metrics['tokens_seen'] / metrics['train_seconds']:,.0f} training tokens/s")
    print(f"[{label}] val loss {scores['nats_per_token']:.4f} nats/char over the whole "
          f"validation text ({scores['tokens']:,} chars; eval {time.perf_counter() - t1:.1f} s); "
          f"best step {metrics.get('best_step')}, running estimate {metrics.get('valid_loss')}")
    if save:
        print(f"[{label}] saved {gen.save(Path(save))}")
    return gen, metrics, scores


class _Printer:
    """Progress as log lines (works when piped)."""

    def task(self, description: str, total: float | None = None, unit: str = "it") -> Any:
        import contextlib

        class T:
            def advance(self, amount: float = 1) -> None:
                pass

            def set(self, **metrics: Any) -> None:
                print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in metrics.items()), flush=True)

        return contextlib.nullcontext(T())

    def log(self, message: str) -> None:
        print("  " + message, flush=True)


def nanogpt_rate(folder: Path, *, steps: int, threads: int) -> float:
    """Training tokens/s of nanoGPT's own GPT (baby shape, its AdamW set-up) in this process."""
    import numpy as np

    sys.path.insert(0, str(folder))
    from model import GPT, GPTConfig  # type: ignore[import-not-found]

    torch.set_num_threads(threads)
    text = DATA.read_text(encoding="utf-8")
    chars = sorted(set(text))
    data = np.array([chars.index(c) for c in text[:200_000]], dtype=np.int64)
    cfg = GPTConfig(block_size=64, vocab_size=len(chars), n_layer=4, n_head=4, n_embd=128,
                    dropout=0.0, bias=False)
    torch.manual_seed(0)
    model = GPT(cfg)
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.99), "cpu")
    gen = torch.Generator().manual_seed(0)

    def one() -> None:
        ix = torch.randint(len(data) - 64, (12,), generator=gen)
        x = torch.stack([torch.from_numpy(data[i:i + 64]) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 65]) for i in ix])
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        one()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    return steps * 12 * 64 / (time.perf_counter() - t0)


def ours_rate(*, steps: int, threads: int, compile: bool) -> float:
    """Training tokens/s of our baby-shaped Transformer through train_lm (same process)."""
    from aigc_engine.plugins.transformer.nets import GPT, GPTShape
    from aigc_engine.training import TrainConfig, train_lm

    text = DATA.read_text(encoding="utf-8")
    chars = sorted(set(text))
    ids = torch.tensor([chars.index(c) for c in text[:200_000]], dtype=torch.int64)
    torch.manual_seed(0)
    net = GPT(GPTShape(vocab_size=len(chars) + 1, context=64, n_layer=4, n_head=4, n_embd=128))
    cfg = TrainConfig(max_steps=steps + 5, threads=threads, eval_every=0, log_every=0,
                      compile=compile, batch_size=12)
    t0 = time.perf_counter()
    res = train_lm(net, ids, None, cfg, window=64, name="bench", fingerprint="x",
                   model_config={})
    _ = t0
    return float(res.tokens_seen / res.train_seconds)


def cmd_baby(args: argparse.Namespace) -> None:
    opts = {**BABY, "threads": args.threads, "compile": args.compile, **parse_sets(args.set)}
    with tempfile.TemporaryDirectory() as tmp:
        _, metrics, scores = train_and_eval("transformer", opts, Path(tmp), label="baby")
    ours = metrics["tokens_seen"] / metrics["train_seconds"]
    print(f"[baby] target: val loss <= 1.90 ({scores['nats_per_token']:.4f}); training tokens/s "
          f">= 1.2 x nanoGPT ({ours:,.0f} vs the issue's anchor 20,500: {ours / 20500:.2f}x)")
    if args.nanogpt:
        peer = nanogpt_rate(Path(args.nanogpt), steps=200, threads=args.threads)
        mine = ours_rate(steps=200, threads=args.threads, compile=args.compile)
        print(f"[baby] same process, 200 steps each, {args.threads} threads, {load()}: "
              f"nanoGPT {peer:,.0f} tok/s, ours {mine:,.0f} tok/s: ratio {mine / peer:.2f}")


def cmd_model(args: argparse.Namespace) -> None:
    opts: dict[str, Any] = {"threads": args.threads, **parse_sets(args.set)}
    if args.seconds:
        opts.update(max_seconds=args.seconds, clock="wall")
        opts.setdefault("max_steps", 10**9)
    with tempfile.TemporaryDirectory() as tmp:
        train_and_eval(args.command, opts, Path(tmp), label=args.command, save=args.save)


def cmd_ngram(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        train, valid = split(Path(tmp))
        gen = Engine().create("ngram", order=args.order, tokenizer="char",
                              discount_fallback=(0.5, 1.0, 1.5))
        t0 = time.perf_counter()
        gen.fit(str(train))
        fit = time.perf_counter() - t0
        s = gen.evaluate(str(valid))
        print(f"[ngram] order {args.order} char: fit {fit:.2f} s, val "
              f"{s['bits_per_byte'] * math.log(2):.4f} nats/char (bits/byte x ln 2); {load()}")


def cmd_mix(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        train, valid = split(Path(tmp))
        engine = Engine()
        ngram = engine.create("ngram", order=args.order, tokenizer="char",
                              discount_fallback=(0.5, 1.0, 1.5))
        ngram.fit(str(train))
        ngram_path = ngram.save(Path(tmp) / "ngram")
        text = valid.read_text(encoding="utf-8")
        half = len(text) // 2
        fit_file, test_file = Path(tmp) / "fit.txt", Path(tmp) / "test.txt"
        fit_file.write_text(text[:half], encoding="utf-8")
        test_file.write_text(text[half:], encoding="utf-8")
        t0 = time.perf_counter()
        mix = engine.create("mix", first=args.first, second=str(ngram_path))
        m = mix.fit(str(fit_file))
        print(f"[mix] weight of the first model {m['weight']:.3f} fitted on the first half of "
              f"the validation text in {time.perf_counter() - t0:.1f} s; {load()}")
        for name, path in (("second half", test_file), ("whole", valid)):
            s = mix.evaluate(str(path))
            ln2 = math.log(2)
            print(f"[mix] {name} of the validation text: mix {s['bits_per_byte'] * ln2:.4f}, "
                  f"first {s['first_bits_per_byte'] * ln2:.4f}, n-gram "
                  f"{s['second_bits_per_byte'] * ln2:.4f} nats/char (teacher-forced, 64 "
                  "streams)")


def cmd_speed(args: argparse.Namespace) -> None:
    from text_runtime import gpt  # the same 10 M-parameter shape

    from aigc_engine.tokenizers import CharTokenizer

    torch.set_num_threads(1)
    text = DATA.read_text(encoding="utf-8")
    tok = CharTokenizer.from_text([text])
    torch.manual_seed(0)
    gen = gpt(tok)
    prompt = "\n"
    n = args.tokens
    print(f"[speed] {gen.parameters():,} parameters, vocab {tok.vocab_size}, batch 1, 1 thread")

    def ours(seed: int) -> None:
        r = gen.generate(prompt, max_tokens=n, top_k=50, seed=seed, stop_at_eos=False)
        assert r.usage.completion_tokens == n

    from transformers import GPT2Config, GPT2LMHeadModel

    hf = GPT2LMHeadModel(GPT2Config(vocab_size=tok.vocab_size, n_positions=256, n_embd=384,
                                    n_layer=6, n_head=6)).eval()
    ids = torch.tensor([tok.encode(prompt)])

    def theirs(seed: int) -> None:
        torch.manual_seed(seed)
        with torch.no_grad():
            out = hf.generate(ids, do_sample=True, top_k=50, max_new_tokens=n, min_new_tokens=n,
                              pad_token_id=0, attention_mask=torch.ones_like(ids))
        assert out.shape[1] == ids.shape[1] + n

    rates = {}
    for name, fn in (("ours", ours), ("hf", theirs), ("ours", ours), ("hf", theirs)):
        fn(0)
        c0, w0 = time.process_time(), time.perf_counter()
        reps = 3
        for i in range(reps):
            fn(i + 1)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        rates.setdefault(name, []).append((reps * n / cpu, reps * n / wall))
        print(f"[speed] {name}: {reps * n / cpu:,.0f} tokens per CPU-second, "
              f"{reps * n / wall:,.0f} per wall second; {load()}", flush=True)
    best = {k: max(v) for k, v in rates.items()}
    print(f"[speed] ratio ours / transformers.generate: {best['ours'][0] / best['hf'][0]:.2f} "
          f"(CPU-second rates), {best['ours'][1] / best['hf'][1]:.2f} (wall); target >= 1.5")


def _baby_step(model: Any, net: torch.nn.Module, opt: torch.optim.Optimizer,
               data: torch.Tensor) -> None:
    """One training step of train_lm's kind: 12 windows of 64 tokens, loss, backward,
    clipping, AdamW."""
    import torch.nn.functional as F

    ix = torch.randint(len(data) - 65, (12,))
    rows = data[ix[:, None] + torch.arange(65)]
    logits = model(rows[:, :-1])
    F.cross_entropy(logits.reshape(-1, 66), rows[:, 1:].reshape(-1)).backward()
    torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def cmd_steps(args: argparse.Namespace) -> None:
    from aigc_engine._lm_loop import _param_groups  # train_lm's weight-decay groups
    from aigc_engine.plugins.transformer.nets import GPT, GPTShape

    torch.set_num_threads(args.threads)
    data = torch.randint(0, 65, (200_000,), generator=torch.Generator().manual_seed(0))
    for compile in (False, True):
        for fused in (False, True):
            torch.manual_seed(0)
            net = GPT(GPTShape(vocab_size=66, context=64, n_layer=4, n_head=4, n_embd=128))
            opt = torch.optim.AdamW(_param_groups(net, 0.1), lr=1e-3, betas=(0.9, 0.99),
                                    fused=fused)
            model: Any = torch.compile(net) if compile else net

            t0 = time.perf_counter()
            for _ in range(10):
                _baby_step(model, net, opt, data)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            for _ in range(150):
                _baby_step(model, net, opt, data)
            ms = (time.perf_counter() - t0) / 150 * 1e3
            print(f"[steps] {'compiled' if compile else 'eager'}, "
                  f"{'fused' if fused else 'foreach'} AdamW, {args.threads} threads: "
                  f"{ms:.1f} ms per step ({12 * 64 / ms * 1e3:,.0f} tokens/s; first 10 steps "
                  f"{first:.1f} s); {load()}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("baby")
    b.add_argument("--nanogpt", default="")
    for name in ("transformer", "lstm"):
        m = sub.add_parser(name)
        m.add_argument("--seconds", type=float, default=600.0)
        m.add_argument("--set", action="append", default=[])
        m.add_argument("--save", default="")
    b.add_argument("--set", action="append", default=[])
    b.add_argument("--compile", action="store_true")
    for s in sub.choices.values():
        s.add_argument("--threads", type=int, default=2)
    g = sub.add_parser("ngram")
    g.add_argument("--order", type=int, default=8)
    mx = sub.add_parser("mix")
    mx.add_argument("--first", required=True)
    mx.add_argument("--order", type=int, default=8)
    sp = sub.add_parser("speed")
    sp.add_argument("--tokens", type=int, default=256)
    st = sub.add_parser("steps")
    st.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    {"baby": cmd_baby, "transformer": cmd_model, "lstm": cmd_model, "ngram": cmd_ngram,
     "speed": cmd_speed, "mix": cmd_mix, "steps": cmd_steps}[args.command](args)


if __name__ == "__main__":
    main()
