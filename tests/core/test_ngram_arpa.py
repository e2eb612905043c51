"""ARPA and binary model files: reading, writing, round trips, errors."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from aigc_engine import errors
from aigc_engine._core import NGRAM_BINARY_VERSION, NgramModel

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REF_ARPA = DATA / "ref" / "ts_train.o3.lmplz.arpa"
needs_data = pytest.mark.skipif(
    not REF_ARPA.is_file(), reason=f"shared data folder not found at {DATA}"
)

# An SRILM-style file: -99 for <s>, omitted zero backoffs, no <unk>, mixed
# tabs and spaces, and a trigram ("c a b") whose context "c a" is missing.
SMALL_ARPA = """Some header text before the data section.

\\data\\
ngram 1=5
ngram 2=3
ngram 3=3

\\1-grams:
-99\t<s>\t-0.5
-1.0\t</s>
-0.7\ta\t-0.3
-0.8 b -0.2
-1.2\tc

\\2-grams:
-0.4\t<s> a\t-0.1
-0.3\ta b
-0.6\tb c\t-0.25

\\3-grams:
-0.2\t<s> a b
-0.15\ta b c
-0.5\tc a b

\\end\\
"""


@pytest.fixture()
def small(tmp_path: Path) -> NgramModel:
    p = tmp_path / "small.arpa"
    p.write_text(SMALL_ARPA, encoding="utf-8")
    return NgramModel.read_arpa(p)


def test_small_arpa_backoff_semantics(small: NgramModel) -> None:
    # Hand-computed with KenLM's backoff rules.
    assert small.order == 3
    assert small.counts == [6, 4, 3]  # + <unk>; + the missing context "c a"
    assert small.score("a b c") == pytest.approx(-0.4 - 0.2 - 0.15 + (-0.25 + 0.0 - 1.0), abs=1e-6)
    assert small.score("c b") == pytest.approx((-0.5 - 1.2) + (-0.8) + (-0.2 - 1.0), abs=1e-6)
    assert small.score("c a b", bos=False, eos=False) == pytest.approx(-1.2 - 0.7 - 0.5, abs=1e-6)
    # OOV: <unk> gets log10 prob -100 when the file has none (as KenLM).
    assert small.index("zz") == NgramModel.unk_id == 0
    assert small.score("zz a") == pytest.approx((-0.5 - 100.0) + (-0.7) + (-0.3 - 1.0), abs=1e-5)
    st = small.perplexity(["zz a", "a b c"])
    assert st["tokens"] == 7 and st["oov"] == 1
    total = small.score("zz a") + small.score("a b c")
    assert st["log10_prob"] == pytest.approx(total, abs=1e-5)
    assert st["perplexity"] == pytest.approx(10 ** (-total / 7), rel=1e-9)
    excl = total - (-0.5 - 100.0)
    assert st["perplexity_excluding_oov"] == pytest.approx(10 ** (-excl / 6), rel=1e-6)


def test_arpa_round_trip_gives_the_same_bytes(small: NgramModel, tmp_path: Path) -> None:
    a, b = tmp_path / "a.arpa", tmp_path / "b.arpa"
    small.write_arpa(a)
    NgramModel.read_arpa(a).write_arpa(b)
    assert a.read_bytes() == b.read_bytes()
    text = a.read_text(encoding="utf-8")
    assert text.startswith("\\data\\\nngram 1=6\nngram 2=4\nngram 3=3\n\n\\1-grams:\n")
    assert text.endswith("\n\\end\\\n")
    assert "-0.7\tc a\t0\n" in text  # the added context, with what backing off gives


@needs_data
def test_estimated_model_round_trip_and_reference_arpa(tmp_path: Path) -> None:
    model = NgramModel.estimate(DATA / "ts_train.txt", 3)
    a, b = tmp_path / "a.arpa", tmp_path / "b.arpa"
    model.write_arpa(a)
    back = NgramModel.read_arpa(a)
    back.write_arpa(b)
    assert a.read_bytes() == b.read_bytes()
    lines = (DATA / "ts_test.txt").read_text(encoding="utf-8").splitlines()
    np.testing.assert_array_equal(model.score_batch(lines), back.score_batch(lines))
    # lmplz's own ARPA gives lmplz's perplexity (README figures).
    ref = NgramModel.read_arpa(REF_ARPA)
    assert ref.counts == [24032, 110182, 156550]
    st = ref.perplexity(DATA / "ts_test.txt")
    assert st["perplexity"] == pytest.approx(586.8951581669656, rel=1e-6)
    assert st["perplexity_excluding_oov"] == pytest.approx(288.3000494477669, rel=1e-6)
    assert (st["tokens"], st["oov"]) == (21052, 2125)


def test_binary_round_trip(small: NgramModel, tmp_path: Path) -> None:
    p = tmp_path / "m.bin"
    small.save_binary(p)
    back = NgramModel.load_binary(p)
    assert back.counts == small.counts and back.vocab_size == small.vocab_size
    sents = ["a b c", "c b", "zz a", "c a b a b c"]
    np.testing.assert_array_equal(back.score_batch(sents), small.score_batch(sents))
    a, b = tmp_path / "a.arpa", tmp_path / "b.arpa"
    small.write_arpa(a)
    back.write_arpa(b)
    assert a.read_bytes() == b.read_bytes()


@needs_data
def test_binary_and_arpa_give_identical_scores(tmp_path: Path) -> None:
    # Load speed (binary vs ARPA) is measured by benchmarks/ngram_load.py, not here.
    model = NgramModel.estimate(DATA / "ts_train.txt", 5)
    model.write_arpa(tmp_path / "m.arpa")
    model.save_binary(tmp_path / "m.bin")
    from_arpa = NgramModel.read_arpa(tmp_path / "m.arpa")
    from_bin = NgramModel.load_binary(tmp_path / "m.bin")
    lines = (DATA / "ts_test.txt").read_text(encoding="utf-8").splitlines()
    np.testing.assert_array_equal(model.score_batch(lines), from_bin.score_batch(lines))
    np.testing.assert_array_equal(model.score_batch(lines), from_arpa.score_batch(lines))


def _fail(tmp_path: Path, text: str) -> str:
    p = tmp_path / "bad.arpa"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(errors.ModelFormatError) as info:
        NgramModel.read_arpa(p)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (SMALL_ARPA.replace("-0.3\ta b\n", "oops\ta b\n"), r"line 17: expected a log10 probability, found 'oops'"),
        (SMALL_ARPA.replace("\\end\\\n", ""), r"line 2[56]: unexpected end of file .*'\\end\\'"),
        (SMALL_ARPA.replace("-0.15\ta b c\n", "-0.15\ta b d\n"), r"line 22: word 'd' of 3-gram 2 of 3 is not in the 1-grams"),
        (SMALL_ARPA.replace("ngram 1=5\n", ""), r"line 4: expected 'ngram 1=count', found order 2"),
        (SMALL_ARPA.replace("-0.3\ta b\n", "-0.3\ta b c d\n"), r"line 17: expected 2-gram 2 of 3 .*found '-0.3\ta b c d'"),
        (SMALL_ARPA.replace("-0.15\ta b c\n", "-0.15\ta b c\t-0.1\n"), r"line 22: expected 3-gram 2 of 3"),
        (SMALL_ARPA.replace("\\2-grams:", "\\3-grams:"), r"line 15: expected '\\2-grams:', found '\\3-grams:'"),
        (SMALL_ARPA.replace("\\data\\", "data"), r"unexpected end of file .*'\\data\\' header"),
        (SMALL_ARPA.replace("ngram 3=3", "ngram 3=4"), r"line 24: expected 3-gram 4 of 4 .*found ''"),
        (SMALL_ARPA.replace("ngram 3=3", "ngram 3=2"), r"line 23: expected '\\end\\' .*found '-0.5"),
        (SMALL_ARPA.replace("-0.8 b -0.2", "-0.7\ta\t-0.3"), r"line 12: duplicate 1-gram 'a'"),
        (SMALL_ARPA.replace("-1.2\tc", "0.5\tc"), r"line 13: expected a log10 probability <= 0"),
    ],
)
def test_malformed_arpa_names_the_line(tmp_path: Path, text: str, pattern: str) -> None:
    import re

    msg = _fail(tmp_path, text)
    assert re.search(pattern, msg), msg


@needs_data
def test_truncated_reference_arpa(tmp_path: Path) -> None:
    data = REF_ARPA.read_bytes()
    cut = data[: len(data) // 2]
    cut = cut[: cut.rindex(b"\n") + 1]
    line_count = cut.count(b"\n")
    msg = _fail(tmp_path, cut.decode("utf-8"))
    assert f"line {line_count + 1}: unexpected end of file" in msg
    assert "truncated" in msg


def test_binary_errors(small: NgramModel, tmp_path: Path) -> None:
    p = tmp_path / "m.bin"
    small.save_binary(p)
    data = p.read_bytes()
    assert data[:8] == b"AIGCNGRM"
    assert struct.unpack("<I", data[8:12])[0] == NGRAM_BINARY_VERSION
    other = tmp_path / "v99.bin"
    other.write_bytes(data[:8] + struct.pack("<I", 99) + data[12:])
    with pytest.raises(errors.ModelFormatError, match=r"format version 99, this build reads versions 1 to 2"):
        NgramModel.load_binary(other)
    swapped = tmp_path / "be.bin"
    swapped.write_bytes(data[:12] + data[12:16][::-1] + data[16:])
    with pytest.raises(errors.ModelFormatError, match="other byte order"):
        NgramModel.load_binary(swapped)
    short = tmp_path / "short.bin"
    short.write_bytes(data[:-10])
    with pytest.raises(errors.ModelFormatError, match=rf"size is {len(data) - 10} bytes.*truncated"):
        NgramModel.load_binary(short)
    arpa = tmp_path / "m.arpa"
    small.write_arpa(arpa)
    with pytest.raises(errors.ModelFormatError, match="magic"):
        NgramModel.load_binary(arpa)
    with pytest.raises(FileNotFoundError):
        NgramModel.load_binary(tmp_path / "missing.bin")


def test_minus_inf_and_missing_backoffs(tmp_path: Path) -> None:
    text = (
        "\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-inf\t<s>\t-0.5\n-0.5\t</s>\n-0.3\ta\n"
        "-inf\tb\n\n\\2-grams:\n-0.1\t<s> a\n\n\\end\\\n"
    )
    p = tmp_path / "inf.arpa"
    p.write_text(text, encoding="utf-8")
    m = NgramModel.read_arpa(p)
    assert m.score("a") == pytest.approx(-0.1 + -0.5, abs=1e-6)  # a's backoff is 0
    assert m.score("b") == float("-inf")
    m.write_arpa(tmp_path / "out.arpa")
    out = (tmp_path / "out.arpa").read_text(encoding="utf-8")
    assert "-inf\tb\t0\n" in out and "-inf\t<s>\t-0.5\n" in out
