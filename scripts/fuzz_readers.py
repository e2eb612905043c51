"""Fuzz the readers of untrusted model files: ARPA, the n-gram binary format, bundles.

Every case is a mutated copy of a valid seed file (or bundle). A case passes
when it either loads, or is refused with the error a caller is promised:
``ModelFormatError`` naming the file (``UnknownGeneratorError`` for a bundle
that names a generator that is not installed). Anything else, a case slower
than ``--slow`` seconds, or a crash of the process is a finding; the input is
kept in ``--keep`` (``current.*`` always holds the case being run, so a
segfault leaves its input behind). What loads is exercised too: scores must
not be NaN, and a loaded n-gram model must export to ARPA and to the binary
format files that read back (an export never writes what the reader refuses).

Two engines:

* a plain, seeded mutation loop (the default; what CI runs, see
  ``tests/test_fuzz_readers.py``)::

      python scripts/fuzz_readers.py --cases 2000            # each target, seed 0
      python scripts/fuzz_readers.py --seconds 600 --seed 7  # the longer run

* libFuzzer through atheris (``pip install -c constraints.txt atheris``),
  coverage-guided over the Python bundle loader; the C++ readers are not
  instrumented (clang is not available here), so libFuzzer only mutates::

      python scripts/fuzz_readers.py --atheris arpa -- -max_total_time=600

Prints one JSON summary: per target the cases run, how many loaded, how many
were refused (with the most common reasons) and the findings. Exit status 1
when there is a finding.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import math
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigc_engine import ConfigError, Engine, ModelFormatError, UnknownGeneratorError
from aigc_engine.ngram import NgramModel

CORPUS = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
          "the mat is red", "a log is brown", "the cat saw the dog", "caf\u00e9 au lait",
          "\u732b\u304c\u5ea7\u308b"]
SRILM_ARPA = """Some header text before the data section.

\\data\\
ngram 1=5
ngram 2=3
ngram 3=3

\\1-grams:
-99\t<s>\t-0.5
-1.0\t</s>
-0.7\ta\t-0.3
-0.8 b -0.2
-inf\tc

\\2-grams:
-0.4\t<s> a\t-0.1
-0.3\ta b
-0.6\tb c\t-0.25

\\3-grams:
-0.2\t<s> a b
-0.15\ta b c
-0.5\tc a b

\\end\\
"""
NUMBERS = [b"inf", b"-inf", b"+inf", b"nan", b"-nan", b"Infinity", b"1e39", b"-1e39", b"1e-45",
           b"0", b"-0", b"+0.5", b"0.5", b"99999999999999999999", b"18446744073709551615",
           b"250000000", b"0x10", b"", b"-99", b"1e308", b"--1", b"1.5.5"]
WORDS = [b"<s>", b"</s>", b"<unk>", b"caf\xe9", b"\xff", b"\xc3", b"a\tb", b"\x00", b"\xef\xbb\xbf",
         b"\\data\\", b"\\end\\", b"\\1-grams:", b"ngram 1=1", b"# aigc-engine n-gram model: "
         b"tokenizer=char", b"x" * 300]
INTERESTING_BYTES = [0, 0xFF, 0x7F, 0x80, 0x0A, 0x20, 0x09, 0x2D, 0x39, 0xE9, 0xC3, 0x5C]
# Placeholders for integers of 4,300 digits (Python's limit) and 5,000 (beyond it), which
# json.dumps cannot write itself.
HUGE, HUGER = "<4300 digits>", "<5000 digits>"
INTERESTING_INTS = [0, 1, 2, 3, 7, 8, 9, 255, 2**31 - 1, 2**31, 2**32 - 1, 2**40, 2**63,
                    2**64 - 1]


# -- mutations -------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """One to four generic byte-level edits."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[rng.randrange(len(out))] = rng.choice(INTERESTING_BYTES)
        elif op == 2 and out:
            end = min(len(out), pos + rng.choice([1, 2, 8, 64, 1024]))
            del out[pos:end]
        elif op == 3 and out:
            start = rng.randrange(len(out))
            chunk = out[start:start + rng.choice([1, 4, 16, 256])]
            out[pos:pos] = chunk * rng.choice([1, 2, 10])
        elif op == 4:
            del out[pos:]
        elif op == 5 and others:
            other = rng.choice(others)
            start = rng.randrange(len(other) + 1)
            out[pos:pos] = other[start:start + rng.randrange(1, 200)]
        else:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


def mutate_text(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Edits that keep an ARPA file's shape: numbers, words, counts and lines."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        i = rng.randrange(len(lines))
        fields = re.split(rb"([ \t]+)", lines[i])
        if op == 0:  # a number
            spots = [k for k, f in enumerate(fields) if re.fullmatch(rb"[-+0-9.e]+|-?inf", f)]
            if spots:
                fields[rng.choice(spots)] = rng.choice(NUMBERS)
        elif op == 1:  # a word
            spots = [k for k, f in enumerate(fields) if f and not f.isspace()]
            if spots:
                fields[rng.choice(spots)] = rng.choice(WORDS)
        elif op == 2:  # a count
            for k, line in enumerate(lines):
                if line.startswith(b"ngram ") and rng.random() < 0.5:
                    head = line.split(b"=")[0]
                    lines[k] = head + b"=" + str(rng.choice(INTERESTING_INTS)).encode()
        elif op == 3:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 4 and len(lines) > 1:
            del lines[i]
        elif op == 5:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif others:
            other = rng.choice(others).split(b"\n")
            lines.insert(i, rng.choice(other))
        if op in (0, 1):
            lines[i] = b"".join(fields)
    out = b"\n".join(lines)
    return mutate_bytes(out, rng, others) if rng.random() < 0.3 else out


def binary_v1(data: bytes) -> bytes:
    """The same model in binary format version 1 (no checksum): reaches the content checks."""
    out = bytearray(data[:-8])
    struct.pack_into("<I", out, 8, 1)
    return bytes(out)


def mutate_binary(data: bytes, rng: random.Random, others: list[bytes]) -> bytes:
    """Header fields set to interesting values, or byte edits; half the cases as version 1."""
    out = bytearray(binary_v1(data) if rng.random() < 0.5 else data)
    if rng.random() < 0.4 and len(out) >= 40:
        offset, fmt = rng.choice([(8, "<I"), (16, "<I"), (20, "<I"), (24, "<Q"), (32, "<Q"),
                                  (40, "<Q"), (48, "<Q")])
        if offset + struct.calcsize(fmt) <= len(out):
            value = rng.choice(INTERESTING_INTS) % (2**(8 * struct.calcsize(fmt)))
            struct.pack_into(fmt, out, offset, value)
        return bytes(out)
    if rng.random() < 0.3:  # a float in the level arrays
        i = rng.randrange(40, max(41, len(out) - 4)) & ~3
        if i + 4 <= len(out):
            struct.pack_into("<f", out, i, rng.choice([math.nan, math.inf, -math.inf, 0.5, 1e30]))
        return bytes(out)
    return mutate_bytes(bytes(out), rng, others)


# -- checks ------------------------------------------------------------------------------------

class Finding(Exception):
    """A case whose outcome breaks a promise."""


def _exercise(model: Any, where: Path) -> None:
    """What a loaded model must survive: scores, top-k, exports that read back."""
    for sentence in ("a b c", "the cat", "", "x y z"):
        score = model.score(sentence)
        if math.isnan(score):
            raise Finding(f"score({sentence!r}) is NaN")
    ids, _ = model.top_k([], 3)
    if NgramModel.bos_id in ids.tolist():
        raise Finding("top_k returned <s>")
    arpa, binary = where / "export.arpa", where / "export.bin"
    try:
        model.write_arpa(arpa)
    except Exception as exc:  # refusing to write is fine; writing a bad file is not
        if "cannot write" not in str(exc):
            raise Finding(f"write_arpa: {type(exc).__name__}: {exc}") from exc
    else:
        try:
            back = NgramModel.read_arpa(arpa)
        except ModelFormatError as exc:
            raise Finding(f"write_arpa wrote a file read_arpa refuses: {exc}") from exc
        if back.mode != model.mode:
            raise Finding(f"ARPA export of a {model.mode} model reads back as {back.mode}")
    model.save_binary(binary)
    try:
        again = NgramModel.load_binary(binary)
    except ModelFormatError as exc:
        raise Finding(f"save_binary wrote a file load_binary refuses: {exc}") from exc
    if list(again.counts) != list(model.counts):
        raise Finding("the binary export changed the counts")


def check_arpa(data: bytes, where: Path) -> str:
    path = where / "case.arpa"
    path.write_bytes(data)
    try:
        model = NgramModel.read_arpa(path)
    except ModelFormatError as exc:
        if str(path) not in str(exc):
            raise Finding(f"the error does not name the file: {exc}") from exc
        if not re.search(r": line \d+: ", str(exc)) and "duplicate" not in str(exc):
            raise Finding(f"the error does not name the line: {exc}") from exc
        return "refused: " + _reason(str(exc))
    _exercise(model, where)
    return "loaded"


def check_binary(data: bytes, where: Path) -> str:
    path = where / "case.bin"
    path.write_bytes(data)
    try:
        model = NgramModel.load_binary(path)
    except ModelFormatError as exc:
        if str(path) not in str(exc):
            raise Finding(f"the error does not name the file: {exc}") from exc
        return "refused: " + _reason(str(exc))
    _exercise(model, where)
    return "loaded"


def check_bundle(build: Callable[[Path], Path], engine: Engine, where: Path) -> str:
    bundle = build(where)
    try:
        gen = engine.load(bundle)
    except (ModelFormatError, UnknownGeneratorError) as exc:
        return "refused: " + _reason(str(exc))
    try:
        text = gen.generate("the", seed=1, max_tokens=5).text  # type: ignore[attr-defined]
    except ConfigError as exc:
        # A valid config that cannot generate (a template's max_depth below what its
        # grammar needs) is a clear error at generation, not a loader's failure.
        return "loaded (generation refused: " + _reason(str(exc))[:40] + ")"
    if not isinstance(text, str):
        raise Finding("generate did not return text")
    model = getattr(gen, "model", None)
    if model is not None:
        _exercise(model, where)
    return "loaded"


def _reason(message: str) -> str:
    """A short category of a refusal: the message without paths, numbers and quotes."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    text = re.sub(r"/[^\s:]+", "PATH", text)
    text = re.sub(r"\d+", "N", text)
    text = text.split(": ", 1)[-1] if text.startswith(("PATH", "'…'")) else text
    return text[:90]


# -- seeds ---------------------------------------------------------------------------------------

def make_seeds(root: Path) -> dict[str, Any]:
    """Valid files and bundles to mutate."""
    word = NgramModel.estimate(CORPUS, 3, discount_fallback=[0.5, 1.0, 1.5])
    char = NgramModel.estimate(CORPUS, 2, mode="char", discount_fallback=[0.5, 1.0, 1.5])
    arpas, bins = [SRILM_ARPA.encode()], []
    for name, model in (("word", word), ("char", char)):
        model.write_arpa(root / f"{name}.arpa")
        model.save_binary(root / f"{name}.bin")
        arpas.append((root / f"{name}.arpa").read_bytes())
        bins.append((root / f"{name}.bin").read_bytes())
    srilm = root / "srilm.arpa"
    srilm.write_text(SRILM_ARPA)
    NgramModel.read_arpa(srilm).save_binary(root / "srilm.bin")
    bins.append((root / "srilm.bin").read_bytes())
    engine = Engine(plugins=["ngram", "template"], entry_points=True)
    bundles = []
    lm = engine.create("ngram", order=3, discount_fallback=(0.5, 1.0, 1.5))
    lm.fit(CORPUS)
    bundles.append(lm.save(root / "bundle-ngram"))
    chars = engine.create("ngram", order=2, tokenizer="char", discount_fallback=(0.5, 1.0, 1.5))
    chars.fit(CORPUS)
    bundles.append(chars.save(root / "bundle-char"))
    story = engine.create("template")
    story.fit({"origin": ["#a# and #b#"], "a": ["x", "#b#"], "b": ["1", "2"]})
    bundles.append(story.save(root / "bundle-template"))
    outside = root / "outside.bin"
    outside.write_bytes(bins[0])
    return {"arpa": arpas, "binary": bins, "bundle": bundles, "engine": engine,
            "outside": outside}


def _rehash(bundle: Path, manifest: dict[str, Any], name: str) -> None:
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _json_mutation(value: Any, rng: random.Random) -> Any:
    """A random structural edit of a JSON value (recursively into one branch)."""
    if isinstance(value, dict) and value and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        op = rng.randrange(4)
        if op == 0:
            del value[key]
        elif op == 1:
            value[key] = _json_mutation(value[key], rng)
        elif op == 2:
            value[key] = rng.choice([None, True, 0, -1, 2**70, HUGE, HUGER, 1.5, "", "x", [],
                                     {}, [[[[[]]]]], "../x", "a" * 1000])
        else:
            value[key + "_"] = value[key]
        return value
    if isinstance(value, list) and value and rng.random() < 0.7:
        i = rng.randrange(len(value))
        value[i] = _json_mutation(value[i], rng)
        return value
    return rng.choice([None, False, 3, 0, -5, 2**64, 1e308, "char", "word", "bpe", [1, 2],
                       {"a": 1}, value])


def bundle_case(seeds: dict[str, Any], rng: random.Random) -> Callable[[Path], Path]:
    """A function that writes one tampered copy of a seed bundle into a folder."""
    source: Path = rng.choice(seeds["bundle"])
    op = rng.randrange(12)

    def build(where: Path) -> Path:
        bundle = where / "bundle"
        shutil.copytree(source, bundle)
        mpath = bundle / "manifest.json"
        manifest = json.loads(mpath.read_text())
        payloads = sorted(manifest["files"])
        payload = rng.choice(payloads)
        if op == 0:  # the manifest's JSON, structurally
            manifest = _json_mutation(manifest, rng)
        elif op == 1:  # the config lies
            manifest["config"][rng.choice(sorted(manifest["config"]) or ["x"])] = rng.choice(
                [1, 2, 3, 5, 9, 0, -1, "char", "word", HUGE, HUGER, None, [0.5], "origin"])
        elif op == 2:  # an unlisted or swapped payload
            manifest["files"] = {} if rng.random() < 0.5 else manifest["files"]
            (bundle / rng.choice(["extra.bin", payload])).write_bytes(
                rng.choice(seeds["binary"]))
        elif op == 3:  # links
            target = rng.choice([seeds["outside"], Path("/etc/passwd"), Path("../x"),
                                 bundle / payload])
            victim = bundle / rng.choice([payload, "manifest.json", "sub"])
            if victim.exists() or victim.is_symlink():
                victim.unlink()
            victim.symlink_to(target)
        elif op == 4:  # payload bytes, re-hashed so the loader's own checks are reached
            data = (bundle / payload).read_bytes()
            mutator = mutate_binary if payload.endswith(".bin") else mutate_bytes
            (bundle / payload).write_bytes(mutator(data, rng, seeds["binary"]))
            _rehash(bundle, manifest, payload)
        elif op == 5:  # payload bytes, not re-hashed
            (bundle / payload).write_bytes(mutate_bytes((bundle / payload).read_bytes(), rng, []))
        elif op == 6:  # file entries
            manifest["files"][rng.choice(["../evil", "/etc/passwd", "sub/x", "manifest.json",
                                          payload])] = rng.choice(
                [{"size": 1, "sha256": "0" * 64}, {"size": "1"}, [], None,
                 {"size": -1, "sha256": ""}])
        elif op == 7:  # the manifest's bytes
            raw = mutate_bytes(_dumps(manifest).encode(), rng, [])
            mpath.write_bytes(raw)
            return bundle
        elif op == 8:  # nested too deeply
            mpath.write_text("[" * 100_000 + "]" * 100_000)
            return bundle
        elif op == 9:  # another bundle's payload, re-hashed
            other: Path = rng.choice(seeds["bundle"])
            names = sorted(json.loads((other / "manifest.json").read_text())["files"])
            shutil.copy(other / rng.choice(names), bundle / payload)
            _rehash(bundle, manifest, payload)
        elif op == 10:  # the payload is a folder, or gone
            (bundle / payload).unlink()
            if rng.random() < 0.5:
                (bundle / payload).mkdir()
        else:  # versions and names
            manifest[rng.choice(["format_version", "generator", "format"])] = rng.choice(
                [0, 2, -1, 2**63, "1", "ngram", "template", "hologram", "aigc-bundle", None])
        mpath.write_text(_dumps(manifest))
        return bundle

    return build


def _dumps(manifest: Any) -> str:
    """JSON text, with the huge-integer placeholders written out as digits."""
    return json.dumps(manifest).replace(f'"{HUGE}"', "9" * 4300).replace(f'"{HUGER}"', "9" * 5000)


# -- the plain loop ------------------------------------------------------------------------------

def run(targets: list[str], *, cases: int, seconds: float, seed: int, keep: Path,
        slow: float) -> dict[str, Any]:
    keep.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aigc-fuzz-") as tmp:
        seeds = make_seeds(Path(tmp))
        for target in targets:
            rng = random.Random(f"{seed}:{target}")
            outcomes: collections.Counter[str] = collections.Counter()
            findings: list[str] = []
            worst = 0.0
            start = time.monotonic()
            n = 0
            while (cases and n < cases) or (not cases and time.monotonic() - start < seconds):
                if cases and seconds and time.monotonic() - start >= seconds:
                    break
                n += 1
                where = Path(tmp) / f"case-{target}"
                shutil.rmtree(where, ignore_errors=True)
                where.mkdir()
                data: bytes | None = None
                t0 = time.monotonic()
                try:
                    if target == "arpa":
                        source = rng.choice(seeds["arpa"])
                        mutator = mutate_text if rng.random() < 0.6 else mutate_bytes
                        data = mutator(source, rng, seeds["arpa"])
                        (keep / "current.arpa").write_bytes(data)
                        outcome = check_arpa(data, where)
                    elif target == "binary":
                        data = mutate_binary(rng.choice(seeds["binary"]), rng, seeds["binary"])
                        (keep / "current.bin").write_bytes(data)
                        outcome = check_binary(data, where)
                    else:
                        build = bundle_case(seeds, rng)
                        outcome = check_bundle(build, seeds["engine"], where)
                except Finding as exc:
                    outcome = "FINDING"
                    findings.append(f"case {n}: {exc}")
                except Exception as exc:  # a promise broken: the wrong error type
                    outcome = "FINDING"
                    findings.append(f"case {n}: {type(exc).__name__}: {str(exc)[:300]}")
                elapsed = time.monotonic() - t0
                worst = max(worst, elapsed)
                if elapsed > slow:
                    findings.append(f"case {n}: took {elapsed:.1f} s")
                    outcome = "FINDING"
                if outcome == "FINDING":
                    if data is not None:
                        (keep / f"{target}-{n}").write_bytes(data)
                    elif (where / "bundle").exists():
                        shutil.copytree(where / "bundle", keep / f"bundle-{n}", symlinks=True,
                                        dirs_exist_ok=True)
                outcomes[outcome.split(": ", 1)[0].split(" (", 1)[0]] += 1
                if outcome.startswith(("refused", "loaded (")):
                    outcomes[outcome] += 1
            reasons = collections.Counter({k[len("refused: "):]: v for k, v in outcomes.items()
                                           if k.startswith("refused: ")})
            generation = sum(v for k, v in outcomes.items() if k.startswith("loaded ("))
            summary[target] = {
                "cases": n, "loaded": outcomes["loaded"], "refused": outcomes["refused"],
                "loaded_but_generation_refused": generation,
                "findings": len(findings), "seconds": round(time.monotonic() - start, 2),
                "slowest_case_seconds": round(worst, 4),
                "top_refusals": dict(reasons.most_common(8)), "finding_examples": findings[:10],
            }
    for name in ("current.arpa", "current.bin"):
        (keep / name).unlink(missing_ok=True)
    return summary


# -- atheris ---------------------------------------------------------------------------------------

def run_atheris(target: str, argv: list[str]) -> None:  # pragma: no cover - manual runs
    import atheris  # type: ignore[import-not-found]

    tmp = Path(tempfile.mkdtemp(prefix="aigc-atheris-"))
    seeds = make_seeds(tmp)
    corpus = tmp / "corpus"
    corpus.mkdir()
    for i, data in enumerate(seeds["arpa" if target == "arpa" else "binary"]):
        (corpus / f"seed{i}").write_bytes(data)

    def one(data: bytes) -> None:
        where = Path(tempfile.mkdtemp(dir=tmp))
        try:
            if target == "arpa":
                check_arpa(data, where)
            elif target == "binary":
                check_binary(data, where)
            else:
                rng = random.Random(data)
                check_bundle(bundle_case(seeds, rng), seeds["engine"], where)
        finally:
            shutil.rmtree(where, ignore_errors=True)

    atheris.instrument_all()  # coverage of the Python side (the bundle loader, the plugins)
    atheris.Setup([sys.argv[0], *argv, str(corpus)], one)
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="arpa, binary, bundle (default: all)")
    parser.add_argument("--cases", type=int, default=0, help="cases per target (0: --seconds)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="time per target (with --cases: a cap)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=5.0,
                        help="a case slower than this is a finding")
    parser.add_argument("--keep", type=Path, default=Path("fuzz-findings"),
                        help="where inputs of findings (and the current case) are kept")
    parser.add_argument("--atheris", choices=["arpa", "binary", "bundle"],
                        help="run libFuzzer (atheris) on one target; pass its options after --")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, rest = parser.parse_args(argv[:split]), argv[split + 1:]  # after --: libFuzzer's
    targets = args.targets or ["arpa", "binary", "bundle"]
    unknown = sorted(set(targets) - {"arpa", "binary", "bundle"})
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; choose arpa, binary, bundle")
    if args.atheris:
        run_atheris(args.atheris, rest)
        return
    summary = run(targets, cases=args.cases, seconds=args.seconds, seed=args.seed,
                  keep=args.keep, slow=args.slow)
    print(json.dumps(summary, indent=2, ensure_ascii=False))
    if not any(s["findings"] for s in summary.values()) and args.keep.is_dir() \
            and not any(args.keep.iterdir()):
        args.keep.rmdir()
    sys.exit(1 if any(s["findings"] for s in summary.values()) else 0)


if __name__ == "__main__":
    os.environ.setdefault("AIGC_PLUGINS", "*")
    main()
