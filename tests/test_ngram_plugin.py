"""The ngram generator plugin end to end: engine, bundles, ARPA files, CLI.

Reference figures are lmplz's (../shared/data/README.md), not this code's output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aigc_engine.plugins.ngram as ngram_plugin
from aigc_engine import ConfigError, CoreError, Engine
from aigc_engine.plugins.ngram.generator import NgramGenerator
from aigc_engine.testing import check_generator, isolated_engine

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "ts_train.txt").is_file(),
                                reason=f"shared data folder not found at {DATA}")
REF_PPL = {3: (586.8951581669656, 288.3000494477669), 5: (585.6062329621168, 287.7275153634148)}
SMALL = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
         "the mat is red", "a log is brown", "the cat saw the dog"]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(plugins=["ngram", "datasets"])


def test_contract() -> None:
    engine = isolated_engine({"ngram": ngram_plugin})
    check_generator(engine, "ngram", data=SMALL,
                    options={"order": 3, "discount_fallback": (0.5, 1.0, 1.5)},
                    request={"max_tokens": 20, "stop_at_eos": False})


@needs_data
@pytest.mark.parametrize("order", [3, 5])
def test_fit_evaluate_match_lmplz(engine: Engine, order: int) -> None:
    gen = engine.create("ngram", order=order)
    metrics = gen.fit(str(DATA / "ts_train.txt"))
    assert metrics["ngrams_1"] == 24032 and metrics["ngrams_3"] == 156550
    scores = gen.evaluate(str(DATA / "ts_test.txt"))
    assert scores["tokens"] == 21052 and scores["oov"] == 2125
    incl, excl = REF_PPL[order]
    assert scores["perplexity"] == pytest.approx(incl, rel=1e-6)
    assert scores["perplexity_excluding_oov"] == pytest.approx(excl, rel=1e-6)


@needs_data
def test_reference_arpa_opens_through_the_engine(engine: Engine) -> None:
    gen = engine.load(DATA / "ref" / "ts_train.o3.lmplz.arpa")
    assert isinstance(gen, NgramGenerator) and gen.cfg.order == 3
    scores = gen.evaluate(str(DATA / "ts_test.txt"))
    assert scores["perplexity"] == pytest.approx(REF_PPL[3][0], rel=1e-6)
    text = gen.generate("the king", seed=3, max_tokens=15, top_k=20, echo=True).text
    assert text.startswith("the king ")


def test_bundle_round_trip_and_exports(engine: Engine, tmp_path: Path) -> None:
    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    bundle = gen.save(tmp_path / "lm")
    loaded = engine.load(bundle)
    sample = {"seed": 11, "n": 3, "max_tokens": 12, "stop_at_eos": False}
    assert loaded.generate(**sample).texts == gen.generate(**sample).texts  # type: ignore[attr-defined]
    arpa = gen.export(tmp_path / "lm.arpa", format="arpa")
    from_arpa = engine.load(arpa)
    assert isinstance(from_arpa, NgramGenerator)
    for line in SMALL:
        assert from_arpa.score(line) == pytest.approx(gen.score(line), abs=1e-6)  # type: ignore[attr-defined]
    binary = gen.export(tmp_path / "lm.bin", format="binary")
    assert binary.stat().st_size > 0


def test_stream_joins_to_generate_and_eos_becomes_a_line_break(engine: Engine) -> None:
    gen = engine.create("ngram", order=2, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    request = {"seed": 5, "max_tokens": 40, "stop_at_eos": False}
    text = gen.generate("the", **request).text  # type: ignore[attr-defined]
    assert "".join(gen.stream_text("the", **request)) == text  # type: ignore[attr-defined]
    assert "\n" in text and "</s>" not in text and "  " not in text
    stopped = gen.generate("the", seed=5, max_tokens=40).text  # type: ignore[attr-defined]
    assert "\n" not in stopped and text.startswith(stopped)


def test_greedy_generation_is_the_most_likely_path(engine: Engine) -> None:
    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(["a b c d e"] * 5 + ["a b x"])
    assert gen.generate("a b", temperature=0, seed=1).text == " c d e"  # type: ignore[attr-defined]
    assert gen.generate("a b", temperature=0, seed=1, echo=True).text == "a b c d e"  # type: ignore[attr-defined]
    assert gen.generate("a b\n", temperature=0, seed=1).text == "a b c d e"  # type: ignore[attr-defined]


def test_prompt_of_unknown_words_generates_from_unk_context(engine: Engine) -> None:
    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    # As KenLM scores it: the unknown words are <unk>, a unigram context.
    assert gen.lm.next_logprobs(["zebra", "quagga"]).tolist() == \
        gen.lm.next_logprobs(["<unk>"]).tolist()
    result = gen.generate("zebra quagga", seed=2, max_tokens=8,  # type: ignore[attr-defined]
                          stop_at_eos=False, echo=True)
    assert result.text.startswith("zebra quagga ")
    words = result.text.split()[2:]
    assert words and all(w in {w for line in SMALL for w in line.split()} for w in words)


def test_char_mode_generates_chinese(engine: Engine) -> None:
    corpus = ["我们今天去公园散步", "今天天气很好", "我们喜欢在公园里看书",
              "天气好的时候我们去散步"]
    gen = engine.create("ngram", order=3, tokenizer="char", discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(corpus)
    text = gen.generate("我们", seed=4, max_tokens=10, echo=True).text  # type: ignore[attr-defined]
    assert text.startswith("我们") and " " not in text
    assert set(text) <= set("".join(corpus))


def test_small_corpus_error_suggests_the_fallback(engine: Engine) -> None:
    gen = engine.create("ngram", order=3)
    with pytest.raises(CoreError, match="discount_fallback"):
        gen.fit(SMALL)


@pytest.mark.parametrize("options,match", [
    ({"order": 0}, "order must be in"),
    ({"order": 99}, "order must be in"),
    ({"tokenizer": "bpe"}, "tokenizer must be 'word' or 'char'"),
    ({"discount_fallback": (0.5, -1.0)}, "discount_fallback"),
    ({"order": 2, "prune": (0, 1, 1)}, "prune has 3 thresholds for order 2"),
])
def test_bad_config(engine: Engine, options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        engine.create("ngram", **options)


def test_empty_corpus_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ValueError, match="empty|no sentence|no token"):
        engine.create("ngram", order=2).fit(["", ""])


def aigc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return subprocess.run([sys.executable, "-m", "aigc_engine", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@needs_data
def test_cli_train_eval_generate_export(tmp_path: Path) -> None:
    bundle = tmp_path / "lm3"
    out = aigc("train", "ngram", "--data", str(DATA / "ts_train.txt"), "--set", "order=3",
               "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    ev = aigc("eval", str(bundle), "--data", str(DATA / "ts_test.txt"), "--json")
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["perplexity"] == pytest.approx(REF_PPL[3][0], rel=1e-6)
    gen = aigc("generate", str(bundle), "--prompt", "the king", "--seed", "1", "--top-k", "40",
               "--max-tokens", "12", "--echo")
    assert gen.returncode == 0 and gen.stdout.startswith("the king "), gen.stderr
    arpa = tmp_path / "lm3.arpa"
    assert aigc("export", str(bundle), "--format", "arpa", "-o", str(arpa)).returncode == 0
    ev2 = aigc("eval", str(arpa), "--data", str(DATA / "ts_test.txt"), "--json")
    assert json.loads(ev2.stdout)["perplexity"] == pytest.approx(REF_PPL[3][0], rel=1e-6)
    ref = aigc("generate", str(DATA / "ref" / "ts_train.o3.lmplz.arpa"), "--seed", "2",
               "--prompt", "my lord", "--echo")
    assert ref.returncode == 0 and ref.stdout.startswith("my lord"), ref.stderr


def test_generation_draws_through_the_shared_sampler(engine: Engine) -> None:
    import numpy as np

    from aigc_engine.sampling import SamplingParams, sample

    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    lm = gen.lm
    params = SamplingParams(temperature=0.7, top_p=0.9)
    for seed in range(20):
        first = lm.generate(["the"], 1, temperature=0.7, top_p=0.9, seed=seed, stream=3,
                            stop_at_eos=False)
        row = lm.next_logprobs(["the"]).astype(np.float32)
        row[lm.unk_id] = -np.inf  # <unk> is never generated
        expected = sample(row, params, seed=seed, stream=3, step=0)
        assert int(first[0]) == expected


def test_bundle_whose_manifest_lies_about_the_model_is_refused(engine: Engine,
                                                               tmp_path: Path) -> None:
    from aigc_engine import ModelFormatError

    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    bundle = gen.save(tmp_path / "lm")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["config"].update(order=5, tokenizer="char")
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=r"its manifest does not match model\.bin: it says "
                       r"order 5 \(the model is order 3\), tokenizer 'char' \(the model's is "
                       r"'word'\)"):
        engine.load(bundle)
    manifest["config"].update(order=3, tokenizer="word")
    manifest["metrics"]["vocab_size"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=r"vocab_size=99 \(the model has 16\)"):
        engine.load(bundle)


def test_a_binary_export_opens_through_the_engine(engine: Engine, tmp_path: Path) -> None:
    gen = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    gen.fit(SMALL)
    binary = gen.export(tmp_path / "lm.bin", format="binary")
    opened = engine.load(binary)
    assert isinstance(opened, NgramGenerator) and opened.cfg.order == 3
    sample = {"seed": 4, "n": 2, "max_tokens": 10, "stop_at_eos": False}
    assert opened.generate(**sample).texts == gen.generate(**sample).texts  # type: ignore[attr-defined]
    # Any suffix: the magic bytes decide.
    other = tmp_path / "lm.model.bin"
    other.write_bytes(binary.read_bytes())
    assert engine.load(other).generate(**sample).texts == gen.generate(**sample).texts  # type: ignore[attr-defined]


def test_empty_corpus_is_a_config_error_naming_the_data(engine: Engine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n")
    with pytest.raises(ConfigError, match=r"dataset '.*empty\.txt' holds no text"):
        engine.create("ngram", order=2).fit(str(empty))
    out = aigc("train", "ngram", "--data", str(empty), "-o", str(tmp_path / "lm"))
    assert out.returncode == 1
    assert out.stderr.strip() == (f"aigc: error: dataset {str(empty)!r} holds no text (every "
                                  "line is empty): nothing to estimate an n-gram model from")
