"""The README's Python examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


def test_readme_python_examples_run(tmp_path: Path) -> None:
    for index, block in enumerate(python_blocks()):
        script = tmp_path / f"example_{index}.py"
        script.write_text(textwrap.dedent(block), encoding="utf-8")
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
        assert out.returncode == 0, f"README example {index} failed:\n{block}\n{out.stderr}"
