"""The lstm and transformer generators: training, the KV cache, batching, bundles,
resume, tokenizers and every bad input the issue lists. Tiny models, one thread."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aigc_engine.plugins.lstm as lstm_plugin
import aigc_engine.plugins.transformer as transformer_plugin
from aigc_engine import ConfigError, Engine, ModelFormatError, TextRequest
from aigc_engine.decoding import DecodeBatch, decode
from aigc_engine.plugins.transformer.generator import TransformerTokenModel
from aigc_engine.plugins.transformer.nets import GPT, GPTShape
from aigc_engine.testing import check_generator, isolated_engine
from aigc_engine.tokenizers import CharTokenizer
from aigc_engine.training import TrainingDivergedError

TEXT = ["the quick brown fox jumps over the lazy dog."] * 24 + \
       ["a lazy dog sleeps under the brown tree."] * 16
TINY: dict[str, dict[str, Any]] = {
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32,
                    "positions": "learned"},
    "lstm": {"n_layer": 1, "n_embd": 32, "hidden": 64, "dropout": 0.0, "window": 32},
}
STEPS = {"transformer": 300, "lstm": 150}
FAST = {"threads": 1, "batch_size": 8, "warmup_steps": 10, "log_every": 10}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return isolated_engine({"lstm": lstm_plugin, "transformer": transformer_plugin})


def make(engine: Engine, name: str, **options: Any) -> Any:
    return engine.create(name, **{**TINY[name], **FAST, **options})


@pytest.fixture(scope="module")
def trained(engine: Engine) -> dict[str, Any]:
    """One model of each kind, trained until the stated loss (see test_loss_falls)."""
    out = {}
    for name, lr in (("transformer", 3e-3), ("lstm", 1e-2)):
        gen = make(engine, name, max_steps=STEPS[name], lr=lr, min_lr=lr / 10, eval_every=50,
                   valid_fraction=0.1)
        gen.fit(TEXT)
        out[name] = gen
    return out


@pytest.mark.parametrize("name,bound", [("transformer", 0.3), ("lstm", 0.4)])
def test_loss_falls_below_a_stated_value(trained: dict[str, Any], name: str,
                                         bound: float) -> None:
    gen = trained[name]
    # A uniform guess over the alphabet costs log(vocab) nats per character.
    assert gen.metrics["valid_loss"] < bound < math.log(gen.tokenizer.vocab_size)
    assert gen.evaluate(TEXT[:3])["nats_per_token"] < bound
    steps = STEPS[name]
    assert gen.metrics["steps"] == steps and gen.metrics["tokens_seen"] == steps * 8 * 32
    assert gen.metrics["parameters"] > 0


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_contract(engine: Engine, name: str) -> None:
    check_generator(engine, name, data=TEXT, options={**TINY[name], **FAST, "max_steps": 20},
                    request={"max_tokens": 24, "prompt": "the "})


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_kv_cache_logits_equal_full_recomputation(positions: str) -> None:
    torch.manual_seed(0)
    net = GPT(GPTShape(vocab_size=20, context=12, n_layer=2, n_head=2, n_embd=16,
                       positions=positions)).eval()
    tok = CharTokenizer("abcdefghijklmnopqrs")  # 19 characters + end-of-text = 20
    model = TransformerTokenModel(net, tok, torch.device("cpu"))
    prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10], [4, 5]]  # different lengths, a repeat
    logits, state = model.prefill(prompts)
    rng = np.random.default_rng(0)
    slid = 0
    for step in range(25):  # past the context: the window slides
        for r, ids in enumerate(state.ids):
            assert len(ids) <= model.context
            with torch.no_grad():
                full = net(torch.tensor([ids]))[0, -1]
            assert torch.allclose(logits[r], full, atol=1e-5), (step, r)
        tokens = rng.integers(0, 19, size=len(prompts)).astype(np.int64)
        before = [len(ids) for ids in state.ids]
        logits, state = model.step(tokens, state)
        for b, ids in zip(before, state.ids, strict=True):
            if len(ids) < b + 1:
                assert len(ids) == model.keep
                slid += 1
    assert slid >= 4
    # rows leave the batch (select) and join it (concat) without changing the others
    keep = np.array([0, 2])
    sub = model.select(state, keep)
    more_logits, more = model.prefill([[3, 3, 3]])
    joined = model.concat([sub, more])
    out, joined = model.step(np.array([1, 2, 3], dtype=np.int64), joined)
    for r, ids in enumerate(joined.ids):
        with torch.no_grad():
            assert torch.allclose(out[r], net(torch.tensor([ids]))[0, -1], atol=1e-5)


def test_step_follows_weights_changed_in_place() -> None:
    """The step's (in, out) weight copies are made again after training changes a weight."""
    torch.manual_seed(0)
    net = GPT(GPTShape(vocab_size=20, context=12, n_layer=2, n_head=2, n_embd=16)).eval()
    ids = torch.tensor([[1, 2, 3]])
    _, cache = net.prefill(ids, 12)
    net.step(torch.tensor([4]), cache)
    with torch.no_grad():
        for b in net.blocks:
            b.attn.qkv.weight.mul_(1.5)  # as an optimiser step would
            b.mlp.fc.weight.add_(0.1)
    _, cache = net.prefill(ids, 12)
    out = net.step(torch.tensor([4]), cache)
    with torch.no_grad():
        full = net(torch.tensor([[1, 2, 3, 4]]))[0, -1]
    assert torch.allclose(out[0], full, atol=1e-5)
    net.load_state_dict(GPT(net.shape).state_dict())  # another model's weights
    _, cache = net.prefill(ids, 12)
    out = net.step(torch.tensor([4]), cache)
    with torch.no_grad():
        assert torch.allclose(out[0], net(torch.tensor([[1, 2, 3, 4]]))[0, -1], atol=1e-5)


def test_long_prompt_uses_the_documented_window(trained: dict[str, Any]) -> None:
    gen = trained["transformer"]
    model = gen.token_model()
    prompt = gen.tokenizer.encode(" ".join(TEXT[:4]))  # far longer than the context of 32
    _, state = model.prefill([prompt])
    assert state.ids[0] == ([model.start] + prompt)[-model.keep:]
    result = gen.generate(" ".join(TEXT[:4]), max_tokens=80, seed=3)
    assert result.usage.completion_tokens == 80


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_batched_generation_equals_one_by_one(trained: dict[str, Any], name: str) -> None:
    gen = trained[name]
    model = gen.token_model()
    requests = [TextRequest(prompt=p, max_tokens=40, seed=s, n=2, stop_at_eos=False)
                for p, s in (("the", 1), ("a lazy dog", 2), ("", 3), ("the quick brown", 4))]
    alone = [decode(model, r).texts for r in requests]
    batch = DecodeBatch(model)
    seqs = [batch.add(r) for r in requests]
    while not batch.done:
        batch.step()
    together = [[s.completion().text for s in group] for group in seqs]
    assert together == alone
    assert gen.generate("the", n=4, seed=9, max_tokens=30).texts[0] == \
        gen.generate("the", n=1, seed=9, max_tokens=30).texts[0]


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_save_load_round_trip(trained: dict[str, Any], engine: Engine, tmp_path: Path,
                              name: str) -> None:
    gen = trained[name]
    path = gen.save(tmp_path / name)
    manifest = json.loads((path / "manifest.json").read_text())
    assert "lr" not in manifest["config"] and "max_steps" not in manifest["config"]
    assert manifest["metrics"]["training"]["max_steps"] == STEPS[name]
    assert manifest["metrics"]["parameters"] == gen.metrics["parameters"]
    assert set(manifest["files"]) >= {"model.safetensors", "history.json"}
    loaded = engine.load(path)
    req = {"prompt": "the", "max_tokens": 50, "seed": 5, "n": 3, "logprobs": 2}
    a, b = gen.generate(**req), loaded.generate(**req)
    assert a.texts == b.texts
    assert [c.logprobs for c in a.choices] == [c.logprobs for c in b.choices]
    assert loaded.evaluate(TEXT[:2]) == gen.evaluate(TEXT[:2])


def test_stream_stop_strings_and_logprobs(trained: dict[str, Any]) -> None:
    gen = trained["transformer"]
    result = gen.generate("the quick", max_tokens=60, seed=1, stop=["sleeps"], logprobs=3,
                          stop_at_eos=False)
    assert "sleeps" not in result.texts[0] and result.choices[0].finish_reason == "stop"
    lps = result.choices[0].logprobs
    assert lps is not None and len(lps) == len(result.choices[0].token_ids)
    assert all(lp.logprob <= 0 and len(lp.top) <= 3 for lp in lps)
    pieces = [e.text for e in gen.stream("the quick", max_tokens=60, seed=1, stop=["sleeps"],
                                         stop_at_eos=False) if hasattr(e, "index")]
    assert "".join(pieces) == result.texts[0]


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_same_seed_same_weights_and_resume_equals_uninterrupted(
        engine: Engine, tmp_path: Path, name: str) -> None:
    opts = {"max_steps": 30, "checkpoint_every": 15, "eval_every": 10, "valid_fraction": 0.2,
            "dropout": 0.1}
    full = make(engine, name, work_dir=str(tmp_path / "a"), **opts)
    full.fit(TEXT)
    again = make(engine, name, work_dir=str(tmp_path / "b"), **opts)
    again.fit(TEXT)
    ckpt = tmp_path / "a" / "checkpoints" / "step_0000015.safetensors"
    assert ckpt.is_file() and (tmp_path / "a" / "loss_curve.png").is_file()
    resumed = make(engine, name, work_dir=str(tmp_path / "c"), resume=str(ckpt), **opts)
    resumed.fit(TEXT)
    ref = full.net.state_dict()
    for other in (again, resumed):
        state = other.net.state_dict()
        assert all(torch.equal(ref[k], state[k]) for k in ref)
    assert resumed.metrics["steps"] == 30 and resumed.metrics["tokens_seen"] == \
        full.metrics["tokens_seen"]


@pytest.mark.parametrize("kind,extra", [("byte", {}), ("bpe", {"vocab_size": 300})])
@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_any_tokenizer(engine: Engine, tmp_path: Path, name: str, kind: str,
                       extra: dict[str, Any]) -> None:
    gen = make(engine, name, tokenizer=kind, max_steps=5, **extra)
    gen.fit(TEXT + ["héllo wörld ✓ 東京"])
    assert gen.tokenizer.kind == kind
    text = gen.generate("héllo", max_tokens=20, seed=1).texts[0]
    loaded = engine.load(gen.save(tmp_path / "b"))
    assert loaded.generate("héllo", max_tokens=20, seed=1).texts[0] == text
    assert loaded.evaluate(["東京 wörld"])["bits_per_byte"] > 0


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_data_shorter_than_one_context(engine: Engine, name: str) -> None:
    with pytest.raises(ConfigError, match="shorter than one training window"):
        make(engine, name, max_steps=5).fit(["too short"])


def test_empty_file(engine: Engine, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        make(engine, "transformer", max_steps=5).fit(str(empty))
    with pytest.raises(ConfigError, match="is empty"):
        make(engine, "lstm", max_steps=5, valid=str(empty)).fit(TEXT)


def test_nan_loss_stops_with_the_step_and_the_last_good_checkpoint(engine: Engine,
                                                                   tmp_path: Path) -> None:
    gen = make(engine, "transformer", max_steps=50, lr=1e12, min_lr=1e12, warmup_steps=0,
               grad_clip=0.0, checkpoint_every=1, work_dir=str(tmp_path))
    with pytest.raises(TrainingDivergedError, match=r"at step \d+.*last good checkpoint: .*"
                       r"step_\d+\.safetensors") as info:
        gen.fit(TEXT)
    step = int(str(info.value).split("at step ")[1].split(":")[0])
    assert (tmp_path / "checkpoints" / f"step_{step - 1:07d}.safetensors").is_file()
    assert not gen.trained


def test_resume_with_another_tokenizer_is_refused(engine: Engine, tmp_path: Path) -> None:
    make(engine, "transformer", max_steps=4, checkpoint_every=2, work_dir=str(tmp_path)).fit(TEXT)
    ckpt = tmp_path / "checkpoints" / "step_0000002.safetensors"
    other = [line.upper() for line in TEXT]
    with pytest.raises(ConfigError, match="another tokenizer"):
        make(engine, "transformer", max_steps=4, resume=str(ckpt)).fit(other)
    with pytest.raises(ConfigError, match="holds a model with config"):
        make(engine, "transformer", max_steps=4, resume=str(ckpt), n_embd=64).fit(TEXT)
    with pytest.raises(ModelFormatError, match="no checkpoint"):
        make(engine, "transformer", max_steps=4, resume=str(tmp_path / "nope")).fit(TEXT)


@pytest.mark.parametrize("options,message", [
    ({"n_embd": 30, "n_head": 4}, "multiple of n_head"),
    ({"window": 64}, "longer than context"),
    ({"tokenizer": "bpe"}, "vocab_size >= 258"),
    ({"max_steps": 0}, "give a budget"),
    ({"valid": "x.txt", "valid_fraction": 0.1}, "not both"),
    ({"checkpoint_every": 5}, "needs work_dir"),
    ({"lr": 0.0}, "lr must be > 0"),
])
def test_bad_options(engine: Engine, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(engine, "transformer", **options)


def test_cli_train_info_generate(tmp_path: Path) -> None:
    data, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    data.write_text("\n".join(TEXT) + "\n")
    valid.write_text("\n".join(TEXT[::7]) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}

    def aigc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "aigc_engine", *args], capture_output=True,
                              text=True, env=env, timeout=300)

    out = aigc("train", "lstm", "--data", str(data), "--valid", str(valid), "--set",
               "max_steps=10", "--set", "threads=1", "--set", "hidden=32", "--set", "n_embd=16",
               "-o", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    info = aigc("info", str(tmp_path / "m"))
    assert info.returncode == 0, info.stderr
    assert "parameters=" in info.stdout and "tokens_seen=" in info.stdout
    gen = aigc("generate", str(tmp_path / "m"), "--prompt", "the", "--max-tokens", "10",
               "--seed", "1")
    assert gen.returncode == 0, gen.stderr
    ev = aigc("eval", str(tmp_path / "m"), "--data", str(valid))
    assert ev.returncode == 0 and "bits_per_byte" in ev.stdout + ev.stderr, ev.stderr
    bad = aigc("train", "transformer", "--data", str(data), "--set", "no_such=1", "-o",
               str(tmp_path / "x"))
    assert bad.returncode != 0 and "unknown option" in bad.stderr
