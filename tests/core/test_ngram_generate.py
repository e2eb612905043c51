"""Generation from an n-gram model: exact top-k, seeded sampling, stopping."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aigc_engine._core import NgramModel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(
    not (DATA / "ts_train.txt").is_file(), reason=f"shared data folder not found at {DATA}"
)


@pytest.fixture(scope="module")
def model() -> NgramModel:
    return NgramModel.estimate(DATA / "ts_train.txt", 5)


def contexts(n: int) -> list[list[str]]:
    lines = (DATA / "ts_test.txt").read_text(encoding="utf-8").splitlines()[:n]
    out: list[list[str]] = [[]]
    for line in lines:
        words = line.split()
        out += [words[max(0, i - 4) : i] for i in range(1, len(words) + 1)]
    return out


@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_is_exactly_the_best_of_the_full_distribution(model: NgramModel, k: int) -> None:
    for ctx in contexts(60):
        lp = model.next_logprobs(ctx)
        lp[NgramModel.unk_id] = -np.inf  # top_k excludes <unk> by default
        ids, scores = model.top_k(ctx, k)
        assert ids.dtype == np.int32 and scores.dtype == np.float32 and len(ids) == k
        best = np.sort(lp)[::-1][:k]
        np.testing.assert_allclose(scores, best, rtol=0, atol=2e-6)
        np.testing.assert_allclose(lp[ids], scores, rtol=0, atol=2e-6)
        assert np.all(np.diff(scores) <= 0)
        assert NgramModel.bos_id not in ids and NgramModel.unk_id not in ids


def test_top_k_with_unk_and_whole_vocabulary(model: NgramModel) -> None:
    ids, scores = model.top_k(["xyzzy"], model.vocab_size + 5, allow_unk=True)
    assert len(ids) == model.vocab_size - 1  # every word but <s>
    lp = model.next_logprobs(["xyzzy"])
    np.testing.assert_allclose(np.sort(scores)[::-1], np.sort(lp[lp > -np.inf])[::-1], atol=2e-6)


def test_generation_is_seeded_and_stops(model: NgramModel) -> None:
    a = model.generate(["First"], 30, top_k=40, seed=7)
    b = model.generate(["First"], 30, top_k=40, seed=7)
    np.testing.assert_array_equal(a, b)
    outs = {tuple(model.generate(["First"], 30, top_k=40, seed=s)) for s in range(20)}
    assert len(outs) > 1
    for s in range(20):
        out = model.generate([], 200, top_k=40, seed=s)
        assert NgramModel.eos_id not in out and NgramModel.bos_id not in out and 0 not in out
        assert len(out) < 200  # sentences end long before
    long = model.generate([], 50, top_k=40, seed=3, stop_at_eos=False)
    assert len(long) == 50
    assert model.generate(["First"], 0, top_k=40).shape == (0,)


def test_greedy_follows_the_argmax(model: NgramModel) -> None:
    out = model.generate(["First"], 5, temperature=0)
    ctx: list[int] = [model.index("First")]
    for tok in out:
        lp = model.next_logprobs(ctx)
        lp[NgramModel.unk_id] = -np.inf
        assert tok == int(np.argmax(lp))
        ctx.append(int(tok))
    np.testing.assert_array_equal(out, model.generate(["First"], 5, temperature=0, top_k=3))


def test_prompt_of_unknown_words_generates_from_unk_context(model: NgramModel) -> None:
    out = model.generate(["qwzx", "vbnm"], 20, top_k=10, seed=1, stop_at_eos=False)
    assert len(out) == 20
    # The first word is drawn from the distribution after <unk>, i.e. the unigrams.
    ids, _ = model.top_k(["qwzx", "vbnm"], 10)
    uni_ids, _ = model.top_k([], 10, bos=False)
    np.testing.assert_array_equal(ids, uni_ids)
    assert out[0] in ids


def test_top_k_sampling_frequencies(model: NgramModel) -> None:
    # Fixed seeds make this deterministic; the tolerance is ~5 standard errors.
    ctx = ["I", "am"]
    ids, scores = model.top_k(ctx, 3)
    p = np.exp(scores.astype(np.float64))
    p /= p.sum()
    n = 3000
    first = [int(model.generate(ctx, 1, top_k=3, seed=s)[0]) for s in range(n)]
    freq = np.array([first.count(int(i)) / n for i in ids])
    assert set(first) <= set(int(i) for i in ids)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / n) + 1e-3), (freq, p)


def test_penalties_lower_repeats(model: NgramModel) -> None:
    plain = [model.generate(["the"], 40, top_k=20, seed=s, stop_at_eos=False) for s in range(30)]
    pen = [
        model.generate(["the"], 40, top_k=20, seed=s, stop_at_eos=False, repetition_penalty=1.0,
                       presence_penalty=3.0)
        for s in range(30)
    ]
    def repeats(seqs: list[np.ndarray]) -> float:
        return float(np.mean([len(s) - len(set(s.tolist())) for s in seqs]))
    assert repeats(pen) < repeats(plain)


def test_full_distribution_sampling_without_top_k(model: NgramModel) -> None:
    out = model.generate(["First"], 10, seed=3)
    np.testing.assert_array_equal(out, model.generate(["First"], 10, seed=3))
    assert math.isfinite(model.score(" ".join(model.word(int(i)) for i in out)))


def test_generation_in_chunks_continues_exactly(model: NgramModel) -> None:
    ctx = [model.index("First")]
    whole = model.generate(ctx, 60, top_k=40, seed=11, stop_at_eos=False)
    assert NgramModel.eos_id in whole.tolist()  # crosses a sentence boundary
    out: list[int] = []
    while len(out) < 60:
        more = model.generate(ctx + out, 7, top_k=40, seed=11, stop_at_eos=False, first_step=len(out))
        out += [int(i) for i in more]
    assert out[:60] == whole.tolist()


def test_top_k_exact_on_a_model_without_suffix_closure(tmp_path: Path) -> None:
    # "a c b" is a trigram although "c b" is not a bigram (possible in a
    # pruned SRILM file): top-k must not rely on suffix closure there.
    text = (
        "\\data\\\nngram 1=6\nngram 2=4\nngram 3=2\n\n\\1-grams:\n-99\t<s>\t-0.3\n-1.0\t</s>\n"
        "-0.6\ta\t-0.2\n-0.7\tb\t-0.1\n-0.9\tc\t-0.4\n-2.0\t<unk>\n\n\\2-grams:\n"
        "-0.5\t<s> a\t-0.1\n-0.2\ta c\t-0.3\n-0.4\tc a\n-0.3\tb c\n\n\\3-grams:\n"
        "-0.05\ta c b\n-0.6\t<s> a c\n\n\\end\\\n"
    )
    p = tmp_path / "open.arpa"
    p.write_text(text, encoding="utf-8")
    m = NgramModel.read_arpa(p)
    for ctx in (["a", "c"], ["c"], ["a"], [], ["b", "c"], ["c", "a"]):
        lp = m.next_logprobs(ctx)
        for allow_unk in (False, True):
            ids, scores = m.top_k(ctx, 10, allow_unk=allow_unk)
            ref = lp.copy()
            if not allow_unk:
                ref[NgramModel.unk_id] = -np.inf
            finite = np.sort(ref[np.isfinite(ref)])[::-1]
            assert len(ids) == len(finite) and len(set(ids.tolist())) == len(ids)
            np.testing.assert_allclose(scores, finite, atol=2e-6)
            np.testing.assert_allclose(ref[ids], scores, atol=2e-6)
    # After "a c", b is explicit with -0.05 (not backed off through "c b").
    ids, scores = m.top_k(["a", "c"], 1, bos=False)
    assert m.word(int(ids[0])) == "b" and scores[0] == pytest.approx(-0.05 * math.log(10), abs=1e-6)
