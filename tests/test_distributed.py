"""Training on several processes (torchrun, gloo, 127.0.0.1): 2 ranks train as 1 rank at
the same global batch for the LSTM, the Transformer and the GAN; SIGKILL and resume
equals an uninterrupted run; two "nodes"; a killed rank stops the others with its name;
torchrun --max-restarts resumes from the last checkpoint. One torch thread per rank."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():
    pytest.skip("this torch has no torch.distributed", allow_module_level=True)

from safetensors.torch import load_file  # noqa: E402

import aigc_engine.plugins.lstm as lstm_plugin  # noqa: E402
import aigc_engine.plugins.transformer as transformer_plugin  # noqa: E402
from aigc_engine import ConfigError, Engine  # noqa: E402
from aigc_engine.distributed import World  # noqa: E402
from aigc_engine.testing import isolated_engine  # noqa: E402
from aigc_engine.training import latest_checkpoint, resume_path  # noqa: E402

WORKER = Path(__file__).with_name("dist_worker.py")
TEXT = ["the quick brown fox jumps over the lazy dog."] * 24 + \
       ["a lazy dog sleeps under the brown tree."] * 16
LM: dict[str, dict[str, Any]] = {
    "transformer": {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32},
    "lstm": {"n_layer": 2, "n_embd": 32, "hidden": 48, "window": 32},
}
# accumulate=2: each step is 2 micro-batches of 8 windows, each split 4 + 4 over 2 ranks.
LM_TRAIN = {"threads": 1, "batch_size": 8, "accumulate": 2, "warmup_steps": 2, "lr": 3e-3,
            "log_every": 4, "max_steps": 12, "valid_fraction": 0.2, "eval_every": 6,
            "dropout": 0.0}
GAN = {"g_width": 8, "d_width": 8, "latent_dim": 16, "batch_size": 32, "log_every": 5,
       "bn_batches": 4, "steps": 10, "seed": 3, "conditional": True, "threads": 1}
TIMEOUT = 240  # a hang guard for the subprocesses, far above what they take


def _sets(options: dict[str, Any]) -> list[str]:
    out = []
    for k, v in options.items():
        out += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    return out


def _run(args: list[str], *, torchrun: list[str] | None = None,
         kill: str | None = None) -> subprocess.CompletedProcess[str]:
    """``aigc ARGS`` through tests/dist_worker.py, under torchrun when given its options."""
    cmd = [sys.executable]
    if torchrun is not None:
        cmd += ["-m", "torch.distributed.run", *torchrun]
    cmd += [str(WORKER), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AIGC_DIST_TIMEOUT": "60"}
    env.pop("AIGC_TEST_KILL", None)
    if kill:
        env["AIGC_TEST_KILL"] = kill
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _weights(bundle: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in ("model.safetensors", "generator.safetensors", "discriminator.safetensors"):
        if (bundle / f).is_file():
            out.update({f"{f}:{k}": v for k, v in load_file(str(bundle / f)).items()})
    assert out, f"no weights in {bundle}"
    return out


def _metrics(bundle: Path) -> dict[str, Any]:
    metrics: dict[str, Any] = json.loads((bundle / "manifest.json").read_text())["metrics"]
    return metrics


def _max_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def _lm_args(name: str, data: Path, out: Path, **extra: Any) -> list[str]:
    return ["train", name, "--data", str(data), "-o", str(out),
            *_sets({**LM[name], **LM_TRAIN, **extra})]


def _gan_args(out: Path, **extra: Any) -> list[str]:
    return ["train", "gan", "--data", "digits", "-o", str(out), *_sets({**GAN, **extra})]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "text.txt"
    path.write_text("\n".join(TEXT) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def one_rank(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model trained in one plain process (no torchrun)."""
    root = tmp_path_factory.mktemp("one")
    engine = isolated_engine({"lstm": lstm_plugin, "transformer": transformer_plugin})
    out = {}
    for name in LM:
        gen = engine.create(name, **LM[name], **LM_TRAIN)
        gen.fit(str(data))
        out[name] = gen.save(root / name)
    gan = Engine(plugins=["gan"]).create("gan", **GAN)
    gan.fit("digits")
    out["gan"] = gan.save(root / "gan")
    return out


@pytest.fixture(scope="module")
def two_ranks(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each model trained on 2 ranks through the CLI shortcut (aigc train --nproc-per-node 2)."""
    root = tmp_path_factory.mktemp("two")
    out = {}
    for name in [*LM, "gan"]:
        args = _gan_args(root / name) if name == "gan" else _lm_args(name, data, root / name)
        res = _run([*args, "--nproc-per-node", "2"])
        assert res.returncode == 0, res.stderr[-3000:]
        assert "torch.distributed.run --nproc-per-node 2" in res.stderr
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", ["transformer", "lstm", "gan"])
def test_two_ranks_train_as_one_rank(one_rank: dict[str, Path], two_ranks: dict[str, Path],
                                     name: str) -> None:
    a, b = _weights(one_rank[name]), _weights(two_ranks[name])
    assert _max_diff(a, b) < 1e-5
    ma, mb = _metrics(one_rank[name]), _metrics(two_ranks[name])
    assert (ma["world_size"], mb["world_size"]) == (1, 2)
    assert ma["steps"] == mb["steps"]
    keys = ("d_loss", "g_loss") if name == "gan" else ("train_loss",)
    for key in keys:  # the logged losses are the global batch's, not rank 0's
        assert ma[key] == pytest.approx(mb[key], abs=1e-5)
    if name != "gan":  # evaluation split over the ranks, summed
        assert ma["valid_loss"] == pytest.approx(mb["valid_loss"], abs=1e-5)
        assert ma["tokens_seen"] == mb["tokens_seen"]


def test_two_nodes_on_localhost(data: Path, one_rank: dict[str, Path],
                                tmp_path: Path) -> None:
    """Two torchrun agents ("nodes", 1 process each) meeting at a c10d rendezvous."""
    out = tmp_path / "out"
    args = [*_lm_args("transformer", data, out), "--nnodes", "2", "--nproc-per-node", "1",
            "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "two-nodes"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen([sys.executable, str(WORKER), *args], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [p.communicate(timeout=TIMEOUT) for p in nodes]
    for p, (_, err) in zip(nodes, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert sum("saved" in err for _, err in results) == 1  # rank 0's node alone saves
    assert _metrics(out)["world_size"] == 2
    assert _max_diff(_weights(one_rank["transformer"]), _weights(out)) < 1e-5


@pytest.mark.parametrize("name", ["transformer", "gan"])
def test_sigkill_and_resume_equals_uninterrupted_bitwise(data: Path, tmp_path: Path,
                                                         name: str) -> None:
    """One process, killed by SIGKILL after step 8, resumed (resume=auto) from step 5."""
    work = tmp_path / "work"
    if name == "gan":
        args, per_step = _gan_args(tmp_path / "out", work_dir=work, checkpoint_every=5), 2
    else:  # with dropout: its RNG must resume too
        args = _lm_args(name, data, tmp_path / "out", dropout=0.1, work_dir=work,
                        checkpoint_every=5)
        per_step = 1
    killed = _run(args, kill=f"0:{8 * per_step}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "out").exists()
    assert latest_checkpoint(work) == work / "checkpoints" / "step_0000005.safetensors"
    resumed = _run([*args, "--set", "resume=auto"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _metrics(tmp_path / "out")["resumed_from_step"] == 5
    if name == "gan":  # the uninterrupted run, in this process (the same 1 thread)
        gen = Engine(plugins=["gan"]).create("gan", **GAN)
        gen.fit("digits")
    else:
        gen = isolated_engine({name: transformer_plugin}).create(
            name, **{**LM[name], **LM_TRAIN, "dropout": 0.1})
        gen.fit(str(data))
    gen.save(tmp_path / "straight")
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "out")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_killed_rank_stops_the_others_with_its_name(data: Path, tmp_path: Path) -> None:
    """Rank 1 is SIGKILLed at step 6 of a run that would otherwise last minutes: rank 0
    exits with an error naming rank 1 (no hang; TIMEOUT is only a guard)."""
    args = _lm_args("transformer", data, tmp_path / "out", max_steps=100_000,
                    eval_every=0, valid_fraction=0.0)
    res = _run(args, torchrun=["--standalone", "--nproc-per-node", "2"], kill="1:6")
    assert res.returncode != 0
    assert "aigc: error: rank 1 of 2 stopped (killed, crashed or unreachable); rank 0 " \
        "stops too" in res.stderr, res.stderr[-3000:]
    # torchrun's own report names it too
    assert re.search(r"rank\s*: 1 \(local_rank: 1\)\s*\n\s*exitcode\s*: -9", res.stderr)
    assert not (tmp_path / "out").exists()


def test_max_restarts_resumes_from_the_last_checkpoint(data: Path, two_ranks: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """torchrun --max-restarts 1: rank 1 dies after step 8 of the first attempt; the
    restarted group resumes from step 5 by itself and ends as the uninterrupted run."""
    work = tmp_path / "work"
    args = _lm_args("transformer", data, tmp_path / "out", work_dir=work, checkpoint_every=5)
    res = _run(args, torchrun=["--standalone", "--nproc-per-node", "2", "--max-restarts", "1"],
               kill="1:8:0")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rank 1 kills itself" in res.stderr
    assert _metrics(tmp_path / "out")["resumed_from_step"] == 5
    assert _max_diff(_weights(two_ranks["transformer"]), _weights(tmp_path / "out")) < 1e-6


# -- in-process: the helpers and the errors ----------------------------------------------
def test_world_of_one_is_the_identity() -> None:
    w = World()
    assert (w.rank, w.size, w.main, w.distributed) == (0, 1, True, False)
    assert w.rows(7) == slice(0, 7)
    assert w.sum([1.5, 2.0]) == [1.5, 2.0]
    module = torch.nn.Linear(2, 2)
    assert w.wrap(module) is module


def test_rows_split_the_global_batch_exactly() -> None:
    shares = [World(rank=r, size=4).rows(12) for r in range(4)]
    assert [list(range(12))[s] for s in shares] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    with pytest.raises(ConfigError, match="batch_size=10 is not divisible by the world size 4"):
        World(rank=0, size=4).rows(10)


def test_world_size_that_does_not_divide_the_batch(data: Path, tmp_path: Path) -> None:
    args = _lm_args("transformer", data, tmp_path / "out", batch_size=9)
    res = _run([*args, "--nproc-per-node", "2"])
    assert res.returncode != 0
    assert "batch_size=9 is not divisible by the world size 2" in res.stderr
    assert not (tmp_path / "out").exists()


def test_resume_auto_and_checkpoints_of_another_config(tmp_path: Path) -> None:
    engine = isolated_engine({"transformer": transformer_plugin})
    opts = {**LM["transformer"], **LM_TRAIN, "max_steps": 4, "checkpoint_every": 2,
            "work_dir": str(tmp_path)}
    assert resume_path("auto", str(tmp_path)) is None  # nothing yet: start afresh
    with pytest.raises(ConfigError, match="resume=auto needs work_dir"):
        resume_path("auto", "")
    for gen_name, extra in (("transformer", {**LM["transformer"]}), ("gan", {})):
        with pytest.raises(ConfigError, match="resume=auto needs work_dir"):
            Engine(plugins=[gen_name]).create(gen_name, resume="auto", **extra)
    engine.create("transformer", **opts).fit(TEXT)
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000004.safetensors"
    (tmp_path / "checkpoints" / "step_0000009.safetensors").write_bytes(b"torn")  # unreadable
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_0000004.safetensors"
    with pytest.raises(ConfigError, match=r"other batches: batch_size=8 \(now 4\)"):
        engine.create("transformer", **{**opts, "batch_size": 4, "resume": "auto"}).fit(TEXT)
    gan_dir = tmp_path / "gan"
    gan_engine = Engine(plugins=["gan"])
    gan_opts = {**GAN, "steps": 2, "checkpoint_every": 2, "work_dir": str(gan_dir)}
    gan_engine.create("gan", **gan_opts).fit("digits")
    with pytest.raises(ConfigError, match=r"another GAN config: lr_g=0.0002 \(now 0.001\)"):
        gan_engine.create("gan", **{**gan_opts, "lr_g": 1e-3, "resume": "auto"}).fit("digits")


def test_cli_shortcut_runs_torchrun_with_the_same_arguments(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from aigc_engine import cli as cli_mod

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    for var in ("RANK", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    res = runner.invoke(cli_mod.cli, ["train", "lstm", "--data", "t.txt", "--set", "seed=2",
                                      "-o", "out", "--valid", "v.txt", "--json",
                                      "--nproc-per-node", "3", "--max-restarts", "2"])
    assert res.exit_code == 0, res.output
    assert calls == [[sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "3",
                      "--nnodes", "1", "--standalone", "--max-restarts", "2", "-m",
                      "aigc_engine", "train", "lstm", "--data", "t.txt", "-o", "out", "--set",
                      "seed=2", "--valid", "v.txt", "--json"]]
    res = runner.invoke(cli_mod.cli, ["train", "lstm", "--data", "t.txt", "-o", "out",
                                      "--nnodes", "2", "--nproc-per-node", "1",
                                      "--rdzv-endpoint", "10.0.0.1:29400", "--rdzv-id", "j"])
    assert res.exit_code == 0, res.output
    assert calls[-1][3:13] == ["--nproc-per-node", "1", "--nnodes", "2", "--rdzv-backend",
                               "c10d", "--rdzv-endpoint", "10.0.0.1:29400", "--rdzv-id", "j"]
    res = runner.invoke(cli_mod.cli, ["train", "lstm", "--data", "t.txt", "-o", "out",
                                      "--nnodes", "2"])
    assert res.exit_code == 2 and "--nnodes above 1 needs --rdzv-endpoint" in res.output
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    res = runner.invoke(cli_mod.cli, ["train", "lstm", "--data", "t.txt", "-o", "out",
                                      "--nproc-per-node", "2"])
    assert res.exit_code == 2 and "already running under torchrun" in res.output
    assert len(calls) == 2

