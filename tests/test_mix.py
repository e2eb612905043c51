"""The mix generator: a character n-gram and a tiny Transformer, mixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import aigc_engine.plugins.mix as mix_plugin
import aigc_engine.plugins.ngram as ngram_plugin
import aigc_engine.plugins.transformer as transformer_plugin
from aigc_engine import ConfigError
from aigc_engine.testing import check_generator, isolated_engine

TRAIN = ["the quick brown fox jumps over the lazy dog."] * 20 + \
        ["a lazy dog sleeps under the brown tree."] * 12
VALID = ["the lazy fox sleeps over the brown dog.", "a quick dog jumps under the tree."]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    engine = isolated_engine({"ngram": ngram_plugin, "transformer": transformer_plugin})
    tmp = tmp_path_factory.mktemp("mix")
    gpt = engine.create("transformer", n_layer=1, n_head=2, n_embd=32, context=32,
                        max_steps=120, lr=3e-3, threads=1, batch_size=8, warmup_steps=10)
    gpt.fit(TRAIN)
    ngram = engine.create("ngram", order=5, tokenizer="char", discount_fallback=(0.5, 1.0, 1.5))
    ngram.fit(TRAIN)
    return gpt.save(tmp / "gpt"), ngram.save(tmp / "ngram")



def test_weight_fitted_and_mixture_beats_both(bundles: tuple[Path, Path]) -> None:
    engine = isolated_engine({"mix": mix_plugin})
    gen = engine.create("mix", first=str(bundles[0]), second=str(bundles[1]), streams=4)
    metrics = gen.fit(VALID)
    assert 0.0 < metrics["weight"] < 1.0
    assert metrics["fit_mix_bits_per_byte"] <= min(metrics["fit_first_bits_per_byte"],
                                                   metrics["fit_second_bits_per_byte"])
    scores = gen.evaluate(VALID)
    assert scores["bits_per_byte"] == pytest.approx(metrics["fit_mix_bits_per_byte"])
    # each part's teacher-forced score agrees with its own evaluate on one stream
    one = engine.create("mix", first=str(bundles[0]), second=str(bundles[1]), streams=1,
                        weight=1.0)
    one.fit(VALID[:1])
    first = one.evaluate(VALID[:1])
    assert np.isfinite(first["bits_per_byte"])


def test_contract_and_bad_input(bundles: tuple[Path, Path]) -> None:
    engine = isolated_engine({"mix": mix_plugin})
    check_generator(engine, "mix", data=VALID,
                    options={"first": str(bundles[0]), "second": str(bundles[1]),
                             "streams": 4},
                    request={"max_tokens": 30, "prompt": "the "})
    with pytest.raises(ConfigError, match="first=BUNDLE"):
        engine.create("mix").fit(VALID)
    with pytest.raises(ConfigError, match="weight must be"):
        engine.create("mix", weight=2.0)
