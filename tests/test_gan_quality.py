"""Acceptance: DCGAN on digits within CPU-second budgets, one thread (slow; ``-m slow``).

Budgets count the update steps' process CPU time (metrics run outside it).
Run: ``pytest -m slow tests/test_gan_quality.py`` (about 5 CPU-minutes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from gan_digits import train_and_measure  # noqa: E402


@pytest.fixture(autouse=True)
def _only_when_selected(request: pytest.FixtureRequest) -> None:
    """These take minutes: run only when asked for with ``-m slow``."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("slow acceptance run: select with -m slow")


@pytest.mark.slow
def test_unconditional_digits_fid_within_180_cpu_seconds() -> None:
    result = train_and_measure("uncond", seed=0)
    report = result["report"]
    assert result["train_cpu_seconds"] <= 181.0
    assert report["digits_fid"] < 15.0, report
    assert report["class_entropy"] > 2.25, report


@pytest.mark.slow
def test_conditional_digits_fid_within_60_cpu_seconds() -> None:
    result = train_and_measure("cond", seed=0)
    report = result["report"]
    assert result["train_cpu_seconds"] <= 61.0
    assert report["digits_fid"] < 6.0, report
    assert report["label_accuracy"] >= 0.95, report
