"""Export tiny Transformer, LSTM and GAN bundles for the torch-free runtime tests.

Run with torch installed; writes OUT/{transformer,lstm,gan}/ (exported bundles)
and OUT/expected.json: what the torch generators produce for the requests the
runtime tests repeat without torch (``tests_runtime/``).

    python scripts/export_runtime_fixtures.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TEXT = ["the quick brown fox jumps over the lazy dog."] * 24 + \
       ["a lazy dog sleeps under the brown tree."] * 16
FAST = {"threads": 1, "batch_size": 8, "warmup_steps": 5, "log_every": 0, "max_steps": 60,
        "lr": 3e-3}
REQUESTS = [{"prompt": "the", "max_tokens": 40, "temperature": 0, "seed": 0,
             "stop_at_eos": False},
            {"prompt": "a lazy", "max_tokens": 30, "seed": 5, "n": 3, "top_k": 10,
             "stop_at_eos": False}]


def main(out: Path) -> None:
    from aigc_engine import Engine

    engine = Engine()
    expected: dict[str, object] = {"text": TEXT, "requests": REQUESTS}
    for name, arch in (("transformer", {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32}),
                       ("lstm", {"n_layer": 2, "n_embd": 32, "hidden": 48, "window": 32})):
        gen = engine.create(name, **arch, **FAST)
        gen.fit(TEXT)
        gen.export(out / name, format="onnx")
        expected[name] = {
            "texts": [gen.generate(**r).texts for r in REQUESTS],
            "bits_per_byte": gen.evaluate(TEXT)["bits_per_byte"],
        }
    gan = engine.create("gan", steps=5, seed=1, g_width=8, d_width=8, latent_dim=8,
                        batch_size=16, log_every=0)
    gan.fit("digits")
    gan.export(out / "gan", format="onnx")
    expected["gan"] = {"pixels": gan.generate(n=4, seed=3).images.tolist()}
    (out / "expected.json").write_text(json.dumps(expected), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
