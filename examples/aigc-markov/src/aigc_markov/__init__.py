"""aigc-markov: a character-level Markov chain generator plugin for aigc-engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aigc_engine.plugin_api import GeneratorSpec, hookimpl

__version__ = "0.2.0"


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """Register the ``markov`` generator (imported lazily)."""
    register(GeneratorSpec(
        name="markov",
        modality="text",
        factory="aigc_markov.model:MarkovGenerator",
        description="Character-level Markov chain with additive smoothing (example plugin)",
    ))


@hookimpl
def aigc_register_commands(cli: Any) -> None:
    """Add ``aigc markov-next``."""
    import click

    @cli.command("markov-next")
    @click.argument("bundle")
    @click.option("--context", default="", help="Text whose continuation to show.")
    @click.option("-k", "k", type=int, default=5, show_default=True)
    def markov_next(bundle: str, context: str, k: int) -> None:
        """Show the K most likely next characters of a markov BUNDLE after --context."""
        from aigc_engine import Engine

        from .model import MarkovGenerator

        gen = Engine().load(bundle)
        if not isinstance(gen, MarkovGenerator):
            raise click.UsageError(f"{bundle} is not a markov bundle")
        for char, prob in gen.most_likely(context, k):
            click.echo(f"{char!r:>8} {prob:.4f}")
