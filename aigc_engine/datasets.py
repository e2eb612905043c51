"""Data sources: named datasets from plugins, and plain paths.

``Engine.dataset(source)`` resolves a source string: a registered dataset name
(``tinyshakespeare``), then a path handled by a plugin's path loader (image
folders), then a text file (one document or sentence a line) or a folder of
``.txt`` files.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, UnknownDatasetError

TEXT_SUFFIXES = (".txt", ".text")


class Dataset:
    """Base class of datasets; ``modality`` is "text" or "image"."""

    modality: str = ""
    name: str = ""


class TextDataset(Dataset):
    """Lines of text, from files or from memory.

    File-backed datasets expose ``paths`` so compiled code can read the files
    directly; ``lines()`` works for both kinds.
    """

    modality = "text"

    def __init__(self, *, name: str, paths: Sequence[Path] = (),
                 lines: Sequence[str] | None = None) -> None:
        if lines is None and not paths:
            raise ConfigError(f"dataset {name!r} has no files and no lines")
        self.name = name
        self.paths = tuple(Path(p) for p in paths)
        self._lines = list(lines) if lines is not None else None

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, name: str = "<lines>") -> TextDataset:
        """An in-memory dataset (each item one line; newlines inside are kept as given)."""
        return cls(name=name, lines=[line.rstrip("\n") for line in lines])

    @property
    def in_memory(self) -> bool:
        """True when the lines are held in memory rather than in files."""
        return self._lines is not None

    def lines(self) -> Iterator[str]:
        """Every line, without its newline (and without a UTF-8 byte-order mark at the start
        of a file)."""
        if self._lines is not None:
            yield from self._lines
            return
        for path in self.paths:
            # utf-8-sig: a byte-order mark at the start of a file is not text.
            with open(path, encoding="utf-8-sig", newline="") as fh:
                number = 0
                try:
                    for number, line in enumerate(fh, 1):  # noqa: B007 - read after the loop
                        yield line.rstrip("\r\n")
                except UnicodeDecodeError as exc:
                    raise ConfigError(
                        f"{str(path)!r} is not UTF-8 text: invalid byte after line {number} "
                        f"({exc.reason}); save it as UTF-8") from None

    def text(self) -> str:
        """The whole dataset as one string (lines joined by newlines)."""
        return "\n".join(self.lines())

    def size_bytes(self) -> int:
        """Total size in bytes (of the files, or of the lines in UTF-8)."""
        if self._lines is not None:
            return sum(len(line.encode("utf-8")) + 1 for line in self._lines)
        return sum(p.stat().st_size for p in self.paths)

    def __repr__(self) -> str:
        where = f"{len(self.paths)} file(s)" if self._lines is None else \
            f"{len(self._lines)} line(s)"
        return f"<TextDataset {self.name!r}: {where}>"


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A data source registered through ``aigc_register_datasets``.

    ``loader()`` returns a :class:`Dataset` for a named dataset. With
    ``matches`` set, the spec handles paths instead: ``matches(path)`` says
    whether it recognises one, and ``loader(path)`` loads it.
    """

    name: str
    modality: str
    loader: Callable[..., Dataset]
    description: str = ""
    matches: Callable[[Path], bool] | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"dataset name must be a non-empty string, got {self.name!r}")
        if self.modality not in ("text", "image"):
            raise ConfigError(
                f"dataset {self.name!r}: modality must be 'text' or 'image', got {self.modality!r}"
            )
        if not callable(self.loader):
            raise ConfigError(f"dataset {self.name!r}: loader must be callable")


def text_path_dataset(path: Path) -> TextDataset:
    """A text file, or a folder of text files (``.txt``/``.text``, sorted by name)."""
    if path.is_file():
        return TextDataset(name=str(path), paths=[path])
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower()
                       in TEXT_SUFFIXES)
        if not files:
            raise UnknownDatasetError(
                f"folder {str(path)!r} holds no text files ({', '.join(TEXT_SUFFIXES)})"
            )
        return TextDataset(name=str(path), paths=files)
    raise UnknownDatasetError(f"{str(path)!r} is neither a file nor a folder")


def resolve(source: Any, specs: dict[str, tuple[DatasetSpec, str]], *,
            modality: str | None = None) -> Dataset:
    """Turn a dataset name, a path, a Dataset or a list of lines into a Dataset."""
    if isinstance(source, Dataset):
        return source
    if isinstance(source, (list, tuple)) and all(isinstance(s, str) for s in source):
        return TextDataset.from_lines(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"data must be a dataset name, a path, a Dataset or a list of lines, "
            f"got {type(source).__name__}"
        )
    text = os.fspath(source)
    entry = specs.get(text)
    if entry is not None and entry[0].matches is None:
        spec = entry[0]
        if modality is not None and spec.modality != modality:
            raise ConfigError(f"dataset {text!r} holds {spec.modality}, not {modality}")
        return spec.loader()
    path = Path(text).expanduser()
    if not path.exists():
        names = sorted(n for n, (s, _) in specs.items() if s.matches is None)
        raise UnknownDatasetError(
            f"no dataset named {text!r} and no such file or folder; "
            f"datasets: {', '.join(names) or '(none)'}"
        )
    for spec, _plugin in specs.values():
        if spec.matches is not None and (modality is None or spec.modality == modality) \
                and spec.matches(path):
            return spec.loader(path)
    if modality not in (None, "text"):
        raise UnknownDatasetError(f"no installed plugin reads {str(path)!r} as {modality} data")
    return text_path_dataset(path)


def as_text_dataset(data: Any) -> TextDataset:
    """For generators: accept a TextDataset, a path or a list of lines."""
    dataset = resolve(data, {}, modality="text")
    if not isinstance(dataset, TextDataset):
        raise ConfigError(f"expected text data, got {type(dataset).__name__}")
    return dataset
