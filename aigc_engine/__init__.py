"""aigc-engine: a plugin-based content-generation engine with a C++ core.

>>> from aigc_engine import Engine
>>> engine = Engine()
>>> gen = engine.create("template")            # doctest: +SKIP
"""

from __future__ import annotations

from .config import GeneratorConfig
from .datasets import Dataset, DatasetSpec, TextDataset
from .engine import Engine, GeneratorSpec, RegisteredGenerator
from .errors import (
    AigcError,
    ConfigError,
    CoreError,
    MissingDependencyError,
    ModelFormatError,
    PluginError,
    UnknownDatasetError,
    UnknownGeneratorError,
    UnsupportedOperationError,
)
from .generator import (
    Completion,
    Generator,
    ImageGenerator,
    ImageRequest,
    ImageResult,
    SamplingParams,
    TextDone,
    TextEvent,
    TextGenerator,
    TextRequest,
    TextResult,
    TokenLogprob,
    Usage,
)
from .plugin_manager import PluginInfo

__version__ = "0.1.0"

__all__ = [
    "AigcError",
    "Completion",
    "ConfigError",
    "CoreError",
    "Dataset",
    "DatasetSpec",
    "Engine",
    "Generator",
    "GeneratorConfig",
    "GeneratorSpec",
    "ImageGenerator",
    "ImageRequest",
    "ImageResult",
    "MissingDependencyError",
    "ModelFormatError",
    "PluginError",
    "PluginInfo",
    "RegisteredGenerator",
    "SamplingParams",
    "TextDataset",
    "TextDone",
    "TextEvent",
    "TextGenerator",
    "TextRequest",
    "TextResult",
    "TokenLogprob",
    "Usage",
    "UnknownDatasetError",
    "UnknownGeneratorError",
    "UnsupportedOperationError",
    "__version__",
]
