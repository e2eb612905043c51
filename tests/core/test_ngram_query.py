"""Scoring with an n-gram model: sentence scores, batches, vocabulary access."""

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
LN10 = math.log(10.0)


@pytest.fixture(scope="module")
def model() -> NgramModel:
    return NgramModel.estimate(DATA / "ts_train.txt", 4)


@pytest.fixture(scope="module")
def test_lines() -> list[str]:
    return (DATA / "ts_test.txt").read_text(encoding="utf-8").splitlines()


def test_vocabulary_access(model: NgramModel) -> None:
    assert (NgramModel.unk_id, NgramModel.bos_id, NgramModel.eos_id) == (0, 1, 2)
    assert [model.word(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    assert model.vocab_size == 24032
    i = model.index("Citizen:")
    assert i > 2 and model.word(i) == "Citizen:"
    assert model.index("no-such-word-xyz") == 0 and "no-such-word-xyz" not in model
    with pytest.raises(IndexError, match="outside the vocabulary of 24032"):
        model.word(24032)
    with pytest.raises(IndexError):
        model.word(-1)
    assert model.tokenize(" a\tb  c\r") == ["a", "b", "c"]
    np.testing.assert_array_equal(model.ids("First Citizen: xyzzy"), [model.index("First"), i, 0])
    assert model.detokenize(model.ids("First  Citizen:\tyou")) == "First Citizen: you"
    assert model.detokenize([1, i, 2, i]) == "Citizen:\nCitizen:"


def test_score_is_the_sum_of_next_token_probabilities(model: NgramModel, test_lines: list[str]) -> None:
    for line in test_lines[:40]:
        words = line.split()
        total = 0.0
        for t, w in enumerate(words + ["</s>"]):
            lp = model.next_logprobs(words[:t])
            total += lp[model.index(w)] / LN10
        assert model.score(line) == pytest.approx(total, abs=1e-4)


def test_next_logprobs_is_a_distribution(model: NgramModel) -> None:
    for ctx in ([], ["the"], ["First", "Citizen:"], ["xyzzy", "plugh"], ["I", "am", "not", "a"]):
        lp = model.next_logprobs(ctx)
        assert lp.dtype == np.float32 and lp.shape == (model.vocab_size,)
        assert lp[NgramModel.bos_id] == -np.inf
        assert np.exp(lp.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)
    # Context ids and words are interchangeable.
    np.testing.assert_array_equal(
        model.next_logprobs(["First", "Citizen:"]),
        model.next_logprobs([model.index("First"), model.index("Citizen:")]),
    )
    with pytest.raises(IndexError):
        model.next_logprobs([model.vocab_size])


def test_bos_eos_flags(model: NgramModel) -> None:
    s = "First Citizen:"
    full = model.score(s)
    no_eos = model.score(s, eos=False)
    eos_part = model.next_logprobs(s.split())[NgramModel.eos_id] / LN10
    assert full == pytest.approx(no_eos + eos_part, abs=1e-5)
    no_bos = model.score(s, bos=False, eos=False)
    uni = model.next_logprobs([], bos=False)[model.index("First")] / LN10
    assert no_bos == pytest.approx(uni + model.next_logprobs(["First"], bos=False)[model.index("Citizen:")] / LN10, abs=1e-5)


def test_unknown_words_score_as_kenlm(model: NgramModel) -> None:
    # An OOV word is <unk> with the backoffs of its context; after it, the
    # context is just <unk> (which has no extensions), i.e. the unigrams.
    np.testing.assert_array_equal(model.next_logprobs(["qwzx"]), model.next_logprobs(["xyzzy", "qwzx"]))
    np.testing.assert_allclose(
        model.next_logprobs(["qwzx"]), model.next_logprobs([], bos=False), rtol=0, atol=1e-6
    )
    st = model.perplexity(["qwzx the", "the qwzx qwzx"])
    assert st["oov"] == 3 and st["tokens"] == 7


def test_batch_scoring_matches_single_scores(model: NgramModel, test_lines: list[str]) -> None:
    batch = model.score_batch(test_lines)
    assert batch.dtype == np.float64 and batch.shape == (len(test_lines),)
    single = np.array([model.score(s) for s in test_lines])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_array_equal(model.score_batch(test_lines, threads=1), batch)
    no_eos = model.score_batch(test_lines[:10], eos=False)
    np.testing.assert_array_equal(no_eos, [model.score(s, eos=False) for s in test_lines[:10]])
    st = model.perplexity(test_lines)
    assert st["log10_prob"] == pytest.approx(batch.sum(), abs=1e-6)
    assert st == model.perplexity(DATA / "ts_test.txt")


def test_batch_input_errors(model: NgramModel) -> None:
    with pytest.raises(ValueError, match="item 1 is int"):
        model.score_batch(["a b", 3])
    assert model.score_batch(("First Citizen:",))[0] == model.score("First Citizen:")
    assert model.score_batch([]).shape == (0,)
