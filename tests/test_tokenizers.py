"""Tokenizers: exact round trips, special tokens, incremental decoding, bundles."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_engine import ConfigError, ModelFormatError
from aigc_engine.tokenizers import (
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    load_tokenizer,
    train_tokenizer,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
SHARED_FILES = sorted(p for p in DATA.rglob("*") if p.is_file()) if DATA.is_dir() else []
#: Files above this size are round-tripped whole by the byte tokenizer and in a
#: slice of this many characters by the char and BPE tokenizers (speed).
SLICE = 500_000


def random_unicode(rng: random.Random, n: int) -> str:
    """Text mixing ASCII, Latin-1, CJK, emoji, combining marks, controls and a BOM."""
    pools = [(0x20, 0x7E), (0xA0, 0x2FF), (0x4E00, 0x9FFF), (0x1F300, 0x1FAFF), (0x300, 0x36F),
             (0x0, 0x1F), (0xE000, 0xF8FF), (0x10000, 0x10FFFF)]
    out = ["\ufeff"]
    for _ in range(n):
        lo, hi = rng.choice(pools)
        c = rng.randint(lo, hi)
        if 0xD800 <= c <= 0xDFFF:  # surrogates are not characters
            c = 0x41
        out.append(chr(c))
    out.append("\r\n\n")
    return "".join(out)


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    text = (DATA / "tinyshakespeare.txt").read_text(encoding="utf-8") if DATA.is_dir() else \
        "the quick brown fox jumps over the lazy dog\n" * 200
    return BPETokenizer.train([text[:300_000]], vocab_size=600)


@needs_data
@pytest.mark.parametrize("path", SHARED_FILES, ids=[p.name for p in SHARED_FILES])
def test_round_trip_of_every_shared_file(path: Path, bpe: BPETokenizer) -> None:
    text = path.read_text(encoding="utf-8")
    byte = ByteTokenizer()
    assert byte.decode(byte.encode(text)) == text
    part = text[:SLICE]
    char = CharTokenizer.from_text([part])
    assert char.decode(char.encode(part)) == part
    assert bpe.decode(bpe.encode(part)) == part


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_of_random_unicode(seed: int, bpe: BPETokenizer) -> None:
    text = random_unicode(random.Random(seed), 3000)
    for tok in (ByteTokenizer(), bpe, CharTokenizer("abc", byte_fallback=True),
                CharTokenizer.from_text([text])):
        ids = tok.encode(text)
        assert tok.decode(ids) == text, type(tok).__name__
        # The incremental decoder gives the same text, piece by piece.
        dec = tok.decoder()
        assert "".join(dec.push(i) for i in ids) + dec.flush() == text


def test_char_tokenizer_without_fallback_names_the_character() -> None:
    tok = CharTokenizer("ab\n")
    assert tok.encode("ab\nba") == [1, 2, 0, 2, 1]
    assert tok.eos_id == 3 and tok.vocab_size == 4 and tok.decode([1, 3, 2]) == "ab"
    with pytest.raises(ConfigError, match=r"'z' \(U\+007A\) at position 2"):
        tok.encode("abz")


def test_specials_and_ids() -> None:
    byte = ByteTokenizer()
    assert (byte.eos_id, byte.pad_id, byte.vocab_size) == (256, 257, 258)
    assert byte.decode([104, 105, 256, 257]) == "hi"
    with pytest.raises(ConfigError, match="token id 258 is outside the vocabulary of 258"):
        byte.decode([258])
    with pytest.raises(ConfigError, match="token id -1"):
        byte.decode([-1])


def test_bpe_specials_and_merges(bpe: BPETokenizer) -> None:
    assert bpe.vocab_size == 600
    assert bpe.eos_id is not None and bpe.token_bytes(bpe.eos_id) == b""
    assert bpe.token_text(bpe.eos_id) == "<|endoftext|>"
    ids = bpe.encode("the king")
    assert len(ids) < len("the king")  # merges were learnt
    assert bpe.decode(ids + [bpe.eos_id]) == "the king"
    with pytest.raises(ConfigError, match="vocab_size must be an integer >= 258"):
        BPETokenizer.train(["x"], vocab_size=10)


def test_bundle_forms_round_trip(tmp_path: Path, bpe: BPETokenizer) -> None:
    for tok in (ByteTokenizer(), CharTokenizer("xyz\n", byte_fallback=True), bpe):
        files = tok.save(tmp_path)
        spec = json.loads(json.dumps(tok.to_json()))
        again = load_tokenizer(spec, tmp_path)
        assert again == tok and files == (["tokenizer.json"] if tok.kind == "bpe" else [])
        assert again.encode("xyz zyx") == tok.encode("xyz zyx")
    with pytest.raises(ModelFormatError, match="unknown tokenizer description"):
        load_tokenizer({"kind": "sentencepiece"}, tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelFormatError, match="tokenizer.json is not a valid tokenizer.json"):
        load_tokenizer(bpe.to_json(), tmp_path)
    assert train_tokenizer("byte", []) == ByteTokenizer()
    with pytest.raises(ConfigError, match="tokenizer must be one of char, byte, bpe"):
        train_tokenizer("word", [])


def test_bpe_reloads_in_a_fresh_interpreter_without_torch(tmp_path: Path,
                                                          bpe: BPETokenizer) -> None:
    bpe.save(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(bpe.to_json()), encoding="utf-8")
    text = random_unicode(random.Random(9), 500) + " the king's crown"
    (tmp_path / "text.txt").write_text(text, encoding="utf-8", newline="")
    script = f"""
import json, sys
sys.modules["torch"] = None  # any import of torch now fails
from pathlib import Path
from aigc_engine.tokenizers import load_tokenizer
d = Path({str(tmp_path)!r})
tok = load_tokenizer(json.loads((d / "spec.json").read_text()), d)
with open(d / "text.txt", encoding="utf-8", newline="") as f:
    text = f.read()
ids = tok.encode(text)
assert tok.decode(ids) == text
print(json.dumps(ids))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == bpe.encode(text)


def test_utf8_split_over_byte_tokens_is_emitted_once_complete() -> None:
    tok = ByteTokenizer()
    dec = tok.decoder()
    pieces = [dec.push(b) for b in "é世🎉".encode()]
    assert pieces == ["", "é", "", "", "世", "", "", "", "🎉"]
    # A byte sequence that never completes becomes U+FFFD at the end, as decode gives.
    dec = tok.decoder()
    assert [dec.push(b) for b in b"a\xe4\xb8"] == ["a", "", ""]
    assert dec.flush() == "\ufffd" and tok.decode(b"a\xe4\xb8") == "a\ufffd"
