"""aigc-engine: a plugin-based content-generation engine with a C++ core.

>>> from aigc_engine import Engine
>>> engine = Engine()
>>> gen = engine.create("template")            # doctest: +SKIP
"""

from __future__ import annotations

from . import _layout
from .config import GeneratorConfig
from .datasets import Dataset, DatasetSpec, TextDataset
from .engine import Engine, GeneratorSpec, RegisteredGenerator
from .errors import (
    AigcError,
    ConfigError,
    CoreError,
    DistributedError,
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

# Run from a checkout with the package installed elsewhere, the source tree is
# this package: the installed copy's folder is searched too (for _core), after
# the source tree's own modules (none of the imports above needs _core).
_layout.extend_package_path(__path__, __name__)

__version__ = "0.1.0"

__all__ = [
    "AigcError",
    "Completion",
    "ConfigError",
    "CoreError",
    "Dataset",
    "DatasetSpec",
    "DistributedError",
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
