"""Bounded-memory estimation: the same ARPA bytes as in memory, spill files
cleaned up after success and failure, a clear error on a full temporary disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aigc_engine._core import CoreError, NgramModel, parse_memory_size

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TRAIN = DATA / "ts_train.txt"
needs_data = pytest.mark.skipif(not TRAIN.is_file(), reason=f"shared data not found at {DATA}")


def arpa_bytes(model: NgramModel, path: Path) -> bytes:
    model.write_arpa(path)
    return path.read_bytes()


@needs_data
@pytest.mark.parametrize("order", [3, 5])
def test_bounded_equals_in_memory_byte_for_byte(tmp_path: Path, order: int) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    expected = arpa_bytes(NgramModel.estimate(TRAIN, order), tmp_path / "mem.arpa")
    bounded = NgramModel.estimate(TRAIN, order, memory="2M", temp_dir=spill)
    stats = bounded.estimate_stats
    assert stats is not None
    assert stats["spill_runs"] >= 8, stats  # the budget forces several runs per stage
    assert arpa_bytes(bounded, tmp_path / "bounded.arpa") == expected
    # Streaming straight to ARPA (the model never held) gives the same bytes.
    info = NgramModel.estimate_arpa(TRAIN, tmp_path / "stream.arpa", order, memory="2M",
                                    temp_dir=spill)
    assert info["spill_runs"] >= 8
    assert (tmp_path / "stream.arpa").read_bytes() == expected
    assert list(spill.iterdir()) == []  # every spill file and directory removed


@needs_data
@pytest.mark.parametrize("order", [3, 5])
def test_spilled_probabilities_give_the_same_bytes(tmp_path: Path, order: int) -> None:
    # Past 60% of the budget for two adjacent orders, the probabilities spill
    # too: 512K spills every order from 2; 1M keeps the lower orders in memory.
    spill = tmp_path / "spill"
    spill.mkdir()
    for kwargs in ({}, {"prune": [0, 1, 1, 2, 2][:order]}):
        expected = arpa_bytes(NgramModel.estimate(TRAIN, order, **kwargs),  # type: ignore[arg-type]
                              tmp_path / "mem.arpa")
        m = NgramModel.estimate(TRAIN, order, memory="512K", temp_dir=spill,
                                **kwargs)  # type: ignore[arg-type]
        assert m.estimate_stats is not None
        assert m.estimate_stats["spilled_orders"] == order - 1
        assert arpa_bytes(m, tmp_path / "all.arpa") == expected
        info = NgramModel.estimate_arpa(TRAIN, tmp_path / "some.arpa", order, memory="1M",
                                        temp_dir=spill, **kwargs)  # type: ignore[arg-type]
        assert 1 <= info["spilled_orders"] < order - 1
        assert (tmp_path / "some.arpa").read_bytes() == expected
    roomy = NgramModel.estimate(TRAIN, order, memory="64M").estimate_stats
    assert roomy is not None and roomy["spilled_orders"] == 0
    assert list(spill.iterdir()) == []


@needs_data
def test_bounded_pruned_and_char_mode(tmp_path: Path) -> None:
    lines = TRAIN.read_text(encoding="utf-8").splitlines()[:6000]
    for kwargs in ({"prune": [0, 1, 2]}, {"mode": "char"}):
        a = NgramModel.estimate(lines, 4, **kwargs)  # type: ignore[arg-type]
        b = NgramModel.estimate(lines, 4, memory=1 << 20, temp_dir=tmp_path,
                                **kwargs)  # type: ignore[arg-type]
        assert b.counts == a.counts
        assert arpa_bytes(a, tmp_path / "a.arpa") == arpa_bytes(b, tmp_path / "b.arpa")
        assert b.discounts == a.discounts
        # Streamed to ARPA: the same bytes (a char model's file keeps its mode line).
        NgramModel.estimate_arpa(lines, tmp_path / "c.arpa", 4, memory=1 << 20,
                                 temp_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
        assert (tmp_path / "c.arpa").read_bytes() == (tmp_path / "a.arpa").read_bytes()
    assert NgramModel.read_arpa(tmp_path / "c.arpa").mode == "char"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.arpa", "b.arpa", "c.arpa"]


def test_bounded_small_orders_and_text(tmp_path: Path) -> None:
    text = "the cat sat on the mat\nthe dog sat on the log\n\na cat and a dog\n" * 50
    for order in (1, 2, 3):
        a = NgramModel.estimate_text(text, order, discount_fallback=[0.5, 1, 1.5])
        b = NgramModel.estimate_text(text, order, discount_fallback=[0.5, 1, 1.5],
                                     memory="64K", temp_dir=tmp_path)
        assert arpa_bytes(a, tmp_path / "a.arpa") == arpa_bytes(b, tmp_path / "b.arpa")
    assert b.score("the cat sat") == a.score("the cat sat")


def test_spill_files_removed_after_failure(tmp_path: Path) -> None:
    # A reserved word far into the corpus: counting has spilled runs by then.
    lines = [f"w{i % 997} w{i % 13} w{i % 7} x{i}" for i in range(40000)] + ["a <s> b"]
    with pytest.raises(ValueError, match="line 40001 .*reserved word <s>"):
        NgramModel.estimate(lines, 3, memory="256K", temp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    # A failure after counting (no discounts for artificial data): runs of
    # every stage exist by then.
    with pytest.raises(CoreError, match="could not calculate Kneser-Ney discounts"):
        NgramModel.estimate(["a b c d"] * 100000, 3, memory="256K", temp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    from aigc_engine._core import CoreError, NgramModel
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
    try:
        NgramModel.estimate(sys.argv[1], 3, memory="256K", temp_dir=sys.argv[2])
    except CoreError as exc:
        print("ERROR", exc)
""")


@needs_data
def test_full_temporary_disk_is_a_clear_error(tmp_path: Path) -> None:
    # A file size limit (per file) makes the spill writes fail as a full disk does.
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(TRAIN), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=True)
    assert "ERROR the temporary disk is full" in out.stdout, out.stdout + out.stderr
    assert "pass temp_dir=" in out.stdout
    assert list(tmp_path.iterdir()) == []


FULL_ARPA_DISK = textwrap.dedent("""
    import resource, signal, sys
    from aigc_engine._core import CoreError, NgramModel
    model = NgramModel.estimate(sys.argv[1], 4)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))
    try:
        model.write_arpa(sys.argv[2], threads=3)
    except CoreError as exc:
        print("ERROR", exc)
""")


@needs_data
def test_arpa_bytes_do_not_depend_on_threads_and_a_failed_write_is_an_error(
        tmp_path: Path) -> None:
    model = NgramModel.estimate(TRAIN, 5)
    assert sum(model.counts) > 4 * 65536  # several chunks of lines per thread
    one = tmp_path / "one.arpa"
    model.write_arpa(one, threads=1)
    for threads in (2, 3):
        model.write_arpa(tmp_path / "many.arpa", threads=threads)
        assert (tmp_path / "many.arpa").read_bytes() == one.read_bytes()
    assert NgramModel.read_arpa(one).score("the king is") == model.score("the king is")
    # A write that fails half way (a file size limit, as a full disk) stops the
    # formatting threads and raises; it never hangs.
    out = subprocess.run([sys.executable, "-c", FULL_ARPA_DISK, str(TRAIN),
                          str(tmp_path / "full.arpa")],
                         capture_output=True, text=True, timeout=120, check=True)
    assert "ERROR error while writing" in out.stdout, out.stdout + out.stderr


def test_memory_sizes_and_options(tmp_path: Path) -> None:
    assert parse_memory_size("100M") == 100 << 20
    assert parse_memory_size("2G") == 2 << 30
    assert parse_memory_size("64") == 64 << 10  # lmplz: no suffix = K
    assert parse_memory_size("512b") == 512
    assert 0 < parse_memory_size("25%") < parse_memory_size("50%")
    for bad in ("", "M", "10X", "10MB", "-5M"):
        with pytest.raises(ValueError, match="memory size"):
            parse_memory_size(bad)
    with pytest.raises(ValueError, match="memory must be"):
        NgramModel.estimate(["a b"], 2, memory=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a directory"):
        NgramModel.estimate(["a b"], 2, memory="1M", temp_dir=tmp_path / "absent")


def test_progress_reports_each_stage(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    lines = [f"w{i % 101} w{i % 17} w{i % 5} x{i % 3001}" for i in range(200000)]
    NgramModel.estimate(lines, 3, memory="1M", temp_dir=tmp_path, discount_fallback=[0.5],
                        progress=lambda s, d, t: seen.append((s, d, t)))
    stages = [s for s, _, _ in seen]
    assert stages, "no progress reported"
    assert set(stages) <= {"counting n-grams", "adjusting counts", "estimating order 2",
                           "estimating order 3", "writing order 3"}
    assert list(tmp_path.iterdir()) == []


@needs_data
def test_progress_while_writing_arpa(tmp_path: Path) -> None:
    # In memory, then the ARPA write: its progress counts n-grams up to the total.
    seen: list[tuple[str, int, int]] = []
    NgramModel.estimate_arpa(TRAIN, tmp_path / "lm.arpa", 5,
                             progress=lambda s, d, t: seen.append((s, d, t)))
    writing = [(d, t) for s, d, t in seen if s == "writing ARPA"]
    total = sum(NgramModel.estimate(TRAIN, 5).counts)
    assert writing and all(t == total and 0 <= d <= total for d, t in writing)
    assert writing[-1][0] == total


def test_progress_callback_error_cancels(tmp_path: Path) -> None:
    def boom(stage: str, done: int, total: int) -> None:
        raise RuntimeError(f"stop at {stage}")

    lines = [f"w{i % 101} w{i % 17} x{i % 3001}" for i in range(200000)]
    with pytest.raises(RuntimeError, match="stop at"):
        NgramModel.estimate(lines, 3, memory="1M", temp_dir=tmp_path, discount_fallback=[0.5],
                            progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_plugin_memory_options(tmp_path: Path) -> None:
    from aigc_engine import ConfigError, Engine

    engine = Engine(plugins=["ngram"])
    with pytest.raises(ConfigError, match="memory"):
        engine.create("ngram", memory="lots")
    with pytest.raises(ConfigError, match="temp_dir"):
        engine.create("ngram", memory="1M", temp_dir=str(tmp_path / "absent"))
    lines = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 30
    gen = engine.create_from_strings("ngram", {"order": "3", "memory": "64K",
                                               "temp_dir": str(tmp_path),
                                               "discount_fallback": "0.5,1,1.5"})
    gen.fit(lines)
    ref = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    ref.fit(lines)
    assert gen.score("the cat sat") == ref.score("the cat sat")
    assert list(tmp_path.iterdir()) == []
    assert os.path.isdir(tmp_path)
