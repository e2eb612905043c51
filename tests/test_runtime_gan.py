"""ONNX export of the gan generator and the torch-free runtime (``gan-onnx``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aigc_engine.runtime import class_labels, latents, make_grid

torch = pytest.importorskip("torch")

from aigc_engine import Engine  # noqa: E402
from aigc_engine.runtime import OnnxGanGenerator  # noqa: E402

TINY = {"g_width": 16, "d_width": 8, "latent_dim": 16, "batch_size": 32, "log_every": 0,
        "bn_batches": 4}

BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None
    sys.meta_path.insert(0, _BlockTorch())
""")


def test_latents_are_seeded_and_prefix_stable() -> None:
    a = latents(7, 5, 3)
    assert a.dtype == np.float32 and a.shape == (5, 3)
    assert np.array_equal(latents(7, 2, 3), a[:2])
    assert not np.array_equal(latents(8, 5, 3), a)
    assert abs(float(latents(0, 4000, 16).std()) - 1.0) < 0.02
    assert class_labels(3, 0, None) is None
    assert make_grid(np.zeros((5, 8, 8, 1), np.uint8)).shape == (19, 28, 1)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    engine = Engine(plugins=["gan"])
    root = tmp_path_factory.mktemp("onnx")
    out: dict[str, Any] = {}
    for kind, extra in (("uncond", {}), ("cond", {"conditional": True}),
                        ("cond_all", {"conditional": True, "g_labels": "all",
                                      "d_labels": "projection"})):
        gen = engine.create("gan", steps=20, seed=1, **TINY, **extra)
        gen.fit("digits")
        out[kind] = gen
        out[kind + "_bundle"] = gen.save(root / kind)
        out[kind + "_onnx"] = gen.export_onnx(root / (kind + "-onnx"))
    return out


@pytest.mark.parametrize("kind", ["uncond", "cond", "cond_all"])
def test_onnx_matches_torch(models: dict[str, Any], kind: str) -> None:
    gen = models[kind]
    exported = OnnxGanGenerator.load(models[kind + "_onnx"])
    assert exported.cfg.latent_dim == 16
    for n in (1, 7, 64):  # dynamic batch
        z = latents(n, n, 16)
        lab = class_labels(n, 10, None) if kind.startswith("cond") else None
        ref = gen._float_images(z, lab)
        got = exported.run(z, lab)
        assert got.shape == ref.shape == (n, 1, 8, 8)
        assert float(np.abs(got - ref).max()) < 1e-4
    a, b = gen.generate(n=32, seed=5), exported.generate(n=32, seed=5)
    assert a.labels == b.labels
    assert int(np.abs(a.images.astype(int) - b.images.astype(int)).max()) <= 1


def test_engine_loads_exported_bundle(models: dict[str, Any], tmp_path: Path) -> None:
    manifest = json.loads((models["cond_onnx"] / "manifest.json").read_text())
    assert manifest["generator"] == "gan-onnx" and "model.onnx" in manifest["files"]
    assert manifest["config"]["num_classes"] == 10
    gen = Engine(plugins=["gan"]).load(models["cond_onnx"])
    assert isinstance(gen, OnnxGanGenerator)
    res = gen.generate(n=4, seed=0, labels=(3, 3, 3, 3))
    files = gen.write_images(res, tmp_path / "out")
    assert [f.name for f in files][0] == "00000_label3.png"


def test_fresh_interpreter_without_torch(models: dict[str, Any], tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    code = BLOCK_TORCH + textwrap.dedent(f"""
        import json, sys
        import numpy as np
        from aigc_engine import Engine
        gen = Engine().load({str(models["uncond_onnx"])!r})
        res = gen.generate(n=8, seed=3)
        sys.argv = ["aigc", "generate", {str(models["uncond_onnx"])!r}, "-n", "16",
                    "--seed", "3", "--out", {str(grid)!r}]
        from aigc_engine.cli import main
        try:
            main()
        except SystemExit as exc:
            assert not exc.code, exc.code
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules)
        print(json.dumps({{"images": res.images.tolist(), "torch": "torch" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["torch"] is False and grid.is_file()
    ref = models["uncond"].generate(n=8, seed=3).images
    got = np.asarray(data["images"], dtype=np.uint8)
    assert int(np.abs(ref.astype(int) - got.astype(int)).max()) <= 1


def test_torch_blocked_gan_bundle_error(models: dict[str, Any]) -> None:
    code = BLOCK_TORCH + textwrap.dedent(f"""
        from aigc_engine import Engine, AigcError
        try:
            Engine().load({str(models["uncond_bundle"])!r})
        except AigcError as exc:
            print("error:", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "error:" in proc.stdout and "torch" in proc.stdout


def _lie_in_manifest(bundle: Path, target: Path, **changes: Any) -> Path:
    import shutil

    shutil.copytree(bundle, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["config"].update(changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(("changes", "match"), [
    ({"latent_dim": 64}, r"latent input of shape \['batch', 16\], the config says latent_dim=64"),
    ({"image_size": 16}, r"images of shape \[1, 8, 8\], the config says \[1, 16, 16\]"),
    ({"num_classes": 0, "class_names": []}, r"inputs \['label', 'z'\], the config implies \['z'\]"),
])
def test_onnx_bundle_whose_manifest_lies_is_refused(models: dict[str, Any], tmp_path: Path,
                                                    changes: dict[str, Any], match: str) -> None:
    from aigc_engine import ModelFormatError

    source = models["cond_onnx"] if "num_classes" in changes else models["uncond_onnx"]
    lying = _lie_in_manifest(source, tmp_path / "lying", **changes)
    with pytest.raises(ModelFormatError, match="model.onnx' does not match the config in its "
                       "manifest: " + match):
        Engine(plugins=["gan"]).load(lying)


def test_torch_bundle_whose_manifest_lies_is_refused(models: dict[str, Any],
                                                     tmp_path: Path) -> None:
    from aigc_engine import ModelFormatError

    lying = _lie_in_manifest(models["uncond_bundle"], tmp_path / "lying", latent_dim=64)
    with pytest.raises(ModelFormatError, match="weights in generator.safetensors do not match "
                       "the config in its manifest: .*size mismatch"):
        Engine(plugins=["gan"]).load(lying)


def test_corrupt_safetensors_and_history_name_the_file(models: dict[str, Any],
                                                       tmp_path: Path) -> None:
    import hashlib
    import shutil

    from aigc_engine import ModelFormatError

    def tamper(name: str, data: bytes) -> Path:
        target = tmp_path / f"bundle{len(list(tmp_path.iterdir()))}"
        shutil.copytree(models["uncond_bundle"], target)
        (target / name).write_bytes(data)
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (target / "manifest.json").write_text(json.dumps(manifest))
        return target

    bad_weights = tamper("generator.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelFormatError,
                       match=r"generator\.safetensors' is not a readable safetensors file"):
        Engine(plugins=["gan"]).load(bad_weights)
    bad_history = tamper("history.json", b'[{"step": 1,')
    with pytest.raises(ModelFormatError,
                       match=r"training history '.*history\.json' is not valid JSON"):
        Engine(plugins=["gan"]).load(bad_history)
    wrong_history = tamper("history.json", b'{"step": 1}')
    with pytest.raises(ModelFormatError, match="must be a JSON list of objects"):
        Engine(plugins=["gan"]).load(wrong_history)


def test_info_on_a_torch_free_server_shows_the_manifest(models: dict[str, Any]) -> None:
    code = BLOCK_TORCH + textwrap.dedent(f"""
        sys.argv = ["aigc", "info", {str(models["uncond_bundle"])!r}]
        from aigc_engine.cli import main
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "generator   gan" in proc.stdout
    assert "verified    no (the gan generator" in proc.stdout and "torch" in proc.stdout
