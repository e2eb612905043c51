"""The sampler under AddressSanitizer and UndefinedBehaviorSanitizer.

Compiles csrc/sampling/sanitize_driver.cc with the sampler sources and
``-fsanitize=address,undefined`` and runs it. Opt-in (it takes a minute):
set ``AIGC_SANITIZER_TESTS=1``; skipped without a C++ compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("AIGC_SANITIZER_TESTS") != "1", reason="set AIGC_SANITIZER_TESTS=1 to run"
    ),
    pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++"),
]


def test_sampler_is_clean_under_asan_and_ubsan(tmp_path: Path) -> None:
    exe = tmp_path / "sanitize_driver"
    subprocess.run(
        [
            "g++",
            "-std=c++17",
            "-O1",
            "-g",
            "-fno-omit-frame-pointer",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=undefined",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-psabi",
            f"-I{ROOT / 'csrc'}",
            str(ROOT / "csrc/sampling/sanitize_driver.cc"),
            "-ffp-contract=off",
            *(str(p) for p in sorted((ROOT / "csrc/sampling").glob("*.cpp"))),
            str(ROOT / "csrc/parallel.cpp"),
            "-lpthread",
            "-o",
            str(exe),
        ],
        check=True,
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True)
    assert out.stdout.strip().startswith("ok="), out.stdout + out.stderr
