"""The Engine: the registry of generators and datasets that plugins provide."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import bundle as _bundle
from .datasets import Dataset, DatasetSpec
from .datasets import resolve as _resolve_dataset
from .errors import ConfigError, ModelFormatError, PluginError, UnknownGeneratorError
from .generator import Generator
from .plugin_manager import PluginHost, PluginInfo, Selection, strict_from_env

MODALITIES = ("text", "image")

_log = logging.getLogger("aigc_engine.plugins")


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """A generator a plugin provides.

    ``factory`` is a :class:`~aigc_engine.generator.Generator` subclass or a
    ``"module:Class"`` string imported on first use (keeps listing cheap).
    """

    name: str
    modality: str
    factory: type[Generator[Any]] | str
    description: str = ""
    #: File suffixes (".arpa") of foreign model files this generator opens with
    #: ``Generator.from_file``, so ``Engine.load("model.arpa")`` works.
    file_suffixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(
                c.isalnum() or c in "-_." for c in self.name):
            raise ConfigError(
                f"generator name must be letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        if self.modality not in MODALITIES:
            raise ConfigError(
                f"generator {self.name!r}: modality must be one of {MODALITIES}, "
                f"got {self.modality!r}"
            )
        if isinstance(self.factory, str):
            if ":" not in self.factory:
                raise ConfigError(
                    f"generator {self.name!r}: factory string must be 'module:Class', "
                    f"got {self.factory!r}"
                )
        elif not (isinstance(self.factory, type) and issubclass(self.factory, Generator)):
            raise ConfigError(
                f"generator {self.name!r}: factory must be a Generator subclass or a "
                "'module:Class' string"
            )

    def resolve(self) -> type[Generator[Any]]:
        """The generator class (imports a lazy factory)."""
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        module = importlib.import_module(module_name)
        cls = module
        for part in attr.split("."):
            cls = getattr(cls, part)
        if not (isinstance(cls, type) and issubclass(cls, Generator)):
            raise PluginError(f"generator {self.name!r}: {self.factory} is not a Generator class")
        return cls


@dataclasses.dataclass(frozen=True)
class RegisteredGenerator:
    """A generator spec together with the plugin that registered it."""

    spec: GeneratorSpec
    plugin: str
    plugin_version: str

    @property
    def name(self) -> str:
        """The generator's name."""
        return self.spec.name

    def to_json(self) -> dict[str, Any]:
        """What ``aigc generators --json`` prints for it."""
        return {"name": self.spec.name, "modality": self.spec.modality, "plugin": self.plugin,
                "plugin_version": self.plugin_version, "description": self.spec.description}


class Engine:
    """Discovers plugins and creates, loads and lists generators.

    ``plugins`` chooses which plugins load, as ``AIGC_PLUGINS`` does (None:
    the environment variable decides; ``"*"``: all; ``[]``: none; ``["a", "b"]``:
    only those; ``["-a"]``: all but a). ``extra_plugins`` registers in-process plugin
    objects (name -> module or object). ``entry_points=False`` skips
    installed plugins altogether. ``strict=True`` (or ``AIGC_STRICT_PLUGINS=1``)
    re-raises plugin failures instead of recording them.
    """

    def __init__(self, *, plugins: str | Sequence[str] | None = None,
                 extra_plugins: dict[str, object] | None = None,
                 entry_points: bool = True, strict: bool | None = None) -> None:
        if plugins is None:
            plugins = os.environ.get("AIGC_PLUGINS")
        self._host = PluginHost(selection=Selection.parse(plugins),
                                strict=strict_from_env() if strict is None else strict)
        if entry_points:
            self._host.load_entry_points()
        for name, obj in (extra_plugins or {}).items():
            self._host.add_plugin(obj, name=name)
        self._generators: dict[str, RegisteredGenerator] = {}
        self._conflicts: dict[str, list[str]] = {}
        self._datasets: dict[str, tuple[DatasetSpec, str]] = {}
        self._collect()

    # -- registration --------------------------------------------------------------
    def _collect(self) -> None:
        registered: list[RegisteredGenerator] = []
        datasets: list[tuple[DatasetSpec, str]] = []

        def generators_for(plugin: str) -> dict[str, Any]:
            info = self._host.infos[plugin]

            def register(spec: GeneratorSpec) -> None:
                if not isinstance(spec, GeneratorSpec):
                    raise PluginError(f"register() takes a GeneratorSpec, got {spec!r}")
                registered.append(RegisteredGenerator(spec, plugin, info.version))
            return {"register": register}

        def datasets_for(plugin: str) -> dict[str, Any]:
            def register(spec: DatasetSpec) -> None:
                if not isinstance(spec, DatasetSpec):
                    raise PluginError(f"register() takes a DatasetSpec, got {spec!r}")
                datasets.append((spec, plugin))
            return {"register": register}

        self._host.call_each("aigc_register_generators", generators_for)
        self._host.call_each("aigc_register_datasets", datasets_for)
        ok = {i.name for i in self._host.loaded()}
        infos = self._host.infos

        def builtin(plugin: str) -> bool:
            return infos[plugin].builtin

        # Generators: a built-in registration wins over third-party ones (which
        # are reported); a clash between third parties disables the name.
        by_name: dict[str, list[RegisteredGenerator]] = {}
        for reg in registered:
            if reg.plugin in ok:
                by_name.setdefault(reg.name, []).append(reg)
        for name, regs in by_name.items():
            builtins = [r for r in regs if builtin(r.plugin)]
            if len(regs) > 1 and len(builtins) == 1:
                kept = builtins[0]
                infos[kept.plugin].generators.append(name)
                self._generators[name] = kept
                for reg in regs:
                    if reg is kept:
                        continue
                    self._warn(reg.plugin, f"generator {name!r} of plugin {reg.plugin!r} has the "
                               f"name of the built-in one of plugin {kept.plugin!r}, which is "
                               "kept; this registration is ignored")
                continue
            for reg in regs:
                infos[reg.plugin].generators.append(name)
            if len(regs) == 1:
                self._generators[name] = regs[0]
                continue
            owners = [r.plugin for r in regs]
            self._conflicts[name] = owners
            message = (f"generator {name!r} is registered by more than one plugin: "
                       f"{' and '.join(repr(o) for o in owners)}")
            if self._host.strict:
                raise PluginError(message)
            for owner in owners:
                infos[owner].error = message
        # Datasets: the built-in registration, else the first, is kept.
        loaded_datasets = [(spec, plugin) for spec, plugin in datasets if plugin in ok]
        loaded_datasets.sort(key=lambda entry: not builtin(entry[1]))  # stable: built-ins first
        for spec, plugin in loaded_datasets:
            if spec.name in self._datasets:
                first = self._datasets[spec.name][1]
                what = "the built-in one of" if builtin(first) else "the one of"
                self._warn(plugin, f"dataset {spec.name!r} of plugin {plugin!r} has the name of "
                           f"{what} plugin {first!r}, which is kept; this registration is "
                           "ignored")
                continue
            self._datasets[spec.name] = (spec, plugin)
            infos[plugin].datasets.append(spec.name)

    def _warn(self, plugin: str, message: str) -> None:
        """A name clash that keeps the plugin loaded: recorded (``aigc plugins``), logged once
        as one line, an error in strict mode."""
        if self._host.strict:
            raise PluginError(message)
        info = self._host.infos[plugin]
        info.error = message if not info.error else f"{info.error}; {message}"
        _log.warning("aigc plugin %r: %s", plugin, message)

    # -- queries -------------------------------------------------------------------
    def plugins(self) -> list[PluginInfo]:
        """Every plugin seen: loaded, failed (with the error) or blocked."""
        return sorted(self._host.infos.values(), key=lambda i: i.name)

    def list_generators(self, modality: str | None = None) -> list[RegisteredGenerator]:
        """The generators available, by name."""
        return [g for _, g in sorted(self._generators.items())
                if modality is None or g.spec.modality == modality]

    def list_datasets(self) -> list[tuple[DatasetSpec, str]]:
        """The registered data sources with the plugin that provides each."""
        return [self._datasets[n] for n in sorted(self._datasets)]

    def generator(self, name: str) -> RegisteredGenerator:
        """The registration of one generator; errors explain what is installed."""
        if name in self._conflicts:
            owners = self._conflicts[name]
            raise PluginError(
                f"generator {name!r} is registered by more than one plugin: "
                f"{' and '.join(repr(o) for o in owners)}; block one with "
                f"AIGC_PLUGINS=-{owners[-1]}"
            )
        reg = self._generators.get(name)
        if reg is None:
            available = ", ".join(self._generators) or "(none: no generator plugin loaded)"
            hint = ""
            failed = [i for i in self._host.infos.values() if i.status != "loaded"]
            if failed:
                hint = "; not loaded: " + ", ".join(f"{i.name} ({i.status})" for i in failed)
            raise UnknownGeneratorError(
                f"no generator named {name!r}; available: {available}{hint}"
            )
        return reg

    # -- creating and loading --------------------------------------------------------
    def create(self, name: str, config: Any = None, **options: Any) -> Generator[Any]:
        """A new, untrained generator: ``engine.create("ngram", order=5)``."""
        reg = self.generator(name)
        cls = self._resolve(reg)
        gen = cls(config, **options)
        self._wire(gen, reg)
        return gen

    def create_from_strings(self, name: str, options: dict[str, str]) -> Generator[Any]:
        """Like :meth:`create`, with option values given as strings (the CLI's ``--set``)."""
        reg = self.generator(name)
        cls = self._resolve(reg)
        gen = cls(cls.config_class.from_mapping(options, coerce=True))
        self._wire(gen, reg)
        return gen

    def load(self, path: str | os.PathLike[str]) -> Generator[Any]:
        """Load a bundle with the generator class its manifest names.

        A model file of a foreign format (e.g. a KenLM/SRILM ``.arpa``) is opened
        by the generator that declares its suffix in ``file_suffixes``.
        """
        if Path(path).is_file():
            return self._load_file(Path(path))
        with _bundle.reading(path):
            manifest = _bundle.read_manifest(path)
            try:
                reg = self.generator(manifest.generator)
            except UnknownGeneratorError:
                raise UnknownGeneratorError(
                    f"bundle {str(path)!r} needs generator {manifest.generator!r} from plugin "
                    f"{manifest.plugin!r} {manifest.plugin_version}, which is not installed or "
                    "not loaded (see `aigc plugins`)"
                ) from None
            gen = self._resolve(reg).load(path)
        self._wire(gen, reg)
        return gen

    def _load_file(self, path: Path) -> Generator[Any]:
        suffix = path.suffix.lower()
        for reg in self._generators.values():
            if suffix and suffix in reg.spec.file_suffixes:
                gen = self._resolve(reg).from_file(path)
                self._wire(gen, reg)
                return gen
        known = sorted({s for r in self._generators.values() for s in r.spec.file_suffixes})
        raise ModelFormatError(
            f"{str(path)!r} is a file, not a bundle directory, and no loaded generator opens "
            f"{suffix or 'files without a suffix'!r} files (known: {', '.join(known) or 'none'})"
        )

    def info(self, path: str | os.PathLike[str]) -> _bundle.Manifest:
        """A bundle's manifest (checked, payload not verified)."""
        return _bundle.read_manifest(path)

    def dataset(self, source: Any, *, modality: str | None = None) -> Dataset:
        """Resolve a dataset name or path (or pass a Dataset / list of lines through)."""
        return _resolve_dataset(source, self._datasets, modality=modality)

    def has_result_processors(self) -> bool:
        """Whether a plugin post-processes results (then text is not streamed)."""
        return self._host.has_result_processors()

    def _resolve(self, reg: RegisteredGenerator) -> type[Generator[Any]]:
        try:
            return reg.spec.resolve()
        except (ImportError, AttributeError) as exc:
            from .errors import MissingDependencyError

            if isinstance(exc, MissingDependencyError):
                raise
            raise PluginError(
                f"generator {reg.name!r} of plugin {reg.plugin!r} cannot be imported: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _wire(self, gen: Generator[Any], reg: RegisteredGenerator) -> None:
        processor = self._host.process_result if self._host.has_result_processors() else None
        streams = self._host.process_stream if self._host.has_stream_processors() else None
        gen._attach(plugin=(reg.plugin, reg.plugin_version), result_processor=processor,
                    datasets=self.dataset, stream_processor=streams)

    def register_commands(self, cli: Any) -> None:
        """Let plugins add commands to the ``aigc`` click group."""
        before = set(cli.commands)

        def record(plugin: str) -> None:
            added = set(cli.commands) - before
            self._host.infos[plugin].commands.extend(sorted(added))
            before.update(added)

        self._host.call_each("aigc_register_commands", lambda _plugin: {"cli": cli},
                             after=record)

    def __repr__(self) -> str:
        return f"<Engine generators={list(self._generators)}>"

