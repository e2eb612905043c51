"""Plugin discovery and loading, one ``pluggy.PluginManager`` per Engine.

Entry points of the ``aigc_engine`` group are loaded one at a time. A plugin
that fails to import or raises in a hook is recorded (name, version, error)
and skipped; ``AIGC_STRICT_PLUGINS=1`` re-raises instead. ``AIGC_PLUGINS`` (or
the ``plugins`` argument) chooses which plugins load: unset or ``*`` = all,
empty = none, ``a,b`` = only those, ``-a`` = all but a.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError

log = logging.getLogger("aigc_engine.plugins")

ENTRY_POINT_GROUP = "aigc_engine"


@dataclasses.dataclass
class PluginInfo:
    """What ``aigc plugins`` shows about one plugin."""

    name: str
    version: str
    distribution: str
    status: str  # "loaded", "failed", "blocked"
    error: str | None = None
    load_seconds: float = 0.0
    generators: list[str] = dataclasses.field(default_factory=list)
    datasets: list[str] = dataclasses.field(default_factory=list)
    commands: list[str] = dataclasses.field(default_factory=list)
    hooks: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which plugins to load: an allow list (None = all) and a block list."""

    allow: frozenset[str] | None
    block: frozenset[str]

    @classmethod
    def parse(cls, spec: str | Iterable[str] | None) -> Selection:
        """From ``AIGC_PLUGINS`` syntax (a string) or a list of names; ``"*"`` = all."""
        if spec is None or spec == "*":
            return cls(allow=None, block=frozenset())
        items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        items = [s for s in items if s]
        block = frozenset(s[1:] for s in items if s.startswith("-"))
        allow = [s for s in items if not s.startswith("-")]
        if not items:  # empty: load nothing
            return cls(allow=frozenset(), block=frozenset())
        return cls(allow=frozenset(allow) if allow else None, block=block)

    def allows(self, name: str) -> bool:
        """Whether a plugin of this name may load."""
        if name in self.block:
            return False
        return self.allow is None or name in self.allow


def strict_from_env() -> bool:
    """``AIGC_STRICT_PLUGINS=1``: plugin failures raise instead of being recorded."""
    return os.environ.get("AIGC_STRICT_PLUGINS", "").strip().lower() in ("1", "true", "yes")


class PluginHost:
    """Loads plugins into a pluggy manager and calls their registration hooks safely."""

    def __init__(self, *, selection: Selection, strict: bool) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.selection = selection
        self.strict = strict
        self.infos: dict[str, PluginInfo] = {}

    # -- loading ---------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Discover and load the ``aigc_engine`` entry points, one by one."""
        seen: set[str] = set()
        for ep in sorted(_entry_points(), key=lambda e: e.name):
            if ep.name in seen:
                self._fail(PluginInfo(ep.name, _ep_version(ep), _ep_dist(ep), "failed"),
                           PluginError(f"two installed plugins are named {ep.name!r}"))
                continue
            seen.add(ep.name)
            info = PluginInfo(name=ep.name, version=_ep_version(ep), distribution=_ep_dist(ep),
                              status="loaded")
            if not self.selection.allows(ep.name):
                info.status = "blocked"
                self.infos[ep.name] = info
                continue
            start = time.perf_counter()
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the engine
                info.load_seconds = time.perf_counter() - start
                self._fail(info, exc, during="import")
                continue
            self._register(obj, info, start)

    def add_plugin(self, obj: object, *, name: str, version: str = "0") -> None:
        """Register an in-process plugin object (tests, embedding programs)."""
        info = PluginInfo(name=name, version=version, distribution="(in-process)",
                          status="loaded")
        if not self.selection.allows(name):
            info.status = "blocked"
            self.infos[name] = info
            return
        if name in self.infos:
            raise PluginError(f"a plugin named {name!r} is already registered")
        self._register(obj, info, time.perf_counter())

    def _register(self, obj: object, info: PluginInfo, start: float) -> None:
        try:
            self.pm.register(obj, name=info.name)
        except Exception as exc:  # pluggy validation errors (bad hook signatures)
            info.load_seconds = time.perf_counter() - start
            self._fail(info, exc, during="registration")
            return
        info.load_seconds = time.perf_counter() - start
        info.hooks = sorted(impl for impl in _hook_names(self.pm, obj))
        self.infos[info.name] = info

    def _fail(self, info: PluginInfo, exc: BaseException, during: str = "") -> None:
        info.status = "failed"
        where = f" during {during}" if during else ""
        info.error = f"{type(exc).__name__}{where}: {exc}"
        self.infos[info.name] = info
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        log.warning("aigc plugin %r (%s %s) failed%s: %s", info.name, info.distribution,
                    info.version, where, exc)
        if self.strict:
            raise PluginError(f"plugin {info.name!r} failed{where}: {exc}") from exc

    # -- calling registration hooks ----------------------------------------------
    def call_each(self, hook_name: str, make_kwargs: Callable[[str], dict[str, Any]], *,
                  after: Callable[[str], None] | None = None) -> None:
        """Call a hook plugin by plugin, so one failing plugin is isolated.

        ``make_kwargs(plugin_name)`` builds the keyword arguments for that
        plugin (e.g. a ``register`` function that records who registered what);
        ``after(plugin_name)`` runs after each plugin's call succeeded.
        """
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            name = impl.plugin_name
            info = self.infos.get(name)
            if info is None or info.status != "loaded":
                continue
            kwargs = make_kwargs(name)
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                self._fail(info, exc, during=hook_name)
                continue
            if after is not None:
                after(name)

    def loaded(self) -> Iterator[PluginInfo]:
        """The plugins that loaded successfully."""
        return (i for i in self.infos.values() if i.status == "loaded")

    # -- result processing -------------------------------------------------------
    def has_result_processors(self) -> bool:
        """Whether any loaded plugin implements ``aigc_process_result``."""
        return bool(self._result_impls())

    def _result_impls(self) -> list[Any]:
        return [i for i in self.pm.hook.aigc_process_result.get_hookimpls()
                if self.infos.get(i.plugin_name, None) is not None
                and self.infos[i.plugin_name].status == "loaded"]

    def process_result(self, request: Any, result: Any) -> Any:
        """Run the ``aigc_process_result`` chain (outermost implementation first)."""
        impls = list(reversed(self._result_impls()))
        return self._chain(impls, request, result) if impls else result

    def _chain(self, impls: Sequence[Any], request: Any, result: Any) -> Any:
        for index, impl in enumerate(impls):
            kwargs = {"request": request, "result": result}
            args = [kwargs[a] for a in impl.argnames]
            try:
                if impl.wrapper or impl.hookwrapper:
                    return self._wrap(impl, args, impls[index + 1:], request, result)
                out = impl.function(*args)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in aigc_process_result: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if out is not None:
                if type(out) is not type(result):
                    raise PluginError(
                        f"plugin {impl.plugin_name!r} returned a {type(out).__name__} from "
                        f"aigc_process_result; expected {type(result).__name__} or None"
                    )
                result = out
        return result

    def _wrap(self, impl: Any, args: list[Any], inner: Sequence[Any], request: Any,
              result: Any) -> Any:
        gen = impl.function(*args)
        next(gen)
        try:
            inner_result = self._chain(inner, request, result)
        except Exception as exc:
            # pluggy's wrapper contract: the inner error is thrown in at the yield.
            try:
                gen.throw(exc)
            except StopIteration as stop:
                return stop.value
            raise PluginError(
                f"plugin {impl.plugin_name!r}: wrapper yielded more than once") from exc
        try:
            gen.send(inner_result)
        except StopIteration as stop:
            return stop.value if stop.value is not None else inner_result
        raise PluginError(f"plugin {impl.plugin_name!r}: wrapper yielded more than once")

    # -- stream processing -------------------------------------------------------
    def _stream_impls(self) -> list[Any]:
        return [i for i in self.pm.hook.aigc_process_stream.get_hookimpls()
                if self.infos.get(i.plugin_name, None) is not None
                and self.infos[i.plugin_name].status == "loaded"]

    def has_stream_processors(self) -> bool:
        """Whether any loaded plugin implements ``aigc_process_stream``."""
        return bool(self._stream_impls())

    def process_stream(self, request: Any, events: Iterator[Any]) -> Iterator[Any]:
        """Run the ``aigc_process_stream`` filters over a stream of text events."""
        for impl in reversed(self._stream_impls()):
            kwargs = {"request": request, "events": events}
            try:
                out = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in aigc_process_stream: "
                    f"{type(exc).__name__}: {exc}") from exc
            if out is not None:
                events = iter(out)
        return events


def _hook_names(pm: pluggy.PluginManager, obj: object) -> Iterator[str]:
    for caller in pm.get_hookcallers(obj) or []:
        yield caller.name


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _ep_dist(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.name) if dist is not None else "unknown"


def _ep_version(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return str(dist.version) if dist is not None else "unknown"
