"""N-gram files that lie, overflow or are damaged: refused with the file and the line (issue 14)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from aigc_engine import errors
from aigc_engine._core import NgramModel

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


def _arpa(tmp_path: Path, text: str | bytes, name: str = "m.arpa") -> Path:
    p = tmp_path / name
    if isinstance(text, str):
        p.write_text(text, encoding="utf-8")
    else:
        p.write_bytes(text)
    return p


def _refused(path: Path) -> str:
    with pytest.raises(errors.ModelFormatError) as info:
        NgramModel.read_arpa(path)
    return str(info.value)


# -- counts that lie ------------------------------------------------------------------------

@pytest.mark.parametrize("count", ["250000000", str(2**40), str(2**64 - 1)])
def test_a_count_the_file_cannot_hold_is_refused_before_allocating(tmp_path: Path,
                                                                   count: str) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("ngram 1=5", f"ngram 1={count}"))
    size = len(p.read_bytes())
    assert _refused(p) == (f"{p}: line 4: 'ngram 1={count}' declares more 1-grams than a file of "
                           f"{size} bytes can hold (a wrong count?)")


def test_a_count_of_a_higher_order_that_lies_names_its_line(tmp_path: Path) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("ngram 3=3", "ngram 3=99999999"))
    assert "line 6: 'ngram 3=99999999' declares more 3-grams than a file of" in _refused(p)


def test_a_count_beyond_64_bits_is_a_format_error(tmp_path: Path) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("ngram 1=5", "ngram 1=" + "9" * 30))
    assert "line 4: expected 'ngram 1=count', found 'ngram 1=999" in _refused(p)


# -- values ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "Infinity", "+inf", "-inf", "nan", "1e39", "-1e39"])
def test_non_finite_backoffs_are_refused(tmp_path: Path, value: str) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("-0.7\ta\t-0.3", f"-0.7\ta\t{value}"))
    message = _refused(p)
    assert "line 11: expected a " in message and f"found '{value}'" in message
    assert "log10 backoff" in message


@pytest.mark.parametrize("value", ["inf", "nan", "1e39", "0.5"])
def test_bad_probabilities_are_refused(tmp_path: Path, value: str) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("-1.2\tc", f"{value}\tc"))
    message = _refused(p)
    assert message.startswith(f"{p}: line 13: expected a log10 probability")
    assert f"found '{value}'" in message


def test_minus_inf_probability_and_denormals_still_load(tmp_path: Path) -> None:
    p = _arpa(tmp_path, SMALL_ARPA.replace("-1.2\tc", "-inf\tc").replace("-0.2\t<s> a b",
                                                                         "-1e-40\t<s> a b"))
    model = NgramModel.read_arpa(p)
    assert model.score("c", bos=False, eos=False) == -math.inf


# An ARPA file whose missing context "c a" backs off to log10 p = bo(c) + p(a) = 0.9 - 0.1 > 0.
POSITIVE_BLANK = SMALL_ARPA.replace("-1.2\tc\n", "-1.2\tc\t0.9\n").replace(
    "-0.7\ta\t-0.3", "-0.1\ta\t-0.3")


def test_blank_entries_never_get_a_positive_probability(tmp_path: Path) -> None:
    model = NgramModel.read_arpa(_arpa(tmp_path, POSITIVE_BLANK))
    out = tmp_path / "out.arpa"
    model.write_arpa(out)
    text = out.read_text(encoding="utf-8")
    assert "0\tc a\t0\n" in text  # probability 1 at most, not 10**0.8
    back = NgramModel.read_arpa(out)  # the export reads back
    assert back.counts == model.counts
    for line in out.read_text().splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] not in ("", "ngram"):
            assert float(fields[0]) <= 0, line


# -- UTF-8 -------------------------------------------------------------------------------------

def test_non_utf8_bytes_are_refused_with_the_line(tmp_path: Path) -> None:
    data = SMALL_ARPA.encode().replace(b"-1.2\tc\n", b"-1.2\tcaf\xe9\n")
    p = _arpa(tmp_path, data)
    assert _refused(p) == (f"{p}: line 13: invalid UTF-8 (byte 0xE9 at column 9); ARPA files "
                           "must be UTF-8")


def test_a_format_error_on_a_line_with_control_bytes_keeps_its_message(tmp_path: Path) -> None:
    data = SMALL_ARPA.replace("-0.3\ta b\n", "oo\x01ps\ta b\n")
    message = _refused(_arpa(tmp_path, data))
    assert "line 17: expected a log10 probability, found 'oo\\x01ps'" in message


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    text = SMALL_ARPA[SMALL_ARPA.index("\\data\\"):]  # the header line comes first
    plain = NgramModel.read_arpa(_arpa(tmp_path, text))
    bom = NgramModel.read_arpa(_arpa(tmp_path, b"\xef\xbb\xbf" + text.encode(), "bom.arpa"))
    assert bom.counts == plain.counts
    assert bom.score("a b c") == plain.score("a b c")


# -- top_k and <s> -----------------------------------------------------------------------------

def test_top_k_never_returns_bos_even_with_an_explicit_bos_bigram(tmp_path: Path) -> None:
    text = SMALL_ARPA.replace("ngram 2=3", "ngram 2=4").replace(
        "-0.4\t<s> a\t-0.1\n", "-0.4\t<s> a\t-0.1\n-0.01\ta <s>\n")
    model = NgramModel.read_arpa(_arpa(tmp_path, text))
    for k in (1, 2, model.vocab_size):
        ids, _ = model.top_k(["a"], k, allow_unk=True)
        assert NgramModel.bos_id not in ids.tolist()
    ids, _ = model.top_k(["a"], model.vocab_size, allow_unk=True)
    assert sorted(ids.tolist()) == [i for i in range(model.vocab_size) if i != NgramModel.bos_id]
    for seed in range(30):
        out = model.generate(["a"], 3, top_k=1, seed=seed, stop_at_eos=False, allow_unk=True)
        assert NgramModel.bos_id not in out.tolist()


# -- char mode survives ARPA -------------------------------------------------------------------

def test_a_char_mode_model_exported_to_arpa_reloads_in_char_mode(tmp_path: Path) -> None:
    model = NgramModel.estimate(["hello world", "yield the field", "eye see"], 3, mode="char",
                                discount_fallback=[0.5, 1.0, 1.5])
    out = tmp_path / "char.arpa"
    model.write_arpa(out)
    assert out.read_text(encoding="utf-8").startswith(
        "# aigc-engine n-gram model: tokenizer=char\n\n\\data\\\n")
    back = NgramModel.read_arpa(out)
    assert back.mode == "char"
    assert back.tokenize("ye s") == ["y", "e", "\u2581", "s"]
    assert back.score("yield") == pytest.approx(model.score("yield"), abs=1e-6)
    word_model = NgramModel.estimate(["a b", "b a"], 2, discount_fallback=[0.5, 1.0, 1.5])
    word_model.write_arpa(tmp_path / "word.arpa")
    assert (tmp_path / "word.arpa").read_text().startswith("\\data\\\n")  # as KenLM writes
    assert NgramModel.read_arpa(tmp_path / "word.arpa").mode == "word"


def test_a_bad_mode_header_is_refused(tmp_path: Path) -> None:
    p = _arpa(tmp_path, "# aigc-engine n-gram model: tokenizer=bytes\n" + SMALL_ARPA)
    assert "line 1: expected tokenizer=word or tokenizer=char" in _refused(p)


# -- the binary format validates content -------------------------------------------------------

class Layout:
    """Offsets of the arrays of a binary model file (csrc/ngram/binary.cpp)."""

    def __init__(self, data: bytes) -> None:
        self.version, _, self.order, self.flags = struct.unpack_from("<4I", data, 8)
        v, arena = struct.unpack_from("<2Q", data, 24)
        self.counts = list(struct.unpack_from(f"<{self.order}Q", data, 40))
        pos = 40 + 8 * self.order + (v + 1) * 8 + arena
        pos += (8 - pos % 8) % 8
        self.levels: list[dict[str, int]] = []
        for k, c in enumerate(self.counts):
            top = k + 1 == self.order
            level = {"word": pos}
            pos += 4 * c
            if not top:
                level["child"] = pos
                pos += 4 * (c + 1)
            level["prob"] = pos
            pos += 4 * c
            if not top:
                level["backoff"] = pos
                pos += 4 * c
            pos += (8 - (pos - level["word"]) % 8) % 8
            self.levels.append(level)
        self.end = pos


@pytest.fixture()
def binary(tmp_path: Path) -> bytes:
    model = NgramModel.estimate(["the cat sat", "the dog sat", "a cat ran", "the cat ran"], 3,
                                discount_fallback=[0.5, 1.0, 1.5])
    model.save_binary(tmp_path / "m.bin")
    return (tmp_path / "m.bin").read_bytes()


def _as_v1(data: bytes) -> bytearray:
    """The same model in format version 1 (no checksum), to reach the content checks."""
    out = bytearray(data[:-8])
    struct.pack_into("<I", out, 8, 1)
    return out


def _load(tmp_path: Path, data: bytes | bytearray) -> str:
    p = tmp_path / "t.bin"
    p.write_bytes(bytes(data))
    with pytest.raises(errors.ModelFormatError) as info:
        NgramModel.load_binary(p)
    return str(info.value)


def test_binary_files_carry_a_checksum(binary: bytes, tmp_path: Path) -> None:
    layout = Layout(binary)
    assert layout.version == 2 and layout.end + 8 == len(binary)
    for offset in (20, layout.levels[1]["prob"], layout.levels[2]["word"], len(binary) - 1):
        data = bytearray(binary)
        data[offset] ^= 0x01
        assert "the checksum does not match the content (damaged file)" in _load(tmp_path, data) \
            or "unknown flags" in _load(tmp_path, data)
    # Version 1 files (no checksum) still load.
    p = tmp_path / "v1.bin"
    p.write_bytes(bytes(_as_v1(binary)))
    assert NgramModel.load_binary(p).counts == NgramModel.load_binary(tmp_path / "m.bin").counts


def test_a_flipped_mode_flag_is_refused(binary: bytes, tmp_path: Path) -> None:
    data = bytearray(binary)
    struct.pack_into("<I", data, 20, Layout(binary).flags ^ 1)  # word -> char
    assert "checksum does not match" in _load(tmp_path, data)
    v1 = _as_v1(binary)
    struct.pack_into("<I", v1, 20, Layout(binary).flags ^ 1)
    assert "cannot be a token of a char-mode model" in _load(tmp_path, v1)


def _children(data: bytearray, layout: Layout, k: int) -> tuple[int, list[int]]:
    """(offset of level k+1's words, child index of level k) for the first parent with 2+ children."""
    c = layout.counts[k]
    child = list(struct.unpack_from(f"<{c + 1}I", data, layout.levels[k]["child"]))
    for i in range(c):
        if child[i + 1] - child[i] >= 2:
            return layout.levels[k + 1]["word"] + 4 * child[i], child
    raise AssertionError("no parent with two children")


def test_unsorted_and_duplicated_children_are_refused(binary: bytes, tmp_path: Path) -> None:
    layout = Layout(binary)
    v1 = _as_v1(binary)
    at, _ = _children(v1, layout, 0)
    a, b = struct.unpack_from("<2I", v1, at)
    swapped = bytearray(v1)
    struct.pack_into("<2I", swapped, at, b, a)
    assert "the children of a 1-gram are not sorted or repeat a word at order 2" in \
        _load(tmp_path, swapped)
    duplicated = bytearray(v1)
    struct.pack_into("<2I", duplicated, at, a, a)
    assert "not sorted or repeat a word at order 2" in _load(tmp_path, duplicated)


@pytest.mark.parametrize(("value", "message"), [
    (math.nan, "a log10 probability is NaN or above 0 at order 2"),
    (math.inf, "a log10 probability is NaN or above 0 at order 2"),
    (0.25, "a log10 probability is NaN or above 0 at order 2"),
])
def test_bad_probabilities_in_a_binary_are_refused(binary: bytes, tmp_path: Path, value: float,
                                                   message: str) -> None:
    layout = Layout(binary)
    v1 = _as_v1(binary)
    struct.pack_into("<f", v1, layout.levels[1]["prob"], value)
    assert message in _load(tmp_path, v1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_backoffs_in_a_binary_are_refused(binary: bytes, tmp_path: Path,
                                                     value: float) -> None:
    layout = Layout(binary)
    v1 = _as_v1(binary)
    struct.pack_into("<f", v1, layout.levels[0]["backoff"] + 4 * 3, value)
    assert "a log10 backoff is not finite at order 1" in _load(tmp_path, v1)


def test_non_utf8_words_in_a_binary_are_refused(binary: bytes, tmp_path: Path) -> None:
    v1 = _as_v1(binary)
    layout = Layout(binary)
    v = struct.unpack_from("<Q", v1, 24)[0]
    arena_at = 40 + 8 * layout.order + (v + 1) * 8
    offsets = struct.unpack_from(f"<{v + 1}Q", v1, 40 + 8 * layout.order)
    v1[arena_at + offsets[3]] = 0xFF  # the first byte of word 3
    assert "word 3 is not valid UTF-8" in _load(tmp_path, v1)


def test_a_valid_binary_still_loads_and_scores(binary: bytes, tmp_path: Path) -> None:
    p = tmp_path / "ok.bin"
    p.write_bytes(binary)
    model = NgramModel.load_binary(p)
    scores = model.score_batch(["the cat sat", "a dog ran"])
    assert np.all(np.isfinite(scores)) and np.all(scores < 0)


# -- arguments the bindings get: clear errors, not pybind11's listing --------------------------

def test_text_arguments_that_are_not_utf8_name_the_parameter(tmp_path: Path) -> None:
    model = NgramModel.read_arpa(_arpa(tmp_path, SMALL_ARPA))
    for call, name in ((lambda: model.score("caf\udce9"), "sentence"),
                       (lambda: model.tokenize("caf\udce9"), "line"),
                       (lambda: model.index("caf\udce9"), "word"),
                       (lambda: model.ids("caf\udce9"), "line"),
                       (lambda: model.next_logprobs(["caf\udce9"]), "a context word"),
                       (lambda: NgramModel.estimate(["caf\udce9"], 2), "a line")):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(f"{name} is not valid text: it holds a lone surrogate")
    with pytest.raises(ValueError, match="sentence 1 is not valid text"):
        model.score_batch(["a b", "caf\udce9"])
    assert ("caf\udce9" in model) is False


def test_context_ids_of_the_wrong_type_or_size_are_clear(tmp_path: Path) -> None:
    model = NgramModel.read_arpa(_arpa(tmp_path, SMALL_ARPA))
    with pytest.raises(TypeError, match="context items must be str words or int ids, got float"):
        model.next_logprobs([1.5])
    with pytest.raises(TypeError, match="got bool"):
        model.next_logprobs([True])
    with pytest.raises(IndexError, match=r"word id 100000000000000000000 is outside the "
                       "vocabulary of 6 words"):
        model.next_logprobs([10**20])
    with pytest.raises(TypeError, match="context must be a sequence of words or ids, not a str"):
        model.next_logprobs("a b")
    assert model.next_logprobs([np.int64(3)]).shape == (6,)


# -- found by scripts/fuzz_readers.py: words a tokenizer can never produce ---------------------

def test_an_arpa_word_holding_a_separator_is_refused(tmp_path: Path) -> None:
    text = SMALL_ARPA.replace("-1.2\tc\n", "-1.2\tc\x00d\n")
    assert ("line 13: word 'c\\x00d' cannot be a token of a word-mode model (it holds a CR or "
            "NUL separator)") in _refused(_arpa(tmp_path, text))


def test_a_char_mode_arpa_word_of_several_characters_is_refused(tmp_path: Path) -> None:
    text = "# aigc-engine n-gram model: tokenizer=char\n" + SMALL_ARPA.replace("-1.2\tc\n",
                                                                            "-1.2\tcd\n")
    text = text.replace("\tb c\t", "\tb cd\t").replace("\ta b c\n", "\ta b cd\n").replace(
        "\tc a b\n", "\tcd a b\n")
    assert ("line 14: word 'cd' cannot be a token of a char-mode model (one character each, or "
            "<unk> <s> </s>)") in _refused(_arpa(tmp_path, text))
