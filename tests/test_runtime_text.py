"""ONNX export of the lstm and transformer generators and the torch-free text runtime
(``text-onnx``): parity with torch, generation token for token, int8, bad bundles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import aigc_engine.plugins.lstm as lstm_plugin  # noqa: E402
import aigc_engine.plugins.runtime as runtime_plugin  # noqa: E402
import aigc_engine.plugins.transformer as transformer_plugin  # noqa: E402
from aigc_engine import ModelFormatError, TextRequest  # noqa: E402
from aigc_engine.decoding import decode  # noqa: E402
from aigc_engine.runtime.text import OnnxTextGenerator  # noqa: E402
from aigc_engine.testing import isolated_engine  # noqa: E402

TEXT = ["the quick brown fox jumps over the lazy dog."] * 24 + \
       ["a lazy dog sleeps under the brown tree."] * 16
TINY = {
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32,
                    "positions": "learned"},
    "transformer-rope": {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32,
                         "positions": "rope"},
    "lstm": {"n_layer": 2, "n_embd": 32, "hidden": 48, "dropout": 0.0, "window": 32},
}
FAST = {"threads": 1, "batch_size": 8, "warmup_steps": 5, "log_every": 0, "max_steps": 60,
        "lr": 3e-3}
PROMPTS = ["", "t", "the", "the quick", "a lazy dog", "brown", "the lazy", "fox ", "dog.",
           "a", "under the", "jumps over", "tree", "the quick brown fox jumps", "sleeps",
           "o", "lazy dog sleeps under the brown", "q", "the brown tree.", "over the lazy d"]


@pytest.fixture(scope="module")
def engine() -> Any:
    return isolated_engine({"lstm": lstm_plugin, "transformer": transformer_plugin,
                            "runtime": runtime_plugin})


@pytest.fixture(scope="module")
def models(engine: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("text-onnx")
    out: dict[str, Any] = {}
    for key, arch in TINY.items():
        kind = key.split("-")[0]
        gen = engine.create(kind, **arch, **FAST)
        gen.fit(TEXT)
        out[key] = gen
        out[key + "/onnx"] = engine.load(gen.export(root / key, format="onnx"))
    out["transformer/int8"] = engine.load(
        out["transformer"].export(root / "int8", format="onnx", quantize="int8"))
    # A decoder of plain ONNX operators (present = past + new), as other plugins' graphs
    # or bundles exported before the fused attention: the runtime's other step path.
    from aigc_engine.onnx_export import export_text_model
    from aigc_engine.plugins.transformer.export import DecoderGraph

    gpt = out["transformer"]
    _, cfg = gpt.onnx_graph()
    plain = export_text_model(DecoderGraph(gpt.gpt, fused=False),
                              cfg.replace(shared_cache=False), gpt.tokenizer,
                              reference=gpt.net)
    out["transformer-plain/onnx"] = engine.load(plain.save(root / "plain"))
    out["root"] = root
    return out


@pytest.mark.parametrize("key", list(TINY))
def test_logits_match_torch_over_prompts_and_a_padded_batch(models: dict[str, Any],
                                                            key: str) -> None:
    gen, onnx = models[key], models[key + "/onnx"]
    assert isinstance(onnx, OnnxTextGenerator)
    tok = gen.tokenizer
    start = tok.eos_id
    rows = [[start, *tok.encode(p)] for p in PROMPTS[:8]]
    batch = onnx.teacher_forced(rows)  # one right-padded batch
    for r, got in zip(rows, batch, strict=True):
        with torch.no_grad():
            want = gen.net(torch.tensor([r]))[0].numpy()
        assert np.abs(got - want).max() < 1e-4
    # The runtime's own prefill/step path (KV cache or state) gives the same last logits.
    tm = onnx.token_model()
    logits, state = tm.prefill([tok.encode(p) for p in PROMPTS[:6]])
    for i, p in enumerate(PROMPTS[:6]):
        with torch.no_grad():
            want = gen.net(torch.tensor([[start, *tok.encode(p)]]))[0, -1].numpy()
        assert np.abs(logits[i] - want).max() < 1e-4
    nxt = np.array([tok.encode("e")[0]] * 6)
    logits, state = tm.step(nxt, state)
    for i, p in enumerate(PROMPTS[:6]):
        with torch.no_grad():
            want = gen.net(torch.tensor([[start, *tok.encode(p + "e")]]))[0, -1].numpy()
        assert np.abs(logits[i] - want).max() < 1e-4


def _batched_ids(model: Any, requests: list[TextRequest]) -> list[list[int]]:
    """Token ids of every request, all decoded in one batch."""
    from aigc_engine.decoding import DecodeBatch

    batch = DecodeBatch(model)
    seqs = [batch.add(r)[0] for r in requests]
    while not batch.done:
        batch.step()
    return [s.completion().token_ids for s in seqs]


@pytest.mark.parametrize("key", list(TINY))
def test_greedy_generations_equal_torch_token_for_token(models: dict[str, Any],
                                                        key: str) -> None:
    gen, onnx = models[key], models[key + "/onnx"]
    # 20 prompts, 40 new tokens each (past the 32-token context: the window slides),
    # decoded as one batch in torch and in the runtime.
    reqs = [TextRequest.build(p, max_tokens=40, temperature=0, seed=0, stop_at_eos=False)
            for p in PROMPTS]
    want = _batched_ids(gen.token_model(), reqs)
    assert _batched_ids(onnx.token_model(), reqs) == want
    assert onnx.generate(reqs[3]).choices[0].token_ids == want[3]  # alone too


def test_a_plain_decoder_graph_generates_as_torch(models: dict[str, Any]) -> None:
    """The step path of decoders without the fused attention (their cache passed as
    the past): greedy ids equal torch's for 20 prompts, the window sliding."""
    reqs = [TextRequest.build(p, max_tokens=40, temperature=0, seed=0, stop_at_eos=False)
            for p in PROMPTS]
    plain = models["transformer-plain/onnx"]
    assert not plain.cfg.shared_cache and models["transformer/onnx"].cfg.shared_cache
    assert _batched_ids(plain.token_model(), reqs) == \
        _batched_ids(models["transformer"].token_model(), reqs)


@pytest.mark.parametrize("key", ["transformer", "lstm"])
def test_seeded_sampling_equals_torch_and_batches(models: dict[str, Any], key: str) -> None:
    # The same sampler and keys on logits equal within 1e-4: a draw could differ only
    # if a uniform number fell within ~1e-4 of a bucket edge; these seeds do not.
    gen, onnx = models[key], models[key + "/onnx"]
    for s in range(6):
        req = TextRequest.build(PROMPTS[s], max_tokens=30, seed=s, n=3, top_k=10,
                                stop_at_eos=False)
        assert onnx.generate(req).texts == gen.generate(req).texts
    # n samples in one batch equal one by one through the runtime.
    req = TextRequest.build("the", max_tokens=20, seed=9, n=4)
    together = onnx.generate(req).texts
    alone = [decode(onnx.token_model(), TextRequest.build("the", max_tokens=20, seed=9, n=i + 1)
                    ).texts[i] for i in range(4)]
    assert together == alone


@pytest.mark.parametrize("key", [*TINY, "transformer-plain"])
def test_rows_do_not_depend_on_their_batch(models: dict[str, Any], key: str) -> None:
    """Bitwise: each request's tokens and log-probabilities decoded alone equal those
    it gets in a batch with others of other lengths (prefill, steps, rows leaving as
    they finish, the 32-token window sliding, requests joining midway)."""
    from aigc_engine.decoding import DecodeBatch

    tm = models[key + "/onnx"].token_model()
    assert tm.batch_invariant
    assert not models["transformer/int8"].token_model().batch_invariant
    reqs = [TextRequest.build(p, max_tokens=30 + 3 * i, seed=i, logprobs=2, top_k=8,
                              stop_at_eos=False) for i, p in enumerate(PROMPTS[:8])]

    def seen(seq: Any) -> list[Any]:
        c = seq.completion()
        return [c.token_ids, [(lp.token_id, lp.logprob, lp.top) for lp in c.logprobs]]

    alone = []
    for r in reqs:
        batch = DecodeBatch(tm)
        (seq,) = batch.add(r)
        while not batch.done:
            batch.step()
        alone.append(seen(seq))
    batch = DecodeBatch(tm)
    seqs = [batch.add(r)[0] for r in reqs[:5]]
    for _ in range(7):
        batch.step()
    seqs += [batch.add(r)[0] for r in reqs[5:]]  # joining a running batch
    while not batch.done:
        batch.step()
    assert [seen(s) for s in seqs] == alone


def test_stream_and_evaluate_through_the_runtime(models: dict[str, Any]) -> None:
    onnx, gen = models["transformer/onnx"], models["transformer"]
    pieces = "".join(onnx.stream_text("the", max_tokens=25, seed=3))
    assert pieces == onnx.generate("the", max_tokens=25, seed=3).text
    a, b = onnx.evaluate(TEXT[:8]), gen.evaluate(TEXT[:8])
    assert a["tokens"] == b["tokens"]
    assert a["bits_per_byte"] == pytest.approx(b["bits_per_byte"], rel=1e-4)
    c, d = models["lstm/onnx"].evaluate(TEXT[:8]), models["lstm"].evaluate(TEXT[:8])
    assert c["bits_per_byte"] == pytest.approx(d["bits_per_byte"], rel=1e-4)


def test_int8_bundles_load_and_generate(models: dict[str, Any]) -> None:
    q = models["transformer/int8"]
    assert q.cfg.quantized and q.metrics["int8_max_abs_diff"] > 0
    assert len(q.generate("the", max_tokens=10, seed=1, min_tokens=10).choices[0].token_ids) == 10
    f32 = models["transformer/onnx"].evaluate(TEXT)["bits_per_byte"]
    i8 = q.evaluate(TEXT)["bits_per_byte"]
    assert abs(i8 - f32) / f32 < 0.05  # the 1% target is measured on real data in benchmarks/


def test_bundle_files(models: dict[str, Any]) -> None:
    root: Path = models["root"]
    manifest = json.loads((root / "transformer" / "manifest.json").read_text())
    assert manifest["generator"] == "text-onnx" and manifest["config"]["kind"] == "decoder"
    assert {"model.onnx", "genai_config.json"} <= set(manifest["files"])
    genai = json.loads((root / "transformer" / "genai_config.json").read_text())
    assert genai["model"]["decoder"]["inputs"]["past_key_names"] == "past_key_values.%d.key"


@pytest.mark.parametrize("key", ["transformer", "transformer-rope"])
def test_onnxruntime_genai_runs_the_export(models: dict[str, Any], key: str) -> None:
    """onnxruntime-genai (a dev dependency) drives the exported graph from
    ``genai_config.json`` alone; its greedy ids equal ours for every prompt that leaves
    room in the 32-token context (genai does not slide the window)."""
    og = pytest.importorskip("onnxruntime_genai")
    rt = models[key + "/onnx"]
    model = og.Model(str(models["root"] / key))
    compared = 0
    for prompt in PROMPTS:
        ids = [rt.cfg.start_id, *rt.tokenizer.encode(prompt)]
        if len(ids) > 24:
            continue
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=32, do_sample=False)
        gen = og.Generator(model, params)
        gen.append_tokens(np.array([ids], dtype=np.int32))
        while not gen.is_done():
            gen.generate_next_token()
        theirs = [int(t) for t in gen.get_sequence(0)][len(ids):]
        ours = rt.generate(TextRequest.build(prompt, max_tokens=len(theirs), temperature=0,
                                             stop_at_eos=False)).choices[0].token_ids
        assert len(theirs) == 32 - len(ids) and theirs == ours, prompt
        compared += 1
    assert compared >= 15


def _rewrite(bundle: Path, *, config: dict[str, Any] | None = None,
             model: bytes | None = None, extra: dict[str, Any] | None = None) -> None:
    import hashlib

    m = json.loads((bundle / "manifest.json").read_text())
    if config:
        m["config"].update(config)
    if extra:
        m["extra"].update(extra)
    if model is not None:
        (bundle / "model.onnx").write_bytes(model)
        m["files"]["model.onnx"] = {"size": len(model),
                                    "sha256": hashlib.sha256(model).hexdigest()}
    (bundle / "manifest.json").write_text(json.dumps(m))


def test_bad_bundles_are_model_format_errors(models: dict[str, Any], engine: Any,
                                             tmp_path: Path) -> None:
    import shutil

    src: Path = models["root"] / "transformer"

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        return dst

    data = (src / "model.onnx").read_bytes()
    b = copy("truncated")
    _rewrite(b, model=data[: len(data) // 2])
    with pytest.raises(ModelFormatError, match="not a loadable ONNX model"):
        engine.load(b)
    b = copy("inputs")
    _rewrite(b, config={"n_layer": 3})
    with pytest.raises(ModelFormatError, match="do not match the bundle's config"):
        engine.load(b)
    b = copy("tokenizer")
    _rewrite(b, extra={"tokenizer": {"kind": "byte"}})
    with pytest.raises(ModelFormatError, match="tokenizer has 258 tokens but"):
        engine.load(b)


def test_runtime_never_imports_torch(models: dict[str, Any]) -> None:
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' or name.startswith('torch.'):\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import json\n"
        "from aigc_engine import Engine\n"
        f"for b in ({str(models['root'] / 'transformer')!r}, {str(models['root'] / 'lstm')!r}):\n"
        "    g = Engine().load(b)\n"
        "    print(json.dumps(g.generate('the', max_tokens=12, seed=4, temperature=0).text))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    want = [models[k].generate("the", max_tokens=12, seed=4, temperature=0).text
            for k in ("transformer", "lstm")]
    assert [json.loads(line) for line in out.stdout.splitlines()] == want
