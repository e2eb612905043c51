"""A short run of the readers' fuzzer (scripts/fuzz_readers.py), so what issue 14 fixed stays fixed.

The run is seeded (the same cases every time) and bounded; the longer run is
documented in the script (``python scripts/fuzz_readers.py --seconds 600``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_short_seeded_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "fuzz_readers.py"), "--cases", "300",
         "--seconds", "40", "--seed", "0", "--keep", str(tmp_path / "findings")],
        capture_output=True, text=True, env=env, timeout=300)
    summary = json.loads(out.stdout)
    for target in ("arpa", "binary", "bundle"):
        result = summary[target]
        assert result["findings"] == 0, result["finding_examples"]
        assert result["cases"] == 300, result  # within the time cap
        # The mutations reach both sides: some cases load, most are refused.
        assert result["loaded"] > 0 and result["refused"] > result["loaded"], result
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "findings").exists()
