"""What plugin authors use: the hook marker, specs, base classes, errors.

A plugin module implements hooks with :data:`hookimpl` and is published through
the ``aigc_engine`` entry-point group::

    # pyproject.toml
    [project.entry-points.aigc_engine]
    mygen = "aigc_mygen"

    # aigc_mygen/__init__.py
    from aigc_engine.plugin_api import GeneratorSpec, hookimpl

    @hookimpl
    def aigc_register_generators(register):
        register(GeneratorSpec("mygen", "text", "aigc_mygen.model:MyGenerator",
                               description="..."))

Built-in plugins use only this module and ``aigc_engine``'s public names.
"""

from __future__ import annotations

from .bundle import Manifest, read_json
from .config import GeneratorConfig
from .datasets import Dataset, DatasetSpec, TextDataset, as_text_dataset
from .engine import GeneratorSpec
from .errors import (
    AigcError,
    ConfigError,
    MissingDependencyError,
    ModelFormatError,
    PluginError,
    UnsupportedOperationError,
)
from .generator import (
    Generator,
    ImageGenerator,
    ImageRequest,
    ImageResult,
    SamplingParams,
    TextGenerator,
    TextRequest,
    TextResult,
)
from .hookspecs import hookimpl
from .progress import Progress, Task

__all__ = [
    "AigcError",
    "ConfigError",
    "Dataset",
    "DatasetSpec",
    "Generator",
    "GeneratorConfig",
    "GeneratorSpec",
    "ImageGenerator",
    "ImageRequest",
    "ImageResult",
    "Manifest",
    "MissingDependencyError",
    "ModelFormatError",
    "PluginError",
    "Progress",
    "SamplingParams",
    "Task",
    "TextDataset",
    "TextGenerator",
    "TextRequest",
    "TextResult",
    "UnsupportedOperationError",
    "as_text_dataset",
    "hookimpl",
    "read_json",
]
