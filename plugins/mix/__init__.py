"""Built-in plugin: the ``mix`` text generator (two models' next-token distributions, interpolated).

This module stays light (no torch, no numpy at import): the generator class is named as
a ``"module:Class"`` string and imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable

from aigc_engine.plugin_api import GeneratorSpec, hookimpl


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``mix`` generator."""
    register(GeneratorSpec(
        name="mix",
        modality="text",
        factory="aigc_engine.plugins.mix.generator:MixGenerator",
        description="Two text models mixed: p = w p1 + (1 - w) p2, w fitted on held-out text",
    ))
