"""Bundles: round trips, refusals with clear errors, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from aigc_engine import Engine, ModelFormatError, UnknownGeneratorError
from aigc_engine.bundle import FORMAT_VERSION, MANIFEST, read_bundle

GRAMMAR = {"origin": ["#a# and #b#"], "a": ["x", "y", "z"], "b": ["1", "2", "3"]}


@pytest.fixture
def engine() -> Engine:
    return Engine(plugins=["template", "datasets"])


@pytest.fixture
def saved(engine: Engine, tmp_path: Path) -> Path:
    gen = engine.create("template", max_depth=10)
    gen.fit(GRAMMAR)
    return gen.save(tmp_path / "model")


def test_round_trip_keeps_config_payload_and_output(engine: Engine, saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format"] == "aigc-bundle"
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["generator"] == "template"
    assert manifest["plugin"]["name"] == "template"
    assert manifest["config"] == {"start": "origin", "max_depth": 10}
    assert manifest["metrics"] == {"symbols": 3, "rules": 7}
    assert set(manifest["files"]) == {"grammar.json"}
    loaded = engine.load(saved)
    assert loaded.config == engine.create("template", max_depth=10).config
    original = engine.create("template", max_depth=10)
    original.fit(GRAMMAR)
    assert loaded.generate(seed=5, n=4).texts == original.generate(seed=5, n=4).texts  # type: ignore[attr-defined]
    # Saving the loaded model again gives byte-identical payload files.
    again = loaded.save(saved.parent / "again")
    assert (again / "grammar.json").read_bytes() == (saved / "grammar.json").read_bytes()


def test_newer_format_version_is_refused(engine: Engine, saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match=f"version {FORMAT_VERSION + 1} is newer.*upgrade"):
        engine.load(saved)


def test_missing_manifest_is_refused(engine: Engine, saved: Path) -> None:
    (saved / MANIFEST).unlink()
    with pytest.raises(ModelFormatError, match="manifest.json is missing"):
        engine.load(saved)


def test_missing_path_is_refused(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="does not exist"):
        engine.load(tmp_path / "nothing")


def test_truncated_payload_is_refused(engine: Engine, saved: Path) -> None:
    payload = saved / "grammar.json"
    payload.write_bytes(payload.read_bytes()[:-10])
    with pytest.raises(ModelFormatError, match="grammar.json has .* bytes.*truncated"):
        engine.load(saved)


def test_altered_payload_is_refused(engine: Engine, saved: Path) -> None:
    payload = saved / "grammar.json"
    data = bytearray(payload.read_bytes())
    data[5] ^= 1
    payload.write_bytes(bytes(data))
    with pytest.raises(ModelFormatError, match="SHA-256"):
        engine.load(saved)


def test_corrupt_manifest_json_is_refused(engine: Engine, saved: Path) -> None:
    (saved / MANIFEST).write_text("{not json")
    with pytest.raises(ModelFormatError, match="not valid JSON"):
        engine.load(saved)


def test_payload_path_escaping_the_bundle_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["files"]["../evil"] = {"size": 1, "sha256": "0" * 64}
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFormatError, match="invalid payload file name"):
        read_bundle(saved)


def test_unknown_generator_is_refused_with_what_to_install(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["generator"] = "hologram"
    manifest["plugin"] = {"name": "aigc-hologram", "version": "9.9"}
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UnknownGeneratorError, match="hologram.*'aigc-hologram' 9.9.*not installed"):
        Engine(plugins=["template"]).load(saved)


def test_loading_with_the_wrong_class_is_refused(saved: Path) -> None:
    from aigc_markov.model import MarkovGenerator

    with pytest.raises(ModelFormatError, match="holds a 'template' model, not 'markov'"):
        MarkovGenerator.load(saved)


def test_saving_over_a_non_bundle_directory_is_refused(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_text("do not delete")
    gen = engine.create("template")
    gen.fit(GRAMMAR)
    with pytest.raises(ModelFormatError, match="not a bundle"):
        gen.save(folder)
    assert (folder / "thesis.txt").read_text() == "do not delete"


SLOW_SAVER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {plugin_dir!r})
from aigc_engine import Engine
from aigc_engine.plugins.template.generator import TemplateGenerator

class SlowSaver(TemplateGenerator):
    def _save_payload(self, directory):
        super()._save_payload(directory)
        with open(directory / "big.bin", "wb") as fh:
            fh.write(b"x" * 1_000_000)
            fh.flush()
            Path({ready!r}).write_text("writing")
            time.sleep(60)  # killed here, in the middle of the save

gen = SlowSaver()
gen.fit({{"origin": ["new model"]}})
gen.save({target!r})
"""


def test_interrupted_save_leaves_previous_bundle_loadable(engine: Engine, saved: Path,
                                                          tmp_path: Path) -> None:
    before = engine.load(saved).generate(seed=1, n=3).texts  # type: ignore[attr-defined]
    ready = tmp_path / "ready"
    code = textwrap.dedent(SLOW_SAVER.format(plugin_dir=str(tmp_path), ready=str(ready),
                                             target=str(saved)))
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the saving process ended before it was killed"
            assert time.monotonic() < deadline, "the saving process never reached the payload"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert engine.load(saved).generate(seed=1, n=3).texts == before  # type: ignore[attr-defined]
    # The next save cleans up the debris of the killed one.
    leftovers = [p.name for p in saved.parent.iterdir() if p.name.startswith(".aigc-tmp-")]
    assert leftovers, "the killed save should have left its temporary folder"
    gen = engine.create("template")
    gen.fit({"origin": ["newer"]})
    gen.save(saved)
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".aigc-")]
    assert engine.load(saved).generate(seed=1).text == "newer"  # type: ignore[attr-defined]


def test_crash_between_renames_is_recovered(engine: Engine, saved: Path) -> None:
    # A crash after the old bundle was moved aside but before the new one landed.
    os.rename(saved, saved.parent / f".aigc-old-{saved.name}")
    assert not saved.exists()
    loaded = engine.load(saved)
    assert loaded.config.to_dict()["max_depth"] == 10
    assert saved.is_dir()


def test_a_file_no_generator_opens_is_refused(engine: Engine, tmp_path: Path) -> None:
    model = tmp_path / "model.xyz"
    model.write_text("not a bundle")
    with pytest.raises(ModelFormatError, match="is a file, not a bundle directory.*'.xyz'"):
        engine.load(model)


# -- the manifest vouches for every file (issue 14) ---------------------------------------

def _manifest(bundle: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((bundle / MANIFEST).read_text())


def _write_manifest(bundle: Path, data: dict) -> None:  # type: ignore[type-arg]
    (bundle / MANIFEST).write_text(json.dumps(data))


def test_a_payload_file_the_manifest_does_not_list_is_refused(engine: Engine, saved: Path) -> None:
    data = _manifest(saved)
    data["files"] = {}
    _write_manifest(saved, data)
    with pytest.raises(ModelFormatError,
                       match=r"grammar\.json is not listed in its manifest.*size and SHA-256"):
        engine.load(saved)


def test_an_extra_unlisted_file_is_refused(engine: Engine, saved: Path) -> None:
    (saved / "extra.bin").write_bytes(b"smuggled")
    with pytest.raises(ModelFormatError, match=r"extra\.bin is not listed in its manifest"):
        engine.load(saved)


def test_a_loader_reads_only_listed_files(engine: Engine, saved: Path) -> None:
    # The grammar is gone from the manifest and from the folder: the loader says what it lacks.
    data = _manifest(saved)
    data["files"] = {}
    _write_manifest(saved, data)
    (saved / "grammar.json").unlink()
    with pytest.raises(ModelFormatError, match=r"does not list 'grammar\.json'"):
        engine.load(saved)


def test_a_payload_symlink_out_of_the_bundle_is_refused(engine: Engine, saved: Path,
                                                       tmp_path: Path) -> None:
    outside = tmp_path / "other.json"
    outside.write_bytes((saved / "grammar.json").read_bytes())
    (saved / "grammar.json").unlink()
    (saved / "grammar.json").symlink_to(outside)
    with pytest.raises(ModelFormatError, match=r"grammar\.json is a symbolic link"):
        engine.load(saved)


def test_a_symlink_to_a_system_file_is_neither_read_nor_sized(engine: Engine,
                                                             saved: Path) -> None:
    (saved / "grammar.json").unlink()
    (saved / "grammar.json").symlink_to("/etc/passwd")
    with pytest.raises(ModelFormatError) as info:
        engine.load(saved)
    message = str(info.value)
    assert "grammar.json is a symbolic link" in message
    assert "bytes" not in message  # the size of the link's target is not shown


def test_a_manifest_that_is_a_symlink_is_refused(engine: Engine, saved: Path,
                                                 tmp_path: Path) -> None:
    real = tmp_path / "manifest-elsewhere.json"
    real.write_bytes((saved / MANIFEST).read_bytes())
    (saved / MANIFEST).unlink()
    (saved / MANIFEST).symlink_to(real)
    with pytest.raises(ModelFormatError, match=r"manifest\.json is a symbolic link"):
        engine.load(saved)
    with pytest.raises(ModelFormatError, match=r"manifest\.json is a symbolic link"):
        engine.info(saved)


def test_a_linked_subfolder_is_refused(engine: Engine, saved: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (saved / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ModelFormatError, match="sub is a symbolic link"):
        engine.load(saved)


def test_a_manifest_nested_too_deeply_is_a_model_format_error(engine: Engine,
                                                             saved: Path) -> None:
    (saved / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFormatError, match=r"manifest\.json.*nested too deeply"):
        engine.load(saved)


def test_a_manifest_with_a_huge_integer_is_a_model_format_error(engine: Engine,
                                                               saved: Path) -> None:
    text = (saved / MANIFEST).read_text()
    (saved / MANIFEST).write_text(text.replace('"format_version": 1',
                                               '"format_version": ' + "9" * 5000))
    with pytest.raises(ModelFormatError, match=r"manifest\.json.*not usable JSON.*digits"):
        engine.load(saved)
    # Within the digit limit the number parses; the message does not print all of it.
    (saved / MANIFEST).write_text(text.replace('"format_version": 1',
                                               '"format_version": ' + "9" * 4300))
    with pytest.raises(ModelFormatError, match=r"version 999999999999\.\.\. \(huge\) is newer"
                       ) as info:
        engine.load(saved)
    assert len(str(info.value)) < 400


def test_a_manifest_in_latin1_is_a_model_format_error(engine: Engine, saved: Path) -> None:
    (saved / MANIFEST).write_bytes(b'{"format": "caf\xe9"}')
    with pytest.raises(ModelFormatError, match=r"manifest\.json.*not valid UTF-8"):
        engine.load(saved)


def _rehash(bundle: Path, name: str) -> None:
    import hashlib

    data = _manifest(bundle)
    payload = (bundle / name).read_bytes()
    data["files"][name] = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    _write_manifest(bundle, data)


def test_a_bad_grammar_json_names_the_file(engine: Engine, saved: Path) -> None:
    (saved / "grammar.json").write_text('{"origin": ["x"')
    _rehash(saved, "grammar.json")
    with pytest.raises(ModelFormatError,
                       match=r"grammar '.*grammar\.json' is not valid JSON: .* line 1"):
        engine.load(saved)


def test_a_grammar_json_that_is_not_a_grammar_names_the_file(engine: Engine,
                                                            saved: Path) -> None:
    (saved / "grammar.json").write_text('{"origin": ["#nowhere#"]}')
    _rehash(saved, "grammar.json")
    with pytest.raises(ModelFormatError,
                       match=r"grammar '.*grammar\.json' is not a usable grammar.*nowhere"):
        engine.load(saved)


def test_an_invalid_config_in_the_manifest_is_a_model_format_error(engine: Engine,
                                                                  saved: Path) -> None:
    data = _manifest(saved)
    data["config"]["max_depth"] = -1
    _write_manifest(saved, data)
    with pytest.raises(ModelFormatError, match="config in its manifest is invalid.*max_depth"):
        engine.load(saved)


CONCURRENT_SAVER = """
import sys
from aigc_engine.bundle import Manifest, write_bundle

target, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])

def payload(directory):
    (directory / "data.txt").write_text(who * 20000)

failures = 0
for i in range(rounds):
    try:
        write_bundle(target, Manifest(generator="g", plugin="p", plugin_version="1",
                                      config={{"who": who, "round": i}}), payload)
    except Exception as exc:
        failures += 1
        print(f"{{who}} round {{i}}: {{type(exc).__name__}}: {{exc}}", file=sys.stderr)
sys.exit(1 if failures else 0)
"""


def test_concurrent_saves_to_one_path_each_succeed(tmp_path: Path) -> None:
    target = tmp_path / "shared-model"
    code = CONCURRENT_SAVER.format()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(target), who, "20"],
                              stderr=subprocess.PIPE, text=True)
             for who in "abcd"]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "".join(errors)
    loaded = read_bundle(target)
    who = loaded.manifest.config["who"]
    assert (target / "data.txt").read_text() == who * 20000
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".aigc-")]


def test_a_save_inside_a_load_of_the_same_folder_is_an_error_not_a_hang(engine: Engine,
                                                                        saved: Path) -> None:
    from aigc_engine.bundle import reading

    gen = engine.create("template")
    gen.fit(GRAMMAR)
    with reading(saved), pytest.raises(ModelFormatError, match="the save would wait for itself"):
        gen.save(saved.parent / "other")
    assert gen.save(saved.parent / "other").is_dir()  # outside the load: fine
