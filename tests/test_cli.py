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


# -- CLI misuse gets one clear line (issue 14) -------------------------------------------------

SMALL = "the cat sat on the mat\nthe dog sat on the log\na cat and a dog\nthe mat is red\n"


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli-lm")
    (root / "small.txt").write_text(SMALL)
    out = aigc("train", "ngram", "--data", str(root / "small.txt"), "--set", "order=3",
               "--set", "discount_fallback=[0.5, 1.0, 1.5]", "-o", str(root / "lm"))
    assert out.returncode == 0, out.stderr
    return root / "lm"


def test_the_fallback_the_error_suggests_is_accepted_by_set(lm: Path) -> None:
    info = json.loads(aigc("info", str(lm), "--json").stdout)
    assert info["config"]["discount_fallback"] == [0.5, 1.0, 1.5]


def test_info_piped_into_head_exits_quietly(lm: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    proc = subprocess.Popen([sys.executable, "-m", "aigc_engine", "info", str(lm)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert err == ""
    assert proc.returncode == 1


def test_an_undecodable_prompt_is_a_one_line_error(lm: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    out = subprocess.run([sys.executable, "-m", "aigc_engine", "generate", str(lm).encode(),
                          "--prompt", b"caf\xe9", "--seed", "1"], capture_output=True,
                         env={**base, "LC_ALL": "C.UTF-8"}, timeout=120)
    assert out.returncode == 1
    assert out.stderr.decode() == ("aigc: error: prompt is not valid text: character 3 is "
                                   "'\\udce9', a lone surrogate (bytes that are not UTF-8, e.g. "
                                   "from a terminal in another encoding)\n")


def test_a_huge_max_tokens_is_a_one_line_error(lm: Path) -> None:
    out = aigc("generate", str(lm), "--max-tokens", "100000000000000000000")
    assert out.returncode == 2  # a usage error, checked before the model is loaded
    assert out.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--max-tokens': 100000000000000000000 is not in the range "
        "1<=x<=2147483647.")
    assert "Traceback" not in out.stderr


def test_label_on_a_text_model_is_a_usage_error(lm: Path) -> None:
    out = aigc("generate", str(lm), "--label", "3", "--seed", "1")
    assert out.returncode == 2
    assert "--label is for conditional image models; this is a text model" in out.stderr
    assert out.stdout == ""


def test_a_binary_export_generates_and_info_lists_the_formats(lm: Path, tmp_path: Path) -> None:
    binary = tmp_path / "lm5.bin"
    assert aigc("export", str(lm), "--format", "binary", "-o", str(binary)).returncode == 0
    direct = aigc("generate", str(binary), "--seed", "3", "--prompt", "the", "--max-tokens", "8",
                  "--echo")
    bundled = aigc("generate", str(lm), "--seed", "3", "--prompt", "the", "--max-tokens", "8",
                   "--echo")
    assert direct.returncode == 0, direct.stderr
    assert direct.stdout == bundled.stdout and direct.stdout.startswith("the")
    info = aigc("info", str(lm))
    assert "exports     arpa, binary (aigc export BUNDLE --format ...)" in info.stdout
    assert "verified    yes" in info.stdout
    assert json.loads(aigc("info", str(lm), "--json").stdout)["export_formats"] == ["arpa",
                                                                                   "binary"]
    helptext = " ".join(aigc("export", "--help").stdout.split())
    assert "`aigc info BUNDLE` lists the formats it exports" in helptext
    assert "ngram: arpa (KenLM/SRILM text), binary" in helptext


def test_info_refuses_a_bundle_whose_manifest_lies(lm: Path, tmp_path: Path) -> None:
    import shutil

    lying = tmp_path / "lying"
    shutil.copytree(lm, lying)
    manifest = json.loads((lying / "manifest.json").read_text())
    manifest["config"]["order"] = 5
    (lying / "manifest.json").write_text(json.dumps(manifest))
    out = aigc("info", str(lying))
    assert out.returncode == 1
    assert "its manifest does not match model.bin: it says order 5 (the model is order 3)" \
        in out.stderr
    quick = aigc("info", str(lying), "--no-verify")
    assert quick.returncode == 0 and "verified    no (--no-verify)" in quick.stdout


def test_train_reports_the_wall_clock_of_fit(tmp_path: Path) -> None:
    (tmp_path / "small.txt").write_text(SMALL)
    out = aigc("train", "ngram", "--data", str(tmp_path / "small.txt"), "--set",
               "discount_fallback=0.5,1,1.5", "-o", str(tmp_path / "lm"))
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("trained ngram: fit took ")
    assert " s wall-clock (data, training, statistics); ngrams=" in out.stderr


def test_progress_bars_show_whole_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from aigc_engine.progress import ConsoleProgress

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    progress = ConsoleProgress()
    with progress.task("training gan", total=300, unit="step") as task:
        for _ in range(7):
            task.advance(1)
    with progress.task("estimating order-3 model", total=None):
        pass
    text = err.getvalue()
    assert "7/300" in text and "7.00" not in text
    last = text.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith("estimating order-3 model: 00:00") and "it" not in last
