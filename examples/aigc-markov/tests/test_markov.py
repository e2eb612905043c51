"""The example plugin's own tests, written as an outside author would."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aigc_markov
from aigc_engine import ConfigError, Engine
from aigc_engine.testing import check_generator, isolated_engine
from aigc_markov.model import MarkovGenerator

CORPUS = ["abab", "abba", "baab"]


def test_contract() -> None:
    engine = isolated_engine({"markov": aigc_markov})
    check_generator(engine, "markov", data=CORPUS, options={"order": 2},
                    request={"max_tokens": 20})


def test_probabilities_are_smoothed_counts() -> None:
    gen = MarkovGenerator(order=1, alpha=0.5)
    gen.fit(CORPUS)
    # alphabet: a, b, EOS. After "a": b twice in abab, once in abba and once in baab;
    # a once (baab); EOS once (abba). Counts {b: 4, a: 1, EOS: 1}: total 6, V = 3.
    probs = dict(gen.probabilities("a"))
    assert probs["b"] == pytest.approx((4 + 0.5) / (6 + 1.5))
    assert probs["a"] == pytest.approx((1 + 0.5) / (6 + 1.5))
    assert sum(probs.values()) == pytest.approx(1.0)


def test_perplexity_matches_hand_computation() -> None:
    gen = MarkovGenerator(order=1, alpha=1.0)
    gen.fit(["ab"])
    # alphabet {a, b, EOS}; contexts BOS->a, a->b, b->EOS each seen once.
    # Scoring "ab": p(a|BOS) = 2/4, p(b|a) = 2/4, p(EOS|b) = 2/4.
    result = gen.evaluate(["ab"])
    assert result["characters"] == 3
    assert result["perplexity"] == pytest.approx(math.exp(-math.log(0.5)))


def test_greedy_generation_follows_the_most_likely_path() -> None:
    gen = MarkovGenerator(order=2)
    gen.fit(["hello world"] * 3)
    assert gen.generate("he", temperature=0, max_tokens=50, seed=0).text == "llo world"
    assert gen.generate("he", temperature=0, max_tokens=50, seed=0, echo=True).text == (
        "hello world")


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="order must be in"):
        MarkovGenerator(order=0)
    with pytest.raises(ConfigError, match="no non-empty line"):
        MarkovGenerator().fit(["", ""])


def test_discovered_through_its_entry_point() -> None:
    engine = Engine(plugins="*")
    info = {i.name: i for i in engine.plugins()}["markov"]
    assert info.status == "loaded"
    assert info.distribution == "aigc-markov"
    assert info.version == aigc_markov.__version__
    assert "markov" in [g.name for g in engine.list_generators()]


def test_works_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "corpus.txt"
    data.write_text("the cat sat on the mat\nthe dog sat on the log\n", encoding="utf-8")
    env = {**os.environ, "AIGC_PLUGINS": "markov,datasets"}
    aigc = [sys.executable, "-m", "aigc_engine"]
    run = subprocess.run([*aigc, "train", "markov", "--data", str(data), "--set", "order=3",
                          "-o", str(tmp_path / "m")], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    out = subprocess.run([*aigc, "generate", str(tmp_path / "m"), "--prompt", "the",
                          "--seed", "3", "--temperature", "0", "--max-tokens", "30"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.removesuffix("\n") == MarkovGenerator.load(tmp_path / "m").generate(
        "the", seed=3, temperature=0, max_tokens=30).text
    top = subprocess.run([*aigc, "markov-next", str(tmp_path / "m"), "--context", "the ",
                          "-k", "2"], capture_output=True, text=True, env=env)
    assert top.returncode == 0, top.stderr
    assert [line.split()[0] for line in top.stdout.splitlines()] in (["'c'", "'d'"],
                                                                      ["'d'", "'c'"])


def test_samples_through_the_shared_sampler() -> None:
    gen = MarkovGenerator(order=2)
    gen.fit(["hello world", "hello world", "help wanted"])  # no tied maximum on the path
    greedy = gen.generate("he", temperature=0, max_tokens=30, seed=0).text
    # top_k=1 keeps only the most likely character: the greedy path, whatever the seed.
    assert all(gen.generate("he", top_k=1, max_tokens=30, seed=s).text == greedy
               for s in range(5))
    # A huge repetition penalty forbids repeating a character already generated.
    text = gen.generate("", repetition_penalty=1e30, max_tokens=30, seed=1).text
    assert len(set(text)) == len(text)
