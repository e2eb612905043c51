"""Torch text language models: the generator base the ``lstm`` and ``transformer``
plugins share (public for plugin authors; imports torch).

A subclass gives an ``nn.Module`` (``model(x) -> logits`` over (B, T) token
ids), the training window, a token scorer for evaluation and a
:class:`~aigc_engine.decoding.TokenModel` for the engine's decoding loop; this
base class does the rest the same way for every such model:

- ``fit``: the tokenizer (``char``, ``byte`` or ``bpe`` with ``vocab_size``)
  is fitted to the training text (a char alphabet to the training and
  validation text), the text becomes one token stream that starts with the
  end-of-text token (which also stands for "start of text" in prompts and
  evaluation), the model is built under ``seed`` and trained by
  :func:`aigc_engine.training.train_lm` with the config's training options.
  Validation data: ``valid`` (a file or dataset) or the last
  ``valid_fraction`` of the characters.
- ``evaluate``: bits per byte, nats per token and perplexity over the whole
  text (every token predicted; the first from the start token).
- bundles: ``model.safetensors`` (weights only, never pickled), the tokenizer,
  ``history.json``; the manifest's config is the architecture and tokenizer
  only, the training options and results are its metrics (``parameters``,
  ``tokens_seen``, ``steps``, ``training``).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors.torch import load_file

from ._lm_loop import train_lm
from .bundle import Manifest
from .config import GeneratorConfig
from .datasets import TextDataset
from .decoding import TokenModel, TokenTextGenerator, text_metrics
from .distributed import join, local_device
from .errors import ConfigError, ModelFormatError
from .progress import Progress
from .tokenizers import Tokenizer, load_tokenizer, train_tokenizer
from .training import TrainConfig, atomic_save_file, tokenizer_fingerprint

__all__ = ["NeuralTextConfig", "NeuralTextGenerator"]

WEIGHTS_FILE = "model.safetensors"
HISTORY_FILE = "history.json"


@dataclasses.dataclass(frozen=True)
class NeuralTextConfig(TrainConfig):
    """Options every torch text model has: ``tokenizer`` ("char", "byte" or "bpe"),
    ``vocab_size`` (BPE only, >= 258) and the run's ``device`` ("cpu" or "cuda";
    not saved: a loaded model starts on the CPU), plus the training options of
    :class:`~aigc_engine.training.TrainConfig`."""

    tokenizer: Literal["char", "byte", "bpe"] = "char"
    vocab_size: int = 0
    device: str = dataclasses.field(default="cpu", compare=False, metadata={"training": True})

    def validate(self) -> None:
        super().validate()
        if self.tokenizer == "bpe" and self.vocab_size < 258:
            raise ConfigError(f"tokenizer=bpe needs vocab_size >= 258, got {self.vocab_size}")
        if self.tokenizer != "bpe" and self.vocab_size:
            raise ConfigError(f"vocab_size is for tokenizer=bpe only (tokenizer="
                              f"{self.tokenizer!r} has a fixed vocabulary)")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be 'cpu' or 'cuda', got {self.device!r}")


class NeuralTextGenerator(TokenTextGenerator):
    """Base class of torch text generators (see the module docstring)."""

    config_class: ClassVar[type[GeneratorConfig]] = NeuralTextConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.net: torch.nn.Module | None = None
        self.tok: Tokenizer | None = None
        self.history: list[dict[str, float]] = []
        self._token_model: TokenModel | None = None

    @property
    def ncfg(self) -> NeuralTextConfig:
        """The config, typed."""
        return self.config_as(NeuralTextConfig)

    @property
    def trained(self) -> bool:
        return self.net is not None

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer (after fit or load)."""
        self.require_trained("use")
        assert self.tok is not None
        return self.tok

    @property
    def device(self) -> torch.device:
        """Where the model runs."""
        return torch.device(self.ncfg.device)

    # -- what a subclass gives ------------------------------------------------------
    @abc.abstractmethod
    def build(self, vocab_size: int) -> torch.nn.Module:
        """A fresh model for a vocabulary of ``vocab_size`` (weights drawn from torch's RNG)."""

    @abc.abstractmethod
    def train_window(self) -> int:
        """Tokens per training window."""

    @abc.abstractmethod
    def make_token_model(self) -> TokenModel:
        """The decoding loop's view of the trained model."""

    @abc.abstractmethod
    def score(self, ids: torch.Tensor) -> float:
        """Total negative log-likelihood (nats) of ``ids[1:]``, each given what precedes."""

    def onnx_graph(self) -> tuple[torch.nn.Module, Any]:
        """The wrapper module of a runtime graph kind and its ``OnnxTextConfig``
        (subclasses that export to ONNX implement it)."""
        raise ModelFormatError(f"generator {self.name!r} does not export to ONNX")

    export_formats: ClassVar[tuple[str, ...]] = ("onnx",)

    def _export(self, path: Path, format: str, **options: Any) -> Path:
        """ONNX for the torch-free runtime (``quantize="int8"``: dynamic int8 MatMuls);
        parity with torch is checked before the bundle is written."""
        from .onnx_export import export_text_model

        self.require_trained("export")
        unknown = set(options) - {"quantize"}
        if unknown:
            raise ConfigError(f"unknown export option(s) {sorted(unknown)}; valid: quantize")
        net = self.net
        assert net is not None
        net.cpu().eval()
        try:
            wrapper, cfg = self.onnx_graph()
            exported = export_text_model(wrapper, cfg, self.tokenizer, reference=net,
                                         quantize=options.get("quantize"))
        finally:
            net.to(self.device)
        exported.metrics = {**self.metrics, **exported.metrics, "exported_from": self.name}
        exported.adopt_origin(self)
        return exported.save(path)

    # -- training ----------------------------------------------------------------------
    def _text(self, data: Any, what: str) -> str:
        dataset = data if isinstance(data, TextDataset) else self.dataset(data)
        if not isinstance(dataset, TextDataset):
            raise ConfigError(f"the {self.name} generator needs text data, got "
                              f"{type(dataset).__name__}")
        text = dataset.text()
        if not text.strip():
            raise ConfigError(f"the {what} data {dataset.name!r} is empty: nothing to "
                              "train or evaluate on")
        return text

    def _stream(self, text: str) -> torch.Tensor:
        tok = self.tok
        assert tok is not None
        start = tok.eos_id if tok.eos_id is not None else 0
        return torch.tensor([start, *tok.encode(text)], dtype=torch.int64)

    def fit(self, data: Any, *, progress: Progress | None = None) -> dict[str, Any]:
        """Train on ``data`` (a dataset name, a text file or folder, lines); returns metrics."""
        c = self.ncfg
        progress = progress or Progress()
        text = self._text(data, "training")
        valid_text: str | None = None
        if c.valid:
            valid_text = self._text(c.valid, "validation")
        elif c.valid_fraction:
            cut = int(len(text) * (1.0 - c.valid_fraction))
            text, valid_text = text[:cut], text[cut:]
        texts = [text] + ([valid_text] if valid_text and c.tokenizer == "char" else [])
        self.tok = train_tokenizer(c.tokenizer, texts, vocab_size=c.vocab_size)
        self._token_model = None
        train = self._stream(text)
        valid = self._stream(valid_text) if valid_text else None
        device = local_device(self.device)  # cuda:LOCAL_RANK under torchrun
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.net = self.build(self.tok.vocab_size).to(device)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        try:
            res = train_lm(self.net, train, valid, c, window=self.train_window(), name=self.name,
                           fingerprint=tokenizer_fingerprint(self.tok),
                           model_config=self.config.to_dict(), progress=progress,
                           device=device)
        except BaseException:
            self.net = None
            raise
        self.history = res.history
        last = next((h for h in reversed(res.history) if "train_loss" in h), {})
        self.metrics = {
            "parameters": self.parameters(), "tokens_seen": res.tokens_seen, "steps": res.steps,
            "train_seconds": round(res.train_seconds, 3),
            "fit_wall_seconds": round(time.perf_counter() - wall0, 3),
            "fit_cpu_seconds": round(time.process_time() - cpu0, 3),
            "train_tokens": len(train) - 1, "stopped": res.stopped,
            "vocab_size": self.tok.vocab_size, "training": c.training_dict(),
            "world_size": join(device).size}
        if res.resumed_from >= 0:
            self.metrics["resumed_from_step"] = res.resumed_from
        if "train_loss" in last:
            self.metrics["train_loss"] = last["train_loss"]
            self.metrics["tokens_per_s"] = last["tokens_per_s"]
        if res.best_valid is not None:
            self.metrics.update(valid_loss=res.best_valid, best_step=res.best_step,
                                valid_tokens=len(valid) - 1 if valid is not None else 0)
        return dict(self.metrics)

    def parameters(self) -> int:
        """Number of distinct trainable parameters (tied weights counted once)."""
        assert self.net is not None
        seen = {id(p): p.numel() for p in self.net.parameters()}
        return int(sum(seen.values()))

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, data: Any) -> dict[str, Any]:
        """Bits per byte, nats per token and perplexity of ``data`` (the whole text)."""
        self.require_trained("evaluate")
        text = self._text(data, "evaluation")
        ids = self._stream(text)
        with torch.no_grad():
            nats = self.score(ids)
        out = text_metrics(nats=nats, tokens=len(ids) - 1, text_bytes=len(text.encode("utf-8")))
        out["loss"] = out["nats_per_token"]
        return out

    # -- generation --------------------------------------------------------------------
    def token_model(self) -> TokenModel:
        """The model as the decoding loop drives it (built once per trained model)."""
        self.require_trained("generate with")
        if self._token_model is None:
            self._token_model = self.make_token_model()
        return self._token_model

    def to(self, device: str) -> NeuralTextGenerator:
        """Move the model to ``device`` ("cpu", "cuda"); returns self."""
        self.config = self.ncfg.replace(device=device)
        if self.net is not None:
            self.net.to(self.device)
        self._token_model = None
        return self

    # -- bundles -------------------------------------------------------------------------
    def _manifest_extra(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer.to_json()}

    def _save_payload(self, directory: Path) -> None:
        assert self.net is not None
        self.tokenizer.save(directory)
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        # Tied weights are one tensor in two places: safetensors stores it once.
        unique: dict[str, torch.Tensor] = {}
        seen: dict[int, str] = {}
        aliases: dict[str, str] = {}
        for k, v in state.items():
            if v.data_ptr() in seen and v.data_ptr() != 0:
                aliases[k] = seen[v.data_ptr()]
                continue
            seen[v.data_ptr()] = k
            unique[k] = v
        atomic_save_file(unique, directory / WEIGHTS_FILE,
                         {"aliases": json.dumps(aliases)} if aliases else None)
        (directory / HISTORY_FILE).write_text(json.dumps(self.history) + "\n", encoding="utf-8")

    def _load_payload(self, directory: Path, manifest: Manifest) -> None:
        from safetensors import safe_open

        self.tok = load_tokenizer(manifest.extra.get("tokenizer"), directory)
        net = self.build(self.tok.vocab_size)
        path = directory / WEIGHTS_FILE
        with safe_open(str(path), framework="pt") as fh:
            aliases = json.loads((fh.metadata() or {}).get("aliases", "{}"))
        state = load_file(str(path))
        for k, src in aliases.items():
            state[k] = state[src]
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelFormatError(f"bundle {str(directory)!r}: the weights do not fit the "
                                   f"config: {exc}") from None
        self.net = net.to(self.device).eval()
        self._token_model = None
        hist = directory / HISTORY_FILE
        self.history = json.loads(hist.read_text(encoding="utf-8")) if hist.is_file() else []

    def perplexity_of(self, data: Any) -> float:
        """Per-token perplexity of ``data`` (a convenience over :meth:`evaluate`)."""
        return float(math.exp(self.evaluate(data)["nats_per_token"]))
