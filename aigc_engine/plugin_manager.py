"""Plugin discovery and loading, one ``pluggy.PluginManager`` per Engine.

Entry points of the ``aigc_engine`` group are loaded one at a time. A plugin
that fails to import or raises in a hook is recorded (name, version, error)
and skipped; ``AIGC_STRICT_PLUGINS=1`` re-raises instead. ``AIGC_PLUGINS`` (or
the ``plugins`` argument) chooses which plugins load: unset or ``*`` = all,
empty = none, ``a,b`` = only those, ``-a`` = all but a.

A plugin cannot take the host down: anything it raises while importing or in a
registration hook, ``SystemExit`` included (only ``KeyboardInterrupt`` passes),
marks it as failed. The built-in plugins (those of the ``aigc-engine``
distribution) keep their names: a third-party entry point of the same name is
not loaded, and is reported as failed. Each failure is logged as one line; the
details are in ``aigc plugins``.
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
#: The distribution whose plugins are the built-in ones.
BUILTIN_DISTRIBUTION = "aigc-engine"


def _caught(exc: BaseException) -> bool:
    """Whether a plugin's exception is recorded as a failure (all but Ctrl-C)."""
    return not isinstance(exc, KeyboardInterrupt)


def one_line(message: str, limit: int = 160) -> str:
    """The first line of ``message``, shortened to ``limit`` characters."""
    lines = message.strip().splitlines()
    first = lines[0] if lines else ""
    more = len(lines) > 1
    if len(first) > limit:
        first, more = first[:limit - 3], True
    return first + (" ..." if more else "")


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
    #: A plugin of aigc-engine itself (it wins name clashes with third parties).
    builtin: bool = False

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
        """Discover and load the ``aigc_engine`` entry points, one by one.

        When several distributions publish one entry-point name, the built-in
        one (else the first by distribution name) loads and the others are
        recorded as failed under ``name[distribution]``.
        """
        by_name: dict[str, list[metadata.EntryPoint]] = {}
        for ep in _entry_points():
            by_name.setdefault(ep.name, []).append(ep)
        # Built-in plugins load first, so a third party cannot pre-empt one (e.g. by
        # registering the same module under another name).
        names = sorted(by_name, key=lambda n: (
            all(_ep_dist(e) != BUILTIN_DISTRIBUTION for e in by_name[n]), n))
        for name in names:
            eps = sorted(by_name[name], key=lambda e: (_ep_dist(e) != BUILTIN_DISTRIBUTION,
                                                       _ep_dist(e)))
            ep, others = eps[0], eps[1:]
            self._load_one(ep)
            kept = "the built-in plugin" if _ep_dist(ep) == BUILTIN_DISTRIBUTION \
                else f"the plugin of {_ep_dist(ep)}"
            for other in others:
                key = f"{name}[{_ep_dist(other)}]"
                info = PluginInfo(key, _ep_version(other), _ep_dist(other), "failed")
                self._fail(info, PluginError(
                    f"entry point {name!r} of {_ep_dist(other)} {_ep_version(other)} has the "
                    f"name of {kept} {name!r} ({_ep_dist(ep)}), which is kept; this one is "
                    "not loaded (its entry point needs another name)"), during="discovery")

    def _load_one(self, ep: metadata.EntryPoint) -> None:
        info = PluginInfo(name=ep.name, version=_ep_version(ep), distribution=_ep_dist(ep),
                          status="loaded", builtin=_ep_dist(ep) == BUILTIN_DISTRIBUTION)
        if not self.selection.allows(ep.name):
            info.status = "blocked"
            self.infos[ep.name] = info
            return
        start = time.perf_counter()
        try:
            obj = ep.load()
        except BaseException as exc:  # a broken plugin must not break the engine
            if not _caught(exc):
                raise
            info.load_seconds = time.perf_counter() - start
            self._fail(info, exc, during="import")
            return
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
        except BaseException as exc:  # pluggy validation errors (bad hook signatures)
            if not _caught(exc):
                raise
            info.load_seconds = time.perf_counter() - start
            self._fail(info, exc, during="registration")
            return
        info.load_seconds = time.perf_counter() - start
        info.hooks = sorted(impl for impl in _hook_names(self.pm, obj))
        self.infos[info.name] = info

    def _fail(self, info: PluginInfo, exc: BaseException, during: str = "") -> None:
        info.status = "failed"
        where = f" during {during}" if during else ""
        detail = str(exc) if not isinstance(exc, SystemExit) else f"exit status {exc.code!r}"
        info.error = f"{type(exc).__name__}{where}: {detail}"
        self.infos[info.name] = info
        if self.pm.has_plugin(info.name):
            self.pm.unregister(name=info.name)
        log.warning("aigc plugin %r (%s %s) failed%s: %s (details: aigc plugins)", info.name,
                    info.distribution, info.version, where,
                    one_line(f"{type(exc).__name__}: {detail}"))
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
            except BaseException as exc:
                if not _caught(exc):
                    raise
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
            except BaseException as exc:
                if not _caught(exc):
                    raise
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
