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
from .errors import AigcError
from .generator import Generator, ImageGenerator, TextGenerator, TextRequest
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
            return super().invoke(ctx)
        except AigcError as exc:
            _fail(exc)
        except OSError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("aigc: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug or an unexpected input: still no traceback
            _fail(exc, prefix=f"{type(exc).__name__}: ")


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
        status = info.status if info.status != "failed" else f"failed: {info.error}"
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
            click.echo(f"{'':<14} warning: {info.error}")


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
def train(generator: str, source: str, sets: tuple[str, ...], output: Path,
          valid: str | None, eval_data: str | None, as_json: bool) -> None:
    """Train GENERATOR on --data and save the model bundle to -o."""
    engine = get_engine()
    options = _parse_sets(sets)
    if valid is not None:
        options["valid"] = valid
    gen = engine.create_from_strings(generator, options)
    data = engine.dataset(source, modality=gen.modality)
    start = time.perf_counter()
    metrics = gen.fit(data, progress=console_progress())
    seconds = time.perf_counter() - start
    if eval_data is not None:
        scores = gen.evaluate(engine.dataset(eval_data, modality=gen.modality))
        gen.metrics.update({f"eval_{k}": v for k, v in scores.items()})
        metrics = {**metrics, **{f"eval_{k}": v for k, v in scores.items()}}
    path = gen.save(output)
    if as_json:
        _echo_json({"bundle": str(path), "seconds": seconds, "metrics": metrics})
    else:
        click.echo(f"trained {generator} in {seconds:.2f} s: {_fmt_metrics(metrics)}", err=True)
        click.echo(f"saved {path}", err=True)


def _image_out(gen: Generator[Any], result: Any, out: Path | None) -> None:
    writer = getattr(gen, "write_images", None)
    if out is None or writer is None:
        raise click.UsageError("image generators need --out PATH (a .png grid or a folder)")
    for written in writer(result, out):
        click.echo(f"wrote {written}", err=True)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--prompt", default="", help="Text to continue.")
@click.option("--max-tokens", type=int, default=100, show_default=True)
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="0 = greedy.")
@click.option("--top-k", type=int, default=0, show_default=True, help="0 = off.")
@click.option("--top-p", type=float, default=1.0, show_default=True, help="1 = off.")
@click.option("--seed", type=int, default=None, help="Makes the output reproducible.")
@click.option("-n", "n", type=int, default=1, show_default=True, help="How many samples.")
@click.option("--stop-at-eos/--no-stop-at-eos", default=True, show_default=True,
              help="Stop at the end of a sentence, or go on into new lines until --max-tokens.")
@click.option("--label", "labels", type=int, multiple=True,
              help="Class label(s) for conditional image models.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Write to this file instead of the terminal (images: .png).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate(bundle: Path, prompt: str, max_tokens: int, temperature: float, top_k: int,
             top_p: float, seed: int | None, n: int, stop_at_eos: bool, labels: tuple[int, ...],
             out: Path | None, as_json: bool) -> None:
    """Generate from a trained BUNDLE (text streams to the terminal)."""
    engine = get_engine()
    gen = engine.load(bundle)
    if isinstance(gen, ImageGenerator):
        lab = None
        if labels:
            lab = tuple(labels) * n if len(labels) == 1 else tuple(labels)
        result = gen.generate(n=n, seed=seed, labels=lab)
        _image_out(gen, result, out)
        return
    if not isinstance(gen, TextGenerator):
        raise click.UsageError(f"cannot generate from a {gen.modality} generator")
    request = TextRequest.build(prompt, max_tokens=max_tokens, temperature=temperature,
                                top_k=top_k, top_p=top_p, seed=seed, n=n,
                                stop_at_eos=stop_at_eos).with_seed()
    can_stream = n == 1 and out is None and not as_json and not engine.has_result_processors()
    if can_stream:
        for piece in gen.stream(request):
            click.echo(piece, nl=False)
            sys.stdout.flush()
        click.echo()
        return
    text_result = gen.generate(request)
    if as_json:
        _echo_json({"texts": text_result.texts, "seed": request.seed,
                    "metadata": text_result.metadata})
    elif out is not None:
        out.write_text("\n".join(text_result.texts) + "\n", encoding="utf-8")
        click.echo(f"wrote {len(text_result.texts)} text(s) to {out}", err=True)
    else:
        click.echo("\n\n".join(text_result.texts))


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
def export(bundle: Path, fmt: str, output: Path) -> None:
    """Export BUNDLE to another format (what each generator offers: `aigc info`)."""
    gen = get_engine().load(bundle)
    path = gen.export(output, format=fmt)
    click.echo(f"wrote {path}", err=True)


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(bundle: Path, as_json: bool) -> None:
    """Show what a BUNDLE holds: generator, plugin, config, metrics, files."""
    manifest = get_engine().info(bundle)
    data = manifest.to_json()
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
    cli.main(prog_name="aigc")
