"""Data sources: named datasets, files, folders, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_engine import ConfigError, Engine, TextDataset, UnknownDatasetError


@pytest.fixture
def engine() -> Engine:
    return Engine(plugins=["datasets", "template"])


def test_tinyshakespeare_is_shipped_in_the_package(engine: Engine) -> None:
    data = engine.dataset("tinyshakespeare")
    assert isinstance(data, TextDataset)
    lines = list(data.lines())
    assert len(lines) == 40000
    assert lines[0] == "First Citizen:"
    assert data.size_bytes() == 1115394


def test_text_file_and_folder(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "b.txt").write_text("second\nthird\n")
    (tmp_path / "a.txt").write_text("first\r\n")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    folder = engine.dataset(str(tmp_path))
    assert isinstance(folder, TextDataset)
    assert list(folder.lines()) == ["first", "second", "third"]
    single = engine.dataset(tmp_path / "b.txt")
    assert list(single.lines()) == ["second", "third"]  # type: ignore[attr-defined]


def test_lines_and_datasets_pass_through(engine: Engine) -> None:
    data = engine.dataset(["a b", "c"])
    assert list(data.lines()) == ["a b", "c"]  # type: ignore[attr-defined]
    assert engine.dataset(data) is data


def test_errors_name_the_problem(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(UnknownDatasetError, match="no dataset named 'nope'.*tinyshakespeare"):
        engine.dataset("nope")
    with pytest.raises(UnknownDatasetError, match="holds no text files"):
        engine.dataset(tmp_path)
    with pytest.raises(ConfigError, match="data must be"):
        engine.dataset(42)
    with pytest.raises(ConfigError, match="holds text, not image"):
        engine.dataset("tinyshakespeare", modality="image")


def test_a_byte_order_mark_is_not_part_of_the_first_word(engine: Engine, tmp_path: Path) -> None:
    text = "the cat sat\nthe dog sat\na cat ran\n"
    plain = tmp_path / "plain.txt"
    plain.write_text(text, encoding="utf-8")
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())
    data = engine.dataset(str(bom))
    assert next(iter(data.lines())) == "the cat sat"  # type: ignore[attr-defined]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"\xef\xbb\xbfthe first\n")
    assert list(engine.dataset(str(folder)).lines()) == ["the first"]  # type: ignore[attr-defined]
    from aigc_engine.ngram import NgramModel

    for source in (str(bom), bom):  # the core reads the file itself
        lm = NgramModel.estimate(source, 2, discount_fallback=[0.5, 1.0, 1.5])
        assert "\ufeffthe" not in lm and "the" in lm
        ref = NgramModel.estimate(str(plain), 2, discount_fallback=[0.5, 1.0, 1.5])
        assert lm.counts == ref.counts
        assert lm.perplexity(bom) == ref.perplexity(plain)


def test_a_text_file_that_is_not_utf8_is_a_config_error(engine: Engine, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"caf\xe9 au lait\n")
    with pytest.raises(ConfigError, match=r"latin1\.txt' is not UTF-8 text: invalid byte after "
                       r"line 0 .*save it as UTF-8"):
        list(engine.dataset(str(bad)).lines())  # type: ignore[attr-defined]
