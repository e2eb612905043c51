"""The torch-free runtime in a virtual environment with the core install only
(no torch, no onnx): exported Transformer, LSTM and GAN bundles load, generate,
stream and evaluate exactly as the torch generators did. Run by .ci/run with
AIGC_RUNTIME_BUNDLES pointing at scripts/export_runtime_fixtures.py's output."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

BUNDLES = Path(os.environ.get("AIGC_RUNTIME_BUNDLES", ""))
EXPECTED = json.loads((BUNDLES / "expected.json").read_text()) if BUNDLES.name else {}


def test_this_environment_has_no_torch_and_no_onnx() -> None:
    assert BUNDLES.name, "set AIGC_RUNTIME_BUNDLES"
    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("onnx") is None


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_text_bundles_generate_stream_and_evaluate(name: str) -> None:
    import sys

    from aigc_engine import Engine

    gen = Engine().load(BUNDLES / name)
    want = EXPECTED[name]
    for request, texts in zip(EXPECTED["requests"], want["texts"], strict=True):
        assert gen.generate(**request).texts == texts
        pieces = [""] * len(texts)
        for event in gen.stream(**request):
            if hasattr(event, "index"):
                pieces[event.index] += event.text
        assert pieces == texts
    bpb = gen.evaluate(EXPECTED["text"])["bits_per_byte"]
    assert bpb == pytest.approx(want["bits_per_byte"], rel=1e-4)
    assert "torch" not in sys.modules


def test_gan_bundle_generates_the_same_images() -> None:
    from aigc_engine import Engine

    gen = Engine().load(BUNDLES / "gan")
    images = gen.generate(n=4, seed=3).images
    want = np.array(EXPECTED["gan"]["pixels"], dtype=np.uint8)
    assert images.shape == want.shape
    assert np.abs(images.astype(int) - want.astype(int)).max() <= 1
