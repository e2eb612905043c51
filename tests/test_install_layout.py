"""The source tree imports as the package it is (issue 14).

After a non-editable install, a script run from the repository root imports
the source ``aigc_engine`` (the current directory comes first on sys.path),
where ``plugins/`` is not at ``aigc_engine/plugins`` and the compiled core is
absent. The test builds the wheel's layout from this checkout (the Python
files, ``plugins/`` mapped to ``aigc_engine/plugins`` as pyproject.toml's
``wheel.packages`` does, the compiled ``_core``), puts it on the path of a
fresh interpreter started without site hooks (so the editable install's
finder is not there), and runs it from the repository root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import aigc_engine._core

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

PROBE = """
import json, aigc_engine
from aigc_engine import Engine
engine = Engine()
print(json.dumps({
    "generators": [g.name for g in engine.list_generators()],
    "failed": {i.name: i.error for i in engine.plugins() if i.status != "loaded"},
    "package": aigc_engine.__file__,
    "core": __import__("importlib").import_module("aigc_engine._core").__file__,
}))
"""


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    package = site / "aigc_engine"
    shutil.copytree(REPO / "aigc_engine", package, ignore=IGNORE)
    shutil.copytree(REPO / "plugins", package / "plugins", ignore=IGNORE, dirs_exist_ok=True)
    core = Path(aigc_engine._core.__file__)
    shutil.copy2(core, package / core.name)
    return site


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    purelib = sysconfig.get_paths()["purelib"]  # numpy, pluggy, the dist-info (entry points)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGC_", "PYTHON"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), purelib])
    return subprocess.run([sys.executable, "-S", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_script_from_the_repository_root_finds_every_generator(wheel_site: Path) -> None:
    out = _run(wheel_site, "-c", PROBE)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout)
    assert probe["package"] == str(REPO / "aigc_engine" / "__init__.py")  # the source tree
    assert probe["core"].startswith(str(wheel_site))  # the installed compiled core
    assert probe["failed"] == {}
    assert {"ngram", "template", "gan", "gan-onnx"} <= set(probe["generators"])


def test_python_dash_m_from_the_repository_root(wheel_site: Path) -> None:
    out = _run(wheel_site, "-m", "aigc_engine", "generators", "--json")
    assert out.returncode == 0, out.stderr
    names = {g["name"] for g in json.loads(out.stdout)}
    assert {"ngram", "template", "gan"} <= names
    assert out.stderr == ""


def test_an_ngram_model_trains_from_the_repository_root(wheel_site: Path,
                                                        tmp_path: Path) -> None:
    code = ("from aigc_engine import Engine\n"
            "gen = Engine().create('ngram', order=2, discount_fallback=(0.5, 1.0, 1.5))\n"
            "gen.fit(['a b c', 'a c b', 'b a c'])\n"
            f"gen.save({str(tmp_path / 'lm')!r})\n"
            f"print(Engine().load({str(tmp_path / 'lm')!r}).generate('a', seed=1, "
            "max_tokens=3, echo=True).text)")
    out = _run(wheel_site, "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("a")
