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


# -- plugins cannot take the host down or take over (issue 14) -----------------------------

def _cli(site: Any, *args: str) -> subprocess.CompletedProcess[str]:
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); sys.argv=['aigc', *{list(args)!r}]; "
            "from aigc_engine.cli import main; main()")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)


def test_a_plugin_calling_sys_exit_on_import_is_recorded_as_failed(make_dist: MakeDist) -> None:
    site = make_dist("aigc-quitter", "0.3", {"quitter": "quitter_mod"},
                     {"quitter_mod": "import sys\nsys.exit(3)"})
    engine = Engine(plugins="*")
    info = {i.name: i for i in engine.plugins()}["quitter"]
    assert info.status == "failed"
    assert info.error == "SystemExit during import: exit status 3"
    assert "template" in [g.name for g in engine.list_generators()]
    out = _cli(site, "--help")
    assert out.returncode == 0 and "Usage: aigc" in out.stdout
    assert out.stderr.strip() == ("aigc plugin 'quitter' (aigc-quitter 0.3) failed during import: "
                                  "SystemExit: exit status 3 (details: aigc plugins)")


def test_a_plugin_exiting_in_a_hook_is_recorded_as_failed(make_dist: MakeDist) -> None:
    make_dist("aigc-quitter", "0.3", {"quitter": "quitter_mod"}, {"quitter_mod": """
from aigc_engine.plugin_api import hookimpl

@hookimpl
def aigc_register_generators(register):
    raise SystemExit("bye")
"""})
    info = {i.name: i for i in Engine(plugins="*").plugins()}["quitter"]
    assert info.status == "failed"
    assert info.error == "SystemExit during aigc_register_generators: exit status 'bye'"


def test_ctrl_c_during_a_plugin_import_is_not_swallowed(make_dist: MakeDist) -> None:
    make_dist("aigc-slow", "0.1", {"slow": "slow_mod"}, {"slow_mod": "raise KeyboardInterrupt"})
    with pytest.raises(KeyboardInterrupt):
        Engine(plugins="*")


def test_a_third_party_dataset_cannot_replace_a_builtin_one(make_dist: MakeDist) -> None:
    make_dist("aigc-fake", "1.0", {"fake": "fake_mod"}, {"fake_mod": """
from aigc_engine.plugin_api import DatasetSpec, TextDataset, hookimpl

@hookimpl
def aigc_register_datasets(register):
    register(DatasetSpec("tinyshakespeare", "text",
                         lambda: TextDataset.from_lines(["hijacked"], name="fake")))
"""})
    engine = Engine(plugins="*")
    data = engine.dataset("tinyshakespeare")
    assert data.name == "tinyshakespeare" and "hijacked" not in data.text()[:100]
    infos = {i.name: i for i in engine.plugins()}
    assert infos["fake"].status == "loaded" and infos["fake"].datasets == []
    assert infos["fake"].error == ("dataset 'tinyshakespeare' of plugin 'fake' has the name of "
                                   "the built-in one of plugin 'datasets', which is kept; this "
                                   "registration is ignored")
    assert infos["datasets"].error is None and infos["datasets"].builtin


def test_a_third_party_generator_cannot_replace_a_builtin_one(make_dist: MakeDist) -> None:
    make_dist("aigc-fake", "1.0", {"fake": "fake_mod"}, {"fake_mod": GOOD.format(name="ngram")})
    engine = Engine(plugins="*")
    assert engine.generator("ngram").plugin == "ngram"
    assert type(engine.create("ngram")).__module__ == "aigc_engine.plugins.ngram.generator"
    infos = {i.name: i for i in engine.plugins()}
    assert infos["ngram"].error is None
    assert infos["fake"].error == ("generator 'ngram' of plugin 'fake' has the name of the "
                                   "built-in one of plugin 'ngram', which is kept; this "
                                   "registration is ignored")


def test_a_third_party_entry_point_named_like_a_builtin_is_the_one_refused(
        make_dist: MakeDist) -> None:
    make_dist("aigc-evil", "6.6", {"ngram": "evil_mod"}, {"evil_mod": GOOD.format(name="evil")})
    engine = Engine(plugins="*")
    infos = {i.name: i for i in engine.plugins()}
    assert infos["ngram"].status == "loaded" and infos["ngram"].distribution == "aigc-engine"
    assert infos["ngram"].error is None
    assert "ngram" in [g.name for g in engine.list_generators()]
    assert "evil" not in [g.name for g in engine.list_generators()]
    evil = infos["ngram[aigc-evil]"]
    assert evil.status == "failed" and evil.distribution == "aigc-evil"
    assert evil.error == ("PluginError during discovery: entry point 'ngram' of aigc-evil 6.6 has "
                          "the name of the built-in plugin 'ngram' (aigc-engine), which is kept; "
                          "this one is not loaded (its entry point needs another name)")


def test_plugin_warnings_are_one_line_each(make_dist: MakeDist) -> None:
    # An entry point naming a built-in module again: pluggy's error dumps its plugin dict.
    site = make_dist("aigc-dup", "1.0", {"dup": "aigc_engine.plugins.template"}, {})
    make_dist("aigc-broken", "1.0", {"broken": "broken_mod"},
              {"broken_mod": "raise RuntimeError('first line\\nsecond line\\nthird line')"})
    out = _cli(site, "generators")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    assert lines[0] == ("aigc plugin 'broken' (aigc-broken 1.0) failed during import: "
                        "RuntimeError: first line ... (details: aigc plugins)")
    assert lines[1].startswith("aigc plugin 'dup' (aigc-dup 1.0) failed during registration: "
                               "ValueError: ")
    assert lines[1].endswith(" (details: aigc plugins)") and len(lines[1]) < 260
    details = json.loads(_cli(site, "plugins", "--json").stdout)
    assert {i["name"]: i for i in details}["template"]["status"] == "loaded"  # not pre-empted
    broken = {i["name"]: i for i in details}["broken"]
    assert broken["error"] == "RuntimeError during import: first line\nsecond line\nthird line"
