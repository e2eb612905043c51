"""The ``aigc`` command: a thin client of the public API.

Errors become one-line messages (exit 1 for failures, 2 for usage errors),
never tracebacks; ``AIGC_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .engine import Engine
from .errors import AigcError, MissingDependencyError, UnknownGeneratorError
from .generator import (
    MAX_TOKENS,
    Generator,
    ImageGenerator,
    TextDone,
    TextGenerator,
    TextRequest,
    TextResult,
)
from .progress import console_progress

F = TypeVar("F", bound=Callable[..., Any])

_engine: Engine | None = None


def get_engine() -> Engine:
    """The CLI's engine (created once per process)."""
    global _engine
    if _engine is None:
        _engine = Engine()
    return _engine


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--set")
        options[key.strip()] = value
    return options


def _fmt_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for key, value in metrics.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.6g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{key}={value}")
    return ", ".join(parts)


class AigcGroup(click.Group):
    """A click group that turns engine errors into one-line messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return result
        except BrokenPipeError:
            _quiet_broken_pipe()
        except AigcError as exc:
            _fail(exc)
        except OSError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("aigc: interrupted", err=True)
            sys.stdout.flush()
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug or an unexpected input: still no traceback
            _fail(exc, prefix=f"{type(exc).__name__}: ")


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``aigc info m | head -1``): exit without a message.

    stdout is pointed at /dev/null so the interpreter's final flush does not
    complain either (the recipe of Python's signal documentation).
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(1)


def _fail(exc: BaseException, prefix: str = "") -> None:
    if os.environ.get("AIGC_DEBUG"):
        raise exc
    message = str(exc) or type(exc).__name__
    hint = " (set AIGC_DEBUG=1 for the traceback)" if prefix else ""
    click.echo(f"aigc: error: {prefix}{message}{hint}", err=True)
    sys.exit(1)


@click.group(cls=AigcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aigc")
def cli() -> None:
    """Train, run and export content generators (n-gram, neural text, GAN images, templates).

    \b
    Quick start:
      aigc demo                                    train and generate on bundled data
      aigc generators                              what can be trained
      aigc train template --data example-grammar -o story
      aigc generate story --seed 1 -n 2

    Plugins: installed with pip, listed by `aigc plugins`; AIGC_PLUGINS=a,b or
    AIGC_PLUGINS=-a chooses which load.
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json: bool) -> None:
    """List plugins: version, status (loaded / failed: why / blocked), load time, provides."""
    infos = get_engine().plugins()
    if as_json:
        _echo_json([i.to_json() for i in infos])
        return
    if not infos:
        click.echo("no plugins installed")
        return
    for info in infos:
        error = (info.error or "").replace("\n", "\n" + " " * 16)  # details, indented
        status = info.status if info.status != "failed" else f"failed: {error}"
        provides = []
        if info.generators:
            provides.append("generators: " + ", ".join(info.generators))
        if info.datasets:
            provides.append("datasets: " + ", ".join(info.datasets))
        if info.commands:
            provides.append("commands: " + ", ".join(info.commands))
        click.echo(f"{info.name:<14} {info.version:<10} {status:<8} "
                   f"{info.load_seconds * 1000:6.1f} ms  {'; '.join(provides)}")
        if info.error and info.status == "loaded":
            click.echo(f"{'':<14} warning: {error}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def generators(as_json: bool) -> None:
    """List the generators the installed plugins provide."""
    regs = get_engine().list_generators()
    if as_json:
        _echo_json([r.to_json() for r in regs])
        return
    if not regs:
        click.echo("no generators: no generator plugin is loaded (see `aigc plugins`)")
        return
    for reg in regs:
        click.echo(f"{reg.name:<14} {reg.spec.modality:<6} {reg.plugin:<12} "
                   f"{reg.spec.description}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def datasets(as_json: bool) -> None:
    """List the named datasets (any text file or folder path works too)."""
    entries = get_engine().list_datasets()
    if as_json:
        _echo_json([{"name": s.name, "modality": s.modality, "plugin": p,
                     "description": s.description, "paths": s.matches is not None}
                    for s, p in entries])
        return
    for spec, plugin in entries:
        kind = "(paths)" if spec.matches is not None else ""
        click.echo(f"{spec.name:<18} {spec.modality:<6} {plugin:<12} {spec.description} {kind}")


@cli.command()
@click.argument("generator")
@click.option("--data", "source", required=True,
              help="A dataset name (see `aigc datasets`) or a text file / folder.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A generator option (repeatable); an unknown key lists the valid ones.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The bundle directory to write.")
@click.option("--valid", default=None, metavar="DATA",
              help="Held-out data evaluated while training (neural generators; the same as "
                   "--set valid=DATA).")
@click.option("--eval-data", default=None, help="Evaluate on this data after training.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.option("--nproc-per-node", type=click.IntRange(1, 4096), default=None,
              help="Train on N processes on this machine: runs this command under torchrun "
                   "(torch.distributed; gloo on CPU, NCCL on CUDA). batch_size stays the "
                   "global batch.")
@click.option("--nnodes", default=None, metavar="N|MIN:MAX",
              help="Machines taking part (torchrun --nnodes); start the same command on each, "
                   "with the same --rdzv-endpoint.")
@click.option("--rdzv-endpoint", default=None, metavar="HOST:PORT",
              help="The rendezvous (torchrun's c10d store) for several machines; "
                   "default with one machine: a free local port.")
@click.option("--rdzv-id", default="aigc", show_default=True,
              help="The job id every machine of one run shares.")
@click.option("--max-restarts", type=click.IntRange(0, 1000), default=None,
              help="Restart the group this often when a process fails; training resumes from "
                   "the last checkpoint in work_dir by itself.")
def train(generator: str, source: str, sets: tuple[str, ...], output: Path,
          valid: str | None, eval_data: str | None, as_json: bool, nproc_per_node: int | None,
          nnodes: str | None, rdzv_endpoint: str | None, rdzv_id: str,
          max_restarts: int | None) -> None:
    """Train GENERATOR on --data and save the model bundle to -o.

    \b
    Several processes or machines: --nproc-per-node N (and --nnodes,
    --rdzv-endpoint, --max-restarts for several machines) runs the same command
    under torchrun, the same as
      torchrun --nproc-per-node N -m aigc_engine train GENERATOR ...
    Rank 0 alone logs, writes checkpoints and the bundle.
    """
    if nproc_per_node is not None or nnodes is not None or rdzv_endpoint is not None \
            or max_restarts is not None:
        argv = [generator, "--data", source, "-o", str(output)]
        argv += [a for kv in sets for a in ("--set", kv)]
        argv += ["--valid", valid] if valid is not None else []
        argv += ["--eval-data", eval_data] if eval_data is not None else []
        argv += ["--json"] if as_json else []
        sys.exit(_torchrun(argv, nproc_per_node=nproc_per_node or 1, nnodes=nnodes or "1",
                           rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id,
                           max_restarts=max_restarts))
    rank = int(os.environ.get("RANK", "0") or 0)
    engine = get_engine()
    options = _parse_sets(sets)
    if valid is not None:
        options["valid"] = valid
    gen = engine.create_from_strings(generator, options)
    data = engine.dataset(source, modality=gen.modality)
    start = time.perf_counter()
    metrics = gen.fit(data, progress=console_progress())
    seconds = time.perf_counter() - start
    if rank != 0:  # under torchrun rank 0 alone evaluates and writes the bundle
        return
    if eval_data is not None:
        scores = gen.evaluate(engine.dataset(eval_data, modality=gen.modality))
        gen.metrics.update({f"eval_{k}": v for k, v in scores.items()})
        metrics = {**metrics, **{f"eval_{k}": v for k, v in scores.items()}}
    path = gen.save(output)
    if as_json:
        _echo_json({"bundle": str(path), "seconds": seconds, "metrics": metrics})
    else:
        click.echo(f"trained {generator}: fit took {seconds:.2f} s wall-clock "
                   f"(data, training, statistics); {_fmt_metrics(metrics)}", err=True)
        click.echo(f"saved {path}", err=True)


def _torchrun(argv: list[str], *, nproc_per_node: int, nnodes: str,
              rdzv_endpoint: str | None, rdzv_id: str, max_restarts: int | None) -> int:
    """Run ``aigc train ARGV`` under torchrun (this Python's torch); its exit status."""
    import subprocess

    if "RANK" in os.environ and "TORCHELASTIC_RUN_ID" in os.environ:
        raise click.UsageError("already running under torchrun: drop --nproc-per-node/--nnodes")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
           str(nproc_per_node), "--nnodes", nnodes]
    if rdzv_endpoint is None:
        if nnodes not in ("1", "1:1"):
            raise click.UsageError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT (the "
                                   "same on every machine)")
        cmd += ["--standalone"]
    else:
        cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint, "--rdzv-id",
                rdzv_id]
    if max_restarts is not None:
        cmd += ["--max-restarts", str(max_restarts)]
    cmd += ["-m", "aigc_engine", "train", *argv]
    click.echo("aigc: running " + " ".join(cmd[1:]), err=True)
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:
        return 130


def _image_out(gen: Generator[Any], result: Any, out: Path | None) -> None:
    writer = getattr(gen, "write_images", None)
    if out is None or writer is None:
        raise click.UsageError("image generators need --out PATH (a .png grid or a folder)")
    for written in writer(result, out):
        click.echo(f"wrote {written}", err=True)


def _print_logprobs(gen: TextGenerator, result: TextResult) -> None:
    tokenizer = getattr(gen, "token_model", None)
    tok = tokenizer().tokenizer if callable(tokenizer) else None

    def name(i: int) -> str:
        return repr(tok.token_text(i)) if tok is not None else str(i)

    for c in result.choices:
        if c.logprobs is None:
            continue
        click.echo(f"-- logprobs of sample {c.index} (natural log, of the distribution drawn "
                   "from)", err=True)
        for lp in c.logprobs:
            alts = "  ".join(f"{name(i)} {v:.4f}" for i, v in lp.top)
            click.echo(f"{name(lp.token_id):>16} {lp.logprob:9.4f}   {alts}", err=True)


def _result_json(result: TextResult) -> dict[str, Any]:
    return {
        "texts": result.texts,
        "seed": result.request.seed,
        "choices": [{"index": c.index, "text": c.text, "token_ids": c.token_ids,
                     "finish_reason": c.finish_reason,
                     "logprobs": None if c.logprobs is None else [
                         {"token_id": lp.token_id, "logprob": lp.logprob,
                          "top": [[i, v] for i, v in lp.top]} for lp in c.logprobs]}
                    for c in result.choices],
        "usage": {"prompt_tokens": result.usage.prompt_tokens,
                  "completion_tokens": result.usage.completion_tokens,
                  "total_tokens": result.usage.total_tokens},
        "metadata": result.metadata,
    }


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--prompt", default="", help="Text to continue.")
@click.option("--max-tokens", type=click.IntRange(1, MAX_TOKENS), default=100, show_default=True,
              help="Most tokens to generate per sample.")
@click.option("--min-tokens", type=click.IntRange(0, MAX_TOKENS), default=0, show_default=True,
              help="No end-of-text or stop before this many tokens.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=click.IntRange(-(2**31), 2**31 - 1), default=0, show_default=True,
              help="Keep the k most likely tokens (0 = off).")
@click.option("--top-p", type=float, default=1.0, show_default=True,
              help="Keep the most likely tokens holding this mass (1 = off).")
@click.option("--min-p", type=float, default=0.0, show_default=True,
              help="Keep tokens at least this fraction of the most likely one (0 = off).")
@click.option("--repetition-penalty", type=float, default=1.0, show_default=True,
              help="Divide (multiply if negative) the scores of tokens generated (1 = off).")
@click.option("--presence-penalty", type=float, default=0.0, show_default=True,
              help="Subtract from the scores of tokens already generated.")
@click.option("--frequency-penalty", type=float, default=0.0, show_default=True,
              help="Subtract this times each token's count so far.")
@click.option("--stop", "stops", multiple=True,
              help="Stop before this text (repeatable; not included in the output).")
@click.option("--stop-token-id", "stop_token_ids", type=click.IntRange(0, 2**31 - 1),
              multiple=True, help="Stop at this token id (repeatable).")
@click.option("--logprobs", type=click.IntRange(0, 20), default=None,
              help="Show each token's log-probability and N alternatives (stderr, or in --json).")
@click.option("--echo", is_flag=True, help="Include the prompt in the output.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
              help="Makes the output reproducible.")
@click.option("-n", "n", type=click.IntRange(1, 1024), default=1, show_default=True,
              help="How many samples.")
@click.option("--stop-at-eos/--no-stop-at-eos", default=True, show_default=True,
              help="Stop at the end of a sentence, or go on into new lines until --max-tokens.")
@click.option("--label", "labels", type=int, multiple=True,
              help="Class label(s) for conditional image models.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write to this file instead of the terminal (images: .png).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate(bundle: Path, prompt: str, max_tokens: int, min_tokens: int, temperature: float,
             top_k: int, top_p: float, min_p: float, repetition_penalty: float,
             presence_penalty: float, frequency_penalty: float, stops: tuple[str, ...],
             stop_token_ids: tuple[int, ...], logprobs: int | None, echo: bool,
             seed: int | None, n: int, stop_at_eos: bool, labels: tuple[int, ...],
             out: Path | None, as_json: bool) -> None:
    """Generate from a trained BUNDLE (text streams to the terminal as it comes).

    \b
    Ctrl-C stops at once: what was generated is printed, and the exit code is 130.
    With -n N the samples are separated by blank lines (sample 0 streams).
    """
    engine = get_engine()
    gen = engine.load(bundle)
    if isinstance(gen, ImageGenerator):
        lab = None
        if labels:
            lab = tuple(labels) * n if len(labels) == 1 else tuple(labels)
        _image_out(gen, gen.generate(n=n, seed=seed, labels=lab), out)
        return
    if not isinstance(gen, TextGenerator):
        raise click.UsageError(f"cannot generate from a {gen.modality} generator")
    if labels:
        raise click.UsageError("--label is for conditional image models; this is a text model")
    request = TextRequest.build(
        prompt, max_tokens=max_tokens, min_tokens=min_tokens, temperature=temperature,
        top_k=top_k, top_p=top_p, min_p=min_p, repetition_penalty=repetition_penalty,
        presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
        stop=stops, stop_token_ids=stop_token_ids, logprobs=logprobs, echo=echo,
        seed=seed, n=n, stop_at_eos=stop_at_eos).with_seed()
    live = out is None and not as_json
    texts = [""] * n
    result: TextResult | None = None
    try:
        for item in gen.stream(request):
            if isinstance(item, TextDone):
                result = item.result
                continue
            texts[item.index] += item.text
            if live and item.index == 0 and item.text:
                click.echo(item.text, nl=False)
                sys.stdout.flush()
    except KeyboardInterrupt:
        if live:
            rest = "".join("\n\n" + t for t in texts[1:])
            click.echo(rest)
        else:
            click.echo("\n\n".join(texts))
        raise
    assert result is not None
    if as_json:
        _echo_json(_result_json(result))
    elif out is not None:
        out.write_text("\n".join(result.texts) + "\n", encoding="utf-8")
        click.echo(f"wrote {len(result.texts)} text(s) to {out}", err=True)
    else:
        click.echo("".join("\n\n" + t for t in result.texts[1:]))
        if logprobs is not None:
            _print_logprobs(gen, result)


@cli.command(name="eval")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", "source", required=True, help="A dataset name or a file / folder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_(bundle: Path, source: str, as_json: bool) -> None:
    """Evaluate BUNDLE on held-out --data (perplexity for text)."""
    engine = get_engine()
    gen = engine.load(bundle)
    metrics = gen.evaluate(engine.dataset(source, modality=gen.modality))
    if as_json:
        _echo_json(metrics)
    else:
        for key, value in metrics.items():
            click.echo(f"{key:<28} {value:.10g}" if isinstance(value, float)
                       else f"{key:<28} {value}")


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--format", "fmt", required=True, help="e.g. onnx, arpa, binary.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path))
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="onnx for text models: dynamic int8 quantization of the MatMuls.")
def export(bundle: Path, fmt: str, output: Path, quantize: str | None) -> None:
    """Export BUNDLE to another format (`aigc info BUNDLE` lists the formats it exports).

    \b
    ngram:       arpa (KenLM/SRILM text), binary (this engine's fast format); both
                 open directly with `aigc generate FILE` and `aigc eval FILE`
    gan:         onnx (a bundle the torch-free runtime generates from)
    transformer, lstm: onnx (--quantize int8 for int8 MatMuls), for the runtime
    """
    gen = get_engine().load(bundle)
    options = {"quantize": quantize} if quantize else {}
    path = gen.export(output, format=fmt, **options)
    click.echo(f"wrote {path}", err=True)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-verify", is_flag=True,
              help="Only read the manifest (do not load and check the payload).")
def info(bundle: Path, as_json: bool, no_verify: bool) -> None:
    """Show what a BUNDLE holds: generator, plugin, config, metrics, files, export formats.

    The bundle is loaded to check that its files match the manifest (a bundle
    that would not load is an error); --no-verify only reads the manifest.
    """
    engine = get_engine()
    manifest = engine.info(bundle)
    exports: list[str] | None = None
    verified = "no (--no-verify)" if no_verify else "yes"
    if not no_verify:
        try:
            gen = engine.load(bundle)
        except UnknownGeneratorError:
            verified = f"no (generator {manifest.generator!r} is not installed)"
        except MissingDependencyError as exc:  # e.g. a torch bundle on a torch-free server
            verified = f"no ({exc})"
        else:
            exports = list(gen.export_formats)
    data = manifest.to_json()
    if exports is not None:
        data["export_formats"] = exports
    if as_json:
        _echo_json(data)
        return
    click.echo(f"generator   {manifest.generator} (plugin {manifest.plugin} "
               f"{manifest.plugin_version})")
    click.echo(f"format      {manifest.format_version} (engine {manifest.engine_version})")
    click.echo(f"config      {json.dumps(manifest.config)}")
    if manifest.metrics:
        click.echo(f"metrics     {_fmt_metrics(manifest.metrics)}")
    for name, entry in manifest.files.items():
        click.echo(f"file        {name} ({entry['size']:,} bytes)")
    click.echo(f"verified    {verified}")
    if exports is not None:
        click.echo(f"exports     {', '.join(exports) or 'none'} (aigc export BUNDLE --format ...)")


@cli.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--name", "names", multiple=True,
              help="Model name for each bundle, in order (default: the bundle's folder name).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--api-key", default=None, envvar="AIGC_API_KEY",
              help="Require 'Authorization: Bearer KEY' on /v1 (or set AIGC_API_KEY).")
@click.option("--slots", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="Most sequences a model decodes at once (continuous batching).")
@click.option("--queue", "queue_size", type=click.IntRange(1, 100000), default=64,
              show_default=True, help="Requests that may wait for a slot (then 429).")
@click.option("--max-tokens-limit", type=click.IntRange(1, 2**31 - 1), default=4096,
              show_default=True, help="Largest max_tokens a request may ask for.")
@click.option("--max-body", type=click.IntRange(1024, 2**31 - 1), default=1 << 20,
              show_default=True, help="Largest request body in bytes (then 413).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(bundles: tuple[Path, ...], names: tuple[str, ...], host: str, port: int,
          api_key: str | None, slots: int, queue_size: int, max_tokens_limit: int,
          max_body: int, log_level: str) -> None:
    """Serve BUNDLE... (or ARPA files) over an OpenAI-compatible HTTP API.

    \b
    Endpoints: /v1/models, /v1/completions, /v1/chat/completions,
    /v1/images/generations, /health (503 until loaded), /metrics, and a
    playground page at /. SIGTERM drains: requests in flight finish, new ones
    get 503. Needs the [serve] extra; no torch for n-gram and exported models.
    """
    from .serve import Limits, create_app, run

    if len(names) > len(bundles):
        raise click.UsageError(f"{len(names)} --name values for {len(bundles)} bundle(s)")
    chosen = list(names) + [b.stem if b.is_file() else b.name for b in bundles[len(names):]]
    if len(set(chosen)) != len(chosen):
        raise click.UsageError(f"two models would share a name: {chosen}; use --name")
    for b in bundles:
        if not b.exists():
            raise click.UsageError(f"{b} does not exist")
    app = create_app(dict(zip(chosen, bundles, strict=True)), api_key=api_key,
                     limits=Limits(max_tokens=max_tokens_limit), slots=slots,
                     queue_size=queue_size, max_body=max_body, engine=get_engine())
    click.echo(f"serving {', '.join(chosen)} on http://{host}:{port}/", err=True)
    run(app, host=host, port=port, log_level=log_level)


DEMO_GENERATORS = ("ngram", "template")


@cli.command()
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None,
              help="Keep the trained bundle here (default: a temporary folder).")
def demo(seed: int, output: Path | None) -> None:
    """Train the best available text generator on bundled data and show what it writes."""
    import tempfile

    from .demo import run_demo

    engine = get_engine()
    with tempfile.TemporaryDirectory(prefix="aigc-demo-") as tmp:
        run_demo(engine, seed=seed, output=output or Path(tmp) / "demo-bundle",
                 progress=console_progress(), echo=click.echo)


def main() -> None:
    """Entry point of the ``aigc`` script."""
    try:
        get_engine().register_commands(cli)
    except AigcError as exc:
        _fail(exc)
    try:
        cli.main(prog_name="aigc")
    except BrokenPipeError:  # in click's own output (--help, usage errors)
        _quiet_broken_pipe()
