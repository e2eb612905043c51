"""Built-in plugin: template-based text generation (Tracery-style grammars)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aigc_engine.plugin_api import DatasetSpec, GeneratorSpec, TextDataset, hookimpl

GRAMMARS = Path(__file__).parent / "grammars"


@hookimpl
def aigc_register_generators(register: Callable[[GeneratorSpec], None]) -> None:
    """The ``template`` generator."""
    register(GeneratorSpec(
        name="template",
        modality="text",
        factory="aigc_engine.plugins.template.generator:TemplateGenerator",
        description="Text from a Tracery-style grammar: symbols expanded from rules, seeded",
    ))


@hookimpl
def aigc_register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """The example grammar, as the dataset ``example-grammar``."""
    register(DatasetSpec(
        name="example-grammar",
        modality="text",
        loader=lambda: TextDataset(name="example-grammar", paths=[GRAMMARS / "story.json"]),
        description="A small story grammar for the template generator (JSON)",
    ))
