"""Estimation of n-gram models against KenLM lmplz's reference figures.

Expected values come from ../shared/data/README.md and ref/ (lmplz output),
not from this implementation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aigc_engine import errors
from aigc_engine._core import NgramModel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "ts_train.txt").is_file(), reason=f"shared data folder not found at {DATA}"
)

# From shared/data/README.md (lmplz -o N on ts_train.txt, query on ts_test.txt).
REF = {
    3: dict(ppl=586.8951581669656, ppl_excl=288.3000494477669,
            counts=[24032, 110182, 156550]),
    5: dict(ppl=585.6062329621168, ppl_excl=287.7275153634148,
            counts=[24032, 110182, 156550, 149159, 128861]),
}


def read_arpa_map(path: Path) -> dict[str, tuple[float, float]]:
    """n-gram text -> (log10 prob, log10 backoff or 0), parsed independently of the core."""
    out: dict[str, tuple[float, float]] = {}
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1 : line.index("-")])
            continue
        if section is None or not line.strip() or line.startswith("\\"):
            continue
        fields = line.split("\t")
        key = " ".join(fields[1].split())
        assert len(key.split()) == section
        out[key] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
    return out


@pytest.fixture(scope="module")
def model3() -> NgramModel:
    return NgramModel.estimate(DATA / "ts_train.txt", 3)


@needs_data
@pytest.mark.parametrize("order", [3, 5])
def test_perplexity_and_counts_match_lmplz(order: int) -> None:
    model = NgramModel.estimate(str(DATA / "ts_train.txt"), order)
    assert model.order == order
    assert model.counts == REF[order]["counts"]
    st = model.perplexity(DATA / "ts_test.txt")
    assert st["tokens"] == 21052
    assert st["oov"] == 2125
    assert st["sentences"] == 3159
    assert st["perplexity"] == pytest.approx(REF[order]["ppl"], rel=1e-6)
    assert st["perplexity_excluding_oov"] == pytest.approx(REF[order]["ppl_excl"], rel=1e-6)


@needs_data
def test_order3_arpa_has_lmplz_ngrams_and_values(model3: NgramModel, tmp_path: Path) -> None:
    out = tmp_path / "o3.arpa"
    model3.write_arpa(out)
    ours = read_arpa_map(out)
    ref = read_arpa_map(DATA / "ref" / "ts_train.o3.lmplz.arpa")
    assert ours.keys() == ref.keys()
    prob_err = max(abs(ours[k][0] - ref[k][0]) for k in ref)
    bo_err = max(abs(ours[k][1] - ref[k][1]) for k in ref)
    assert prob_err <= 1e-5 and bo_err <= 1e-5, (prob_err, bo_err)
    # lmplz's special cases: <s> has probability 1 and a backoff, <unk> no backoff.
    assert ref["<s>"][0] == ours["<s>"][0] == 0.0
    assert ours["<s>"][1] == pytest.approx(ref["<s>"][1], abs=1e-6)
    assert ours["<unk>"] == pytest.approx(ref["<unk>"], abs=1e-6)


@needs_data
def test_sources_and_threads_give_the_same_model(model3: NgramModel, tmp_path: Path) -> None:
    text = (DATA / "ts_train.txt").read_text(encoding="utf-8")
    from_lines = NgramModel.estimate(text.splitlines(), 3, threads=1)
    from_text = NgramModel.estimate_text(text, 3, threads=2)
    paths = []
    for i, m in enumerate([model3, from_lines, from_text]):
        p = tmp_path / f"m{i}.arpa"
        m.write_arpa(p)
        paths.append(p.read_bytes())
    assert paths[0] == paths[1] == paths[2]


@needs_data
def test_discounts_are_chen_goodman_from_counts_of_counts(model3: NgramModel) -> None:
    # Discounts of the top order from the raw trigram counts of counts,
    # counted here in Python.
    counts: dict[tuple[str, ...], int] = {}
    for line in (DATA / "ts_train.txt").read_text(encoding="utf-8").splitlines():
        words = ["<s>"] + line.split() + ["</s>"]
        for i in range(2, len(words)):
            key = tuple(words[i - 2 : i + 1])
            counts[key] = counts.get(key, 0) + 1
    n = [0] * 5
    for c in counts.values():
        if c < 5:
            n[c] += 1
    y = n[1] / (n[1] + 2 * n[2])
    expected = [j - (j + 1) * y * n[j + 1] / n[j] for j in (1, 2, 3)]
    assert model3.discounts is not None
    assert model3.discounts[2] == pytest.approx(expected, rel=1e-5)
    assert model3.fallback_used == [False, False, False]


def test_too_small_corpus_suggests_discount_fallback() -> None:
    with pytest.raises(errors.CoreError, match="discount_fallback"):
        NgramModel.estimate(["a b c", "a b d"], 3)
    model = NgramModel.estimate(["a b c", "a b d"], 3, discount_fallback=[0.5, 1.0, 1.5])
    assert model.fallback_used == [True, True, True]
    assert model.discounts == [pytest.approx((0.5, 1.0, 1.5))] * 3
    # Still a distribution over the vocabulary (without <s>).
    p = np.exp(model.next_logprobs(["a"]).astype(np.float64))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("order", [0, -1, 9, 100])
def test_order_out_of_range_is_a_value_error(order: int) -> None:
    with pytest.raises(ValueError, match=f"order {order} is not supported; expected 1 to 8"):
        NgramModel.estimate(["a b c"], order)


@pytest.mark.parametrize("source", [[], [""], ["", "  \t "]])
def test_empty_corpus_is_a_value_error(source: list[str]) -> None:
    with pytest.raises(ValueError, match="corpus is empty"):
        NgramModel.estimate(source, 3)


def test_empty_file_is_a_value_error(tmp_path: Path) -> None:
    p = tmp_path / "empty.txt"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="corpus is empty"):
        NgramModel.estimate(p, 3)
    with pytest.raises(FileNotFoundError):
        NgramModel.estimate(tmp_path / "missing.txt", 3)


def test_reserved_words_are_rejected_with_line_number() -> None:
    with pytest.raises(ValueError, match=r"line 2 .*reserved word </s>"):
        NgramModel.estimate(["a b", "c </s> d"], 2, discount_fallback=[0.5])


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="discount_fallback"):
        NgramModel.estimate(["a b"], 2, discount_fallback=[0.5, 1, 1.5, 2])
    with pytest.raises(ValueError, match="out of range"):
        NgramModel.estimate(["a b"], 2, discount_fallback=[2.5])
    with pytest.raises(ValueError, match="unigrams"):
        NgramModel.estimate(["a b"], 2, prune=[1, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        NgramModel.estimate(["a b"], 3, prune=[0, 2, 1])
    with pytest.raises(ValueError, match="mode"):
        NgramModel.estimate(["a b"], 2, mode="bytes")


@needs_data
def test_pruning_removes_rare_ngrams_and_keeps_a_distribution(model3: NgramModel) -> None:
    pruned = NgramModel.estimate(DATA / "ts_train.txt", 3, prune=[0, 1, 1])
    assert pruned.counts[0] == model3.counts[0]
    assert pruned.counts[1] < model3.counts[1] and pruned.counts[2] < model3.counts[2]
    # Raw bigram counts, counted here: exactly those with count > 1 remain.
    counts: dict[tuple[str, str], int] = {}
    for line in (DATA / "ts_train.txt").read_text(encoding="utf-8").splitlines():
        words = ["<s>"] + line.split() + ["</s>"]
        for i in range(1, len(words)):
            counts[(words[i - 1], words[i])] = counts.get((words[i - 1], words[i]), 0) + 1
    assert pruned.counts[1] == sum(1 for c in counts.values() if c > 1)
    for ctx in (["the"], ["First", "Citizen:"], ["I", "am"], []):
        p = np.exp(pruned.next_logprobs(ctx).astype(np.float64))
        assert p.sum() == pytest.approx(1.0, abs=1e-4)
    st = pruned.perplexity(DATA / "ts_test.txt")
    assert math.isfinite(st["perplexity"]) and st["perplexity"] > 0


def test_char_mode_on_chinese(tmp_path: Path) -> None:
    corpus = [
        "我爱北京天安门",
        "天安门上太阳升",
        "我爱你 中国",
        "北京是中国的首都",
        "中国人民爱和平",
        "我们爱北京",
        "太阳从东方升起",
        "北京的天很蓝",
    ] * 3 + ["我们", "中国", "人民"]
    model = NgramModel.estimate(corpus, 3, mode="char", discount_fallback=[0.5, 1.0, 1.5])
    assert model.mode == "char"
    assert model.tokenize("我爱你 中国") == ["我", "爱", "你", "\u2581", "中", "国"]
    assert model.tokenize("  北京 \t 天  ") == ["北", "京", "\u2581", "天"]
    chars = {c for line in corpus for c in line if c != " "}
    assert model.vocab_size == len(chars) + 1 + 3  # + "\u2581" + <unk> <s> </s>
    assert "京" in model and model.word(model.index("京")) == "京"
    # 北 is always followed by 京.
    ids, logp = model.top_k(["北"], 1)
    assert model.word(int(ids[0])) == "京" and logp[0] > math.log(0.5)
    out = model.generate(["我"], 10, temperature=0)
    assert all(model.word(int(i)) in chars | {"\u2581"} for i in out)
    st = model.perplexity(["我爱北京", "中国太阳"])
    assert st["tokens"] == 10 and st["oov"] == 0
    # Binary and ARPA keep the characters (and binary keeps the mode).
    model.save_binary(tmp_path / "zh.bin")
    again = NgramModel.load_binary(tmp_path / "zh.bin")
    assert again.mode == "char" and again.score("我爱北京") == model.score("我爱北京")
    model.write_arpa(tmp_path / "zh.arpa")
    assert "北 京" in (tmp_path / "zh.arpa").read_text(encoding="utf-8")


def test_char_mode_invalid_utf8_names_byte_offset(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes("我爱北京\n天安".encode() + b"\xe9\x97" + b"\n")
    with pytest.raises(ValueError, match="invalid UTF-8 at byte offset 19"):
        NgramModel.estimate(p, 2, mode="char", discount_fallback=[0.5])
    with pytest.raises(ValueError, match="byte offset 1 "):
        NgramModel.estimate_text(b"a\xff", 2, mode="char", discount_fallback=[0.5])
