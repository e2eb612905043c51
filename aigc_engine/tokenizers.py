"""Tokenizers of the text generators: char, byte and byte-level BPE, one interface.

Every tokenizer maps text to integer ids and back, exactly: for a byte or BPE
tokenizer ``decode(encode(x)) == x`` for any Unicode text (newlines and a
leading BOM included); a char tokenizer does the same for text within its
alphabet, or for any text with ``byte_fallback=True`` (characters outside the
alphabet become their UTF-8 bytes, as SentencePiece's byte fallback).

Each token stands for a byte string (:meth:`Tokenizer.token_bytes`; empty for
special tokens), and text is the UTF-8 decoding of the concatenated bytes with
invalid sequences replaced by U+FFFD. :meth:`Tokenizer.decoder` gives the
incremental form used while streaming: a character split over several byte
tokens is emitted once complete, and the pieces always join to ``decode`` of
the same ids.

Tokenizers are saved in a bundle (:meth:`Tokenizer.to_json`, plus
``tokenizer.json`` for BPE) and loaded with :func:`load_tokenizer`, which never
imports torch. BPE is trained and run by Hugging Face ``tokenizers``.
"""

from __future__ import annotations

import abc
import codecs
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .errors import ConfigError, ModelFormatError

__all__ = [
    "BPETokenizer",
    "ByteTokenizer",
    "CharTokenizer",
    "Decoder",
    "Tokenizer",
    "load_tokenizer",
    "train_tokenizer",
]

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
BPE_FILE = "tokenizer.json"
TOKENIZERS = ("char", "byte", "bpe")


class Decoder:
    """Incremental detokenisation: ``push(id)`` returns the text completed by that token.

    Bytes that do not yet form a whole UTF-8 character are held until they do;
    :meth:`flush` returns what is left (invalid bytes as U+FFFD). The pieces
    always join to ``tokenizer.decode(ids)``.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._bytes = tokenizer.token_bytes
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text that this token completes (often one piece, sometimes empty)."""
        return self._utf8.decode(self._bytes(token_id))

    def push_many(self, token_ids: Any) -> str:
        """The text a run of tokens completes (as pushing them one by one)."""
        return self._utf8.decode(b"".join(self._bytes(int(t)) for t in token_ids))

    def flush(self) -> str:
        """The end of the text: held bytes that never completed a character."""
        return self._utf8.decode(b"", final=True)


class Tokenizer(abc.ABC):
    """Text to ids and back. Subclasses define the vocabulary and its bytes."""

    kind: ClassVar[str]

    #: Id of the end-of-text token, or None.
    eos_id: int | None = None
    #: Id of the padding token, or None.
    pad_id: int | None = None

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids (special tokens included)."""

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (no special tokens added)."""

    @abc.abstractmethod
    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one id stands for (empty for special tokens)."""

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (special tokens are dropped)."""
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def decoder(self, prefix: str = "") -> Decoder:
        """A fresh incremental decoder (see :class:`Decoder`) for text that follows
        ``prefix`` (a tokenizer whose spacing depends on what precedes may use it)."""
        return Decoder(self)

    def token_text(self, token_id: int) -> str:
        """A readable form of one token (its bytes as text, or the special token's name)."""
        raw = self.token_bytes(token_id)
        if not raw and token_id in self.special_tokens().values():
            return {v: k for k, v in self.special_tokens().items()}[token_id]
        return raw.decode("utf-8", errors="backslashreplace")

    def special_tokens(self) -> dict[str, int]:
        """Names and ids of the special tokens."""
        out = {}
        if self.eos_id is not None:
            out[EOS_TOKEN] = self.eos_id
        if self.pad_id is not None:
            out[PAD_TOKEN] = self.pad_id
        return out

    @abc.abstractmethod
    def to_json(self) -> dict[str, Any]:
        """What the bundle's config records (``{"kind": ..., ...}``); JSON-compatible."""

    def save(self, directory: Path) -> list[str]:
        """Write payload files into a bundle ``directory``; returns their names."""
        return []

    def _check_id(self, token_id: int) -> None:
        if not 0 <= token_id < self.vocab_size:
            raise ConfigError(
                f"token id {token_id} is outside the vocabulary of {self.vocab_size} tokens")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokenizer) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_json(), sort_keys=True))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} vocab_size={self.vocab_size}>"


class _TableTokenizer(Tokenizer):
    """A tokenizer whose ids index a table of byte strings (``_table``)."""

    _table: list[bytes]

    @property
    def vocab_size(self) -> int:
        return len(self._table)

    def token_bytes(self, token_id: int) -> bytes:
        if 0 <= token_id < len(self._table):
            return self._table[token_id]
        self._check_id(int(token_id))
        raise AssertionError("unreachable")


class ByteTokenizer(Tokenizer):
    """Ids 0-255 are the bytes of the UTF-8 text; 256 is end-of-text, 257 padding."""

    kind: ClassVar[str] = "byte"

    def __init__(self) -> None:
        self.eos_id = 256
        self.pad_id = 257
        self._table = [bytes([b]) for b in range(256)] + [b"", b""]

    @property
    def vocab_size(self) -> int:
        return 258

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def token_bytes(self, token_id: int) -> bytes:
        try:
            return self._table[token_id]
        except (IndexError, TypeError):
            self._check_id(int(token_id))
            raise

    def decode(self, ids: Iterable[int]) -> str:
        data = bytearray()
        for i in ids:
            i = int(i)
            if i < 256:
                if i < 0:
                    self._check_id(i)
                data.append(i)
            else:
                self._check_id(i)
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> dict[str, Any]:
        return {"kind": "byte"}


class CharTokenizer(_TableTokenizer):
    """One id per Unicode code point of an alphabet (sorted), then end-of-text.

    Characters outside the alphabet: with ``byte_fallback`` they are encoded as
    their UTF-8 bytes (256 extra ids after the alphabet), so any text round
    trips; without it, :meth:`encode` raises ``ConfigError`` naming the
    character.
    """

    kind: ClassVar[str] = "char"

    def __init__(self, alphabet: Iterable[str], *, byte_fallback: bool = False) -> None:
        chars = sorted(set(alphabet))
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ConfigError(f"a char tokenizer's alphabet holds single characters, got {c!r}")
        if not chars:
            raise ConfigError("a char tokenizer needs a non-empty alphabet")
        self.alphabet = "".join(chars)
        self.byte_fallback = bool(byte_fallback)
        self._index = {c: i for i, c in enumerate(chars)}
        self._table = [c.encode("utf-8") for c in chars]
        if self.byte_fallback:
            self._table += [bytes([b]) for b in range(256)]
        self.eos_id = len(self._table)
        self._table.append(b"")

    @classmethod
    def from_text(cls, texts: Iterable[str], *, byte_fallback: bool = False) -> CharTokenizer:
        """The alphabet of the given texts (a line break is always included)."""
        chars: set[str] = {"\n"}
        for t in texts:
            chars.update(t)
        return cls(chars, byte_fallback=byte_fallback)

    def encode(self, text: str) -> list[int]:
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            pass
        out: list[int] = []
        base = len(self.alphabet)
        for pos, c in enumerate(text):
            i = index.get(c)
            if i is not None:
                out.append(i)
            elif self.byte_fallback:
                out.extend(base + b for b in c.encode("utf-8"))
            else:
                raise ConfigError(
                    f"character {c!r} (U+{ord(c):04X}) at position {pos} is not in this char "
                    f"tokenizer's alphabet of {len(self.alphabet)} characters"
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {"kind": "char", "alphabet": self.alphabet, "byte_fallback": self.byte_fallback}


def _gpt2_byte_map() -> dict[str, int]:
    """The printable stand-in character of each byte in byte-level BPE vocabularies."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


class BPETokenizer(_TableTokenizer):
    """Byte-level BPE (GPT-2 style) run by Hugging Face ``tokenizers``.

    Trained with :meth:`train`; saved as ``tokenizer.json`` in the bundle.
    Lossless for any Unicode text (no prefix space, no normalisation).
    """

    kind: ClassVar[str] = "bpe"

    def __init__(self, backend: Any) -> None:
        self._tok = backend
        vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        self.eos_id = vocab.get(EOS_TOKEN)
        self.pad_id = vocab.get(PAD_TOKEN)
        byte_of = _gpt2_byte_map()
        table: list[bytes] = [b""] * len(vocab)
        specials = {EOS_TOKEN, PAD_TOKEN}
        for piece, i in vocab.items():
            if piece in specials:
                continue
            try:
                table[i] = bytes(byte_of[c] for c in piece)
            except KeyError:
                raise ModelFormatError(
                    f"BPE token {piece!r} (id {i}) is not a byte-level token") from None
        self._table = table

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int, min_frequency: int = 2
              ) -> BPETokenizer:
        """Learn a byte-level BPE vocabulary of ``vocab_size`` ids (256 bytes + merges + 2)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 258:
            raise ConfigError(f"BPE vocab_size must be an integer >= 258, got {vocab_size!r}")
        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency,
            special_tokens=[EOS_TOKEN, PAD_TOKEN],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_file(cls, path: Path) -> BPETokenizer:
        """Load a ``tokenizer.json`` (ModelFormatError naming the file if it is not one)."""
        from tokenizers import Tokenizer as HFTokenizer

        try:
            tok = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type
            raise ModelFormatError(f"{path} is not a valid tokenizer.json: {exc}") from None
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "bpe", "vocab_size": self.vocab_size, "file": BPE_FILE}

    def save(self, directory: Path) -> list[str]:
        self._tok.save(str(directory / BPE_FILE))
        return [BPE_FILE]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BPETokenizer) and self._table == other._table

    def __hash__(self) -> int:
        return hash((self.kind, len(self._table)))


def train_tokenizer(kind: str, texts: Sequence[str], *, vocab_size: int = 0,
                    byte_fallback: bool = False) -> Tokenizer:
    """A tokenizer of ``kind`` ("char", "byte" or "bpe") fitted to ``texts``."""
    if kind == "char":
        return CharTokenizer.from_text(texts, byte_fallback=byte_fallback)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        return BPETokenizer.train(texts, vocab_size=vocab_size)
    raise ConfigError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")


def load_tokenizer(spec: Any, directory: Path | None = None) -> Tokenizer:
    """The tokenizer a bundle records: ``spec`` from :meth:`Tokenizer.to_json`, payload
    files (``tokenizer.json`` for BPE) read from ``directory``."""
    if not isinstance(spec, dict) or spec.get("kind") not in TOKENIZERS:
        raise ModelFormatError(f"unknown tokenizer description {spec!r}; expected kind in "
                               f"{', '.join(TOKENIZERS)}")
    kind = spec["kind"]
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        alphabet = spec.get("alphabet")
        if not isinstance(alphabet, str) or not alphabet:
            raise ModelFormatError(f"char tokenizer without a valid alphabet: {spec!r}")
        try:
            return CharTokenizer(alphabet, byte_fallback=bool(spec.get("byte_fallback", False)))
        except ConfigError as exc:
            raise ModelFormatError(f"bad char tokenizer: {exc}") from None
    if directory is None:
        raise ModelFormatError("a BPE tokenizer needs the bundle directory holding tokenizer.json")
    tok = BPETokenizer.from_file(directory / str(spec.get("file", BPE_FILE)))
    expected = spec.get("vocab_size")
    if expected is not None and expected != tok.vocab_size:
        raise ModelFormatError(
            f"{directory / BPE_FILE} has {tok.vocab_size} tokens, the manifest says {expected}")
    return tok
