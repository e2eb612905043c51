"""The aigc command: output, exit codes, one-line errors, no torch on the light paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def aigc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    return subprocess.run([sys.executable, "-m", "aigc_engine", *args], capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=300)


def test_generators_json_lists_builtins() -> None:
    out = aigc("generators", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["template"]["modality"] == "text"
    assert rows["template"]["plugin"] == "template"
    assert rows["template"]["description"]


def test_plugins_table_and_blocking() -> None:
    out = aigc("plugins", env={"AIGC_PLUGINS": "-template"})
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()}
    assert " blocked " in lines["template"]
    assert " loaded " in lines["datasets"] and "tinyshakespeare" in lines["datasets"]


def test_train_generate_info_eval_export(tmp_path: Path) -> None:
    bundle = tmp_path / "story"
    out = aigc("train", "template", "--data", "example-grammar", "--set", "max_depth=20",
               "-o", str(bundle))
    assert out.returncode == 0, out.stderr
    assert "saved" in out.stderr
    gen1 = aigc("generate", str(bundle), "--seed", "4")
    gen2 = aigc("generate", str(bundle), "--seed", "4", "--json", "-n", "2")
    assert gen1.returncode == 0 and gen2.returncode == 0, gen1.stderr + gen2.stderr
    data = json.loads(gen2.stdout)
    assert data["seed"] == 4 and len(data["texts"]) == 2
    assert gen1.stdout == data["texts"][0] + "\n"
    target = tmp_path / "out.txt"
    assert aigc("generate", str(bundle), "--seed", "4", "-n", "2", "--out",
                str(target)).returncode == 0
    assert target.read_text().splitlines() == data["texts"]
    info = json.loads(aigc("info", str(bundle), "--json").stdout)
    assert info["generator"] == "template" and info["config"]["max_depth"] == 20
    ev = aigc("eval", str(bundle), "--data", "example-grammar")
    assert ev.returncode == 1 and ev.stderr == "aigc: error: generator 'template' has no " \
        "evaluation metric\n"
    ex = aigc("export", str(bundle), "--format", "onnx", "-o", str(tmp_path / "x"))
    assert ex.returncode == 1 and "formats it exports: none" in ex.stderr


@pytest.mark.parametrize("args,code,message", [
    (["train", "template", "--data", "example-grammar", "--set", "depth=3", "-o", "x"], 1,
     "unknown option(s) 'depth' for TemplateConfig; valid options: start, max_depth"),
    (["train", "template", "--data", "example-grammar", "--set", "max_depth=deep", "-o", "x"],
     1, "cannot read 'deep' as int"),
    (["train", "template", "--data", "example-grammar", "--set", "novalue", "-o", "x"], 2,
     "expected KEY=VALUE"),
    (["train", "nosuch", "--data", "x", "-o", "x"], 1, "no generator named 'nosuch'"),
    (["train", "template", "--data", "no/such/file", "-o", "x"], 1,
     "no dataset named 'no/such/file'"),
    (["generate", "no/such/bundle"], 1, "no bundle at 'no/such/bundle'"),
    (["generate"], 2, "Missing argument 'BUNDLE'"),
    (["frobnicate"], 2, "No such command 'frobnicate'"),
])
def test_errors_are_one_line_with_exit_codes(args: list[str], code: int, message: str) -> None:
    out = aigc(*args)
    assert out.returncode == code, (out.stdout, out.stderr)
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_sampling_option_is_a_clear_error(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    assert aigc("train", "template", "--data", "example-grammar", "-o", str(bundle)).returncode == 0
    out = aigc("generate", str(bundle), "--temperature", "-1")
    assert out.returncode == 1
    assert out.stderr.strip() == "aigc: error: temperature must be finite and >= 0 (0 = greedy), got -1.0"


def test_demo_prints_generated_text() -> None:
    out = aigc("demo", "--seed", "1")
    assert out.returncode == 0, out.stderr
    assert "sample 1" in out.stdout and "sample 3" in out.stdout
    assert "saved and reloaded bundle" in out.stdout


def test_help_explains_commands() -> None:
    out = aigc("--help")
    assert out.returncode == 0
    for command in ("demo", "generate", "train", "plugins", "generators", "eval", "export",
                    "info"):
        assert command in out.stdout


LIGHT = """
import sys
sys.argv = {argv!r}
from aigc_engine.cli import main
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
assert "torch" not in sys.modules, "torch was imported"
print("NO-TORCH-OK", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["aigc", "--help"], ["aigc", "generators"],
                                  ["aigc", "plugins"]])
def test_light_commands_never_import_torch(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", LIGHT.format(argv=argv)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "NO-TORCH-OK" in out.stderr


def test_import_never_imports_torch() -> None:
    code = "import aigc_engine, sys; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
