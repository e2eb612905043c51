"""The plugin contract: discovery, failures isolated, conflicts, selection, result hooks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from aigc_engine import Engine, PluginError, TextResult, UnknownGeneratorError
from aigc_engine.plugin_api import GeneratorSpec, hookimpl
from aigc_engine.testing import isolated_engine

MakeDist = Callable[..., Any]

GOOD = """
from aigc_engine.plugin_api import GeneratorSpec, hookimpl

@hookimpl
def aigc_register_generators(register):
    register(GeneratorSpec(
        "{name}", "text", "aigc_engine.plugins.template.generator:TemplateGenerator",
        description="a test generator"))
"""


def test_builtins_are_discovered_through_entry_points() -> None:
    engine = Engine(plugins="*")
    infos = {i.name: i for i in engine.plugins()}
    assert infos["template"].status == "loaded"
    assert infos["template"].distribution == "aigc-engine"
    assert infos["template"].generators == ["template"]
    assert "tinyshakespeare" in infos["datasets"].datasets
    assert infos["template"].load_seconds > 0


def test_plugin_failing_on_import_is_recorded_and_skipped(make_dist: MakeDist) -> None:
    make_dist("aigc-broken", "1.2.3", {"broken": "broken_mod"},
              {"broken_mod": "raise RuntimeError('boom at import')"})
    engine = Engine(plugins="*")
    info = {i.name: i for i in engine.plugins()}["broken"]
    assert info.status == "failed"
    assert info.version == "1.2.3" and info.distribution == "aigc-broken"
    assert "boom at import" in (info.error or "") and "import" in (info.error or "")
    assert "template" in [g.name for g in engine.list_generators()]  # the rest keeps working


def test_plugin_raising_in_a_hook_is_recorded_and_its_registrations_dropped(
        make_dist: MakeDist) -> None:
    make_dist("aigc-half", "0.1", {"half": "half_mod"}, {"half_mod": GOOD.format(name="half") + """
@hookimpl
def aigc_register_datasets(register):
    raise ValueError("dataset hook exploded")
"""})
    engine = Engine(plugins="*")
    info = {i.name: i for i in engine.plugins()}["half"]
    assert info.status == "failed"
    assert "aigc_register_datasets" in (info.error or "")
    assert "dataset hook exploded" in (info.error or "")
    assert "half" not in [g.name for g in engine.list_generators()]
    with pytest.raises(UnknownGeneratorError, match="half"):
        engine.create("half")


def test_strict_mode_reraises(make_dist: MakeDist, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist("aigc-broken", "1.0", {"broken": "broken_mod"},
              {"broken_mod": "raise ImportError('missing thing')"})
    monkeypatch.setenv("AIGC_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken.*missing thing"):
        Engine(plugins="*")


def test_two_plugins_with_one_generator_name_is_an_error_naming_both(
        make_dist: MakeDist) -> None:
    make_dist("aigc-one", "1.0", {"one": "one_mod"}, {"one_mod": GOOD.format(name="twin")})
    make_dist("aigc-two", "1.0", {"two": "two_mod"}, {"two_mod": GOOD.format(name="twin")})
    engine = Engine(plugins="*")
    with pytest.raises(PluginError) as err:
        engine.create("twin")
    assert "'one'" in str(err.value) and "'two'" in str(err.value)
    assert "twin" not in [g.name for g in engine.list_generators()]
    infos = {i.name: i for i in engine.plugins()}
    assert "twin" in (infos["one"].error or "") and "twin" in (infos["two"].error or "")
    assert "template" in [g.name for g in engine.list_generators()]
    with pytest.raises(PluginError, match="twin"):
        Engine(plugins="*", strict=True)


def test_two_plugins_with_one_name_resolved_by_blocking_one(make_dist: MakeDist) -> None:
    make_dist("aigc-one", "1.0", {"one": "one_mod"}, {"one_mod": GOOD.format(name="twin")})
    make_dist("aigc-two", "1.0", {"two": "two_mod"}, {"two_mod": GOOD.format(name="twin")})
    engine = Engine(plugins="-two")
    assert engine.generator("twin").plugin == "one"


@pytest.mark.parametrize("value,loaded", [
    ("", set()),
    ("template", {"template"}),
    ("-template", {"datasets"}),
    ("datasets, template", {"datasets", "template"}),
])
def test_aigc_plugins_selects_builtins(monkeypatch: pytest.MonkeyPatch, value: str,
                                       loaded: set[str]) -> None:
    monkeypatch.setenv("AIGC_PLUGINS", value)
    engine = Engine()
    infos = {i.name: i for i in engine.plugins() if i.name in ("template", "datasets")}
    assert {n for n, i in infos.items() if i.status == "loaded"} == loaded
    blocked = {n for n, i in infos.items() if i.status == "blocked"}
    assert blocked == {"template", "datasets"} - loaded
    if "template" not in loaded:
        with pytest.raises(UnknownGeneratorError, match="template.*blocked"):
            engine.create("template")


def test_engine_argument_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_PLUGINS", "")
    assert [g.name for g in Engine(plugins=["template"]).list_generators()] == ["template"]


def test_engines_are_isolated() -> None:
    calls: list[str] = []

    class Plugin:
        @hookimpl
        def aigc_register_generators(self, register: Callable[[GeneratorSpec], None]) -> None:
            calls.append("x")
            register(GeneratorSpec("only-here", "text",
                                   "aigc_engine.plugins.template.generator:TemplateGenerator",
                                   description="d"))

    a = isolated_engine({"p": Plugin()})
    b = isolated_engine({})
    assert [g.name for g in a.list_generators()] == ["only-here"]
    assert b.list_generators() == []
    assert calls == ["x"]


def test_lazy_factory_is_not_imported_until_created() -> None:
    class Plugin:
        @hookimpl
        def aigc_register_generators(self, register: Callable[[GeneratorSpec], None]) -> None:
            register(GeneratorSpec("lazy", "text", "aigc_nonexistent_module:Gen",
                                   description="never imported by listing"))

    engine = isolated_engine({"p": Plugin()})
    assert [g.name for g in engine.list_generators()] == ["lazy"]
    with pytest.raises(PluginError, match="lazy.*cannot be imported.*aigc_nonexistent_module"):
        engine.create("lazy")


def test_bad_spec_is_reported_as_plugin_failure() -> None:
    class Plugin:
        @hookimpl
        def aigc_register_generators(self, register: Callable[[Any], None]) -> None:
            register(GeneratorSpec("bad name!", "text", "m:C"))

    engine = isolated_engine({"p": Plugin()}, strict=False)
    info = engine.plugins()[0]
    assert info.status == "failed" and "bad name!" in (info.error or "")


def _template_engine(*processors: object) -> Engine:
    plugins: dict[str, object] = {"template": __import__("aigc_engine.plugins.template",
                                                         fromlist=["x"])}
    for i, p in enumerate(processors):
        plugins[f"proc{i}"] = p
    return isolated_engine(plugins)


def test_result_processors_chain_in_pluggy_order() -> None:
    class Upper:
        @hookimpl
        def aigc_process_result(self, result: TextResult) -> TextResult:
            return TextResult([t.upper() for t in result.texts], result.request, result.metadata)

    class Mark:
        @hookimpl(tryfirst=True)
        def aigc_process_result(self, request: Any, result: TextResult) -> None:
            result.texts[:] = [t + " [marked]" for t in result.texts]

    class Wrap:
        @hookimpl(wrapper=True)
        def aigc_process_result(self, result: TextResult) -> Any:
            inner = yield
            inner.metadata["wrapped"] = True
            return inner

    engine = _template_engine(Upper(), Mark(), Wrap())
    gen = engine.create("template")
    gen.fit({"origin": ["hello"]})
    result = gen.generate(seed=1)
    # tryfirst Mark runs before Upper, so its mark is upper-cased too.
    assert result.text == "HELLO [MARKED]"
    assert result.metadata["wrapped"] is True
    assert engine.has_result_processors()


def test_failing_result_processor_names_the_plugin() -> None:
    class Bad:
        @hookimpl
        def aigc_process_result(self, result: Any) -> Any:
            raise KeyError("oops")

    engine = _template_engine(Bad())
    gen = engine.create("template")
    gen.fit({"origin": ["x"]})
    with pytest.raises(PluginError, match="proc0.*aigc_process_result.*oops"):
        gen.generate(seed=1)


def test_cli_keeps_working_with_a_broken_plugin(make_dist: MakeDist) -> None:
    site = make_dist("aigc-broken", "1.0", {"broken": "broken_mod"},
                     {"broken_mod": "import nonexistent_dependency_xyz"})
    env_code = (f"import sys; sys.path.insert(0, {str(site)!r}); sys.argv=['aigc','plugins',"
                "'--json']; from aigc_engine.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", env_code], capture_output=True, text=True,
                         env=_env())
    assert out.returncode == 0, out.stderr
    infos = {i["name"]: i for i in json.loads(out.stdout)}
    assert infos["broken"]["status"] == "failed"
    assert "nonexistent_dependency_xyz" in infos["broken"]["error"]
    assert infos["template"]["status"] == "loaded"


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("AIGC_PLUGINS", None)
    env.pop("AIGC_STRICT_PLUGINS", None)
    return env


def test_plugin_info_json_round_trips() -> None:
    info = Engine(plugins="*").plugins()[0]
    assert json.loads(json.dumps(info.to_json()))["name"] == info.name
    assert SimpleNamespace(**info.to_json()).status in ("loaded", "failed", "blocked")
