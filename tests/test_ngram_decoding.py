"""The n-gram generator on the engine's loop: C++ chunks equal the per-step path,
chunking is exact, logprobs, min_tokens, bits per byte, and Ctrl-C from the CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigc_engine import TextRequest
from aigc_engine.decoding import TokenModel, decode
from aigc_engine.plugins.ngram.generator import NgramGenerator
from aigc_engine.sampling import filter_probs
from aigc_engine.tokenizers import Tokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ts_train.txt").is_file(),
                                reason=f"shared data folder not found at {DATA}")
SMALL = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
         "the mat is red", "a log is brown", "the cat saw the dog"]


class PerStep(TokenModel):
    """The same model without its C++ chunks: the loop's own per-step path."""

    def __init__(self, inner: TokenModel) -> None:
        self.inner = inner

    @property
    def tokenizer(self) -> Tokenizer:
        return self.inner.tokenizer

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        return self.inner.prefill(prompts)

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        return self.inner.step(tokens, state)

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return self.inner.select(state, rows)


@pytest.fixture(scope="module")
def small() -> NgramGenerator:
    gen = NgramGenerator(order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    return gen


@pytest.fixture(scope="module")
def ts3() -> NgramGenerator:
    if not (DATA / "ts_train.txt").is_file():
        pytest.skip("shared data folder not found")
    gen = NgramGenerator(order=3)
    gen.fit(str(DATA / "ts_train.txt"))
    return gen


@pytest.mark.parametrize("options", [
    {},
    {"temperature": 0.7, "top_p": 0.8},
    {"repetition_penalty": 1.5, "presence_penalty": 0.4, "frequency_penalty": 0.3},
    {"min_tokens": 12, "min_p": 0.05},
    {"stop_at_eos": False, "temperature": 0},
])
def test_cpp_chunks_draw_what_the_per_step_path_draws(small: NgramGenerator,
                                                      options: dict[str, Any]) -> None:
    model = small.token_model()
    request = TextRequest.build("the", seed=21, n=5, max_tokens=40, **options)
    fused = decode(model, request)
    stepped = decode(PerStep(model), request)
    assert [c.token_ids for c in fused.choices] == [c.token_ids for c in stepped.choices]
    assert fused.texts == stepped.texts
    assert [c.finish_reason for c in fused.choices] == [c.finish_reason for c in stepped.choices]


@needs_data
def test_chunked_generation_equals_one_call(ts3: NgramGenerator) -> None:
    lm = ts3.lm
    prompt = lm.ids("my lord ,")
    one = lm.generate(prompt, 3000, top_k=40, seed=5, stop_at_eos=False)
    looped = ts3.generate("my lord ,", top_k=40, seed=5, stop_at_eos=False, max_tokens=3000)
    assert looped.choices[0].token_ids == [int(t) for t in one]
    assert looped.choices[0].finish_reason == "length"
    assert looped.text == " " + lm.detokenize(one)


@needs_data
def test_logprobs_of_the_cpp_path(ts3: NgramGenerator) -> None:
    request = TextRequest.build("the king", seed=2, max_tokens=15, logprobs=3, temperature=0.9,
                                stop_at_eos=False)
    r = ts3.generate(request)
    lm = ts3.lm
    context = list(lm.ids("the king"))
    c = r.choices[0]
    assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
    for token, lp in zip(c.token_ids, c.logprobs, strict=True):
        tail, bos = ts3.token_model().context(context)  # type: ignore[attr-defined]
        row = lm.next_logprobs(tail, bos=bos)
        row[lm.unk_id] = -np.inf
        probs = filter_probs(row, request.sampling)
        assert lp.logprob == pytest.approx(math.log(probs[token]), abs=1e-5)
        best = sorted(np.flatnonzero(probs > 0), key=lambda i: (-probs[i], i))[:3]
        assert [i for i, _ in lp.top] == best
        context.append(token)
    # With top-k the distribution is the top-k candidates' (exact), renormalised.
    topk = ts3.generate("the king", seed=2, max_tokens=5, logprobs=0, top_k=5)
    assert all(lp.logprob > math.log(1e-3) for lp in topk.choices[0].logprobs or [])


@needs_data
def test_min_tokens_rules_out_empty_completions(ts3: NgramGenerator) -> None:
    empty = sum(ts3.generate("the king", seed=s, max_tokens=30).text == "" for s in range(200))
    assert empty > 0  # "the king" ends a sentence often enough
    assert all(ts3.generate("the king", seed=s, max_tokens=30, min_tokens=1).text
               for s in range(200))


@needs_data
def test_bits_per_byte_and_nats_per_token(ts3: NgramGenerator) -> None:
    m = ts3.evaluate(str(DATA / "ts_test.txt"))
    size = (DATA / "ts_test.txt").stat().st_size
    assert m["bytes"] == size and m["tokens"] == 21052
    nats = -m["log10_prob"] * math.log(10)
    assert m["bits_per_byte"] == pytest.approx(nats / math.log(2) / size)
    assert m["nats_per_token"] == pytest.approx(math.log(m["perplexity"]))
    assert m["perplexity"] == pytest.approx(586.8951581669656, rel=1e-6)


@needs_data
def test_ctrl_c_stops_generation_prints_the_text_and_exits_130(tmp_path: Path) -> None:
    gen = NgramGenerator(order=5)
    gen.fit(str(DATA / "ts_train.txt"))
    bundle = gen.save(tmp_path / "lm5")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_PLUGINS"] = "ngram,datasets"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aigc_engine", "generate", str(bundle), "--max-tokens",
         "100000000", "--no-stop-at-eos", "--seed", "1", "--top-k", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        # A terminal's Ctrl-C: SIGINT handled by default in the child even when this suite
        # runs as a background job of a non-interactive shell, which ignores SIGINT (an
        # ignored SIGINT is inherited, and Python then never raises KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    first = proc.stdout.readline()  # a whole line of streamed text
    assert first.strip()
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    watchdog = threading.Timer(60, proc.kill)  # generous: the machine is shared
    watchdog.start()
    try:
        # The same buffered reader as readline(): communicate() would skip what it holds.
        out = proc.stdout.read()
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.wait()
    finally:
        watchdog.cancel()
    waited = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    printed = (first + out).decode("utf-8").removesuffix("\n")
    # What was printed is the start of what the same request generates.
    n = len(printed.split()) + printed.count("\n") + 10
    reference = gen.generate(seed=1, top_k=40, stop_at_eos=False, max_tokens=n).text
    assert printed and reference.startswith(printed) and waited < 60
