"""The template (Tracery-style) generator."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import aigc_engine.plugins.template as template_plugin
from aigc_engine import ConfigError, Engine
from aigc_engine.plugins.template.grammar import Grammar, parse_rule
from aigc_engine.testing import check_generator, isolated_engine


def expand(rules: dict[str, list[str]], seed: int = 0, start: str = "origin") -> str:
    return Grammar(rules).expand(start, random.Random(seed), max_depth=50)


def test_contract() -> None:
    engine = isolated_engine({"template": template_plugin})
    check_generator(engine, "template", data={"origin": ["#a# #b#"], "a": ["x", "y"],
                                              "b": ["1", "2", "3"]})


@pytest.mark.parametrize("rule,expected", [
    ("#w.capitalize#", "The fox"),
    ("#w.capitalizeAll#", "The Fox"),
    ("#w.uppercase#", "THE FOX"),
    ("#animal.s#", "boxes"),
    ("#city.s#", "cities"),
    ("#day.s#", "days"),
    ("#animal.a#", "a box"),
    ("#thing.a#", "an owl"),
    ("#verb.ed#", "walked"),
    ("#bake.ed#", "baked"),
    ("#try.ed#", "tried"),
    ("#animal.possessive#", "box's"),
    ("#animal.inQuotes#", '"box"'),
    ("#animal.s.capitalize#", "Boxes"),
    ("\\#literal\\#", "#literal#"),
])
def test_modifiers(rule: str, expected: str) -> None:
    rules = {"origin": [rule], "w": ["the fox"], "animal": ["box"], "city": ["city"],
             "day": ["day"], "thing": ["owl"], "verb": ["walk"], "bake": ["bake"], "try": ["try"]}
    assert expand(rules) == expected


def test_actions_push_and_keep_a_choice() -> None:
    rules = {"origin": ["#[hero:#name#]story#"], "story": ["#hero# met #hero#"],
             "name": ["Ann", "Bob", "Cyd", "Dee"]}
    for seed in range(10):
        first, _, second = expand(rules, seed).partition(" met ")
        assert first == second and first in rules["name"]


def test_pop_restores_the_previous_value() -> None:
    rules = {"origin": ["[x:a][x:b]#x#[x:POP]#x#"]}
    assert expand(rules) == "ba"


def test_same_seed_same_text_and_seeds_differ() -> None:
    rules = {"origin": ["#a##a##a##a#"], "a": list("abcdefghij")}
    assert expand(rules, 1) == expand(rules, 1)
    assert len({expand(rules, s) for s in range(20)}) > 15


def test_choices_are_uniform() -> None:
    # 4,000 draws over 4 rules: each count ~ Binomial(4000, 1/4), sd ~ 27.4; a 6-sd band
    # (fixed seeds, so the test is deterministic) checks the choice is not biased.
    rules = {"origin": ["#a#"], "a": ["0", "1", "2", "3"]}
    counts = [0] * 4
    for seed in range(4000):
        counts[int(expand(rules, seed))] += 1
    assert all(abs(c - 1000) < 165 for c in counts), counts


@pytest.mark.parametrize("rules,match", [
    ({"origin": ["#missing#"]}, "refers to #missing#"),
    ({"origin": ["#open"]}, "unclosed '#'"),
    ({"origin": ["[x:#y#"]}, "unclosed '\\['"),
    ({"origin": ["#a.shout#"], "a": ["x"]}, "unknown modifier 'shout'"),
    ({"origin": []}, "non-empty list"),
    ({}, "non-empty JSON object"),
    ({"origin": ["[nocolon]"]}, "must be \\[key:rule\\]"),
])
def test_bad_grammars_are_clear_errors(rules: dict[str, list[str]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Grammar(rules)


def test_runaway_recursion_is_stopped() -> None:
    with pytest.raises(ConfigError, match="deeper than max_depth=50"):
        expand({"origin": ["x#origin#"]})


def test_generator_uses_start_symbol_prompt_and_n() -> None:
    engine = Engine(plugins=["template", "datasets"])
    gen = engine.create("template", start="greeting")
    gen.fit({"greeting": ["hi #who#"], "who": ["you", "them"]})
    result = gen.generate("> ", n=3, seed=2, echo=True)  # type: ignore[call-arg]
    assert len(result.texts) == 3
    assert all(t in ("> hi you", "> hi them") for t in result.texts)
    assert "".join(gen.stream_text("> ", seed=2, echo=True)) == result.texts[0]  # type: ignore[attr-defined]
    # Without echo the texts are the expansions; a stop string cuts them.
    assert gen.generate("> ", n=3, seed=2).texts == [t[2:] for t in result.texts]  # type: ignore[call-arg]
    assert set(gen.generate(n=8, seed=3, stop=" y").texts) == {"hi", "hi them"}  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="start symbol 'origin' is not in the grammar"):
        engine.create("template").fit({"greeting": ["x"]})


def test_bundled_example_grammar_trains_through_the_dataset_name() -> None:
    engine = Engine(plugins=["template"])
    gen = engine.create("template")
    metrics = gen.fit("example-grammar")
    assert metrics["symbols"] == 11
    text = gen.generate(seed=0).text  # type: ignore[attr-defined]
    assert text.endswith((".", "!")) and "#" not in text


def test_invalid_json_names_the_position(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "g.json"
    path.write_text('{"origin": ["a",]}')
    with pytest.raises(ConfigError, match="not valid JSON.*line 1"):
        Engine(plugins=["template"]).create("template").fit(str(path))


def test_parse_rule_shapes() -> None:
    nodes = parse_rule("a #b.s# [c:d]", where="t")
    assert [type(n).__name__ for n in nodes] == ["_Text", "_Symbol", "_Text", "_Action"]


# -- bounded expansion (issue 14) ------------------------------------------------------------

def _doubling(levels: int) -> dict[str, list[str]]:
    rules = {"origin": ["#s0#"], f"s{levels}": ["x"]}
    for i in range(levels):
        rules[f"s{i}"] = [f"#s{i + 1}##s{i + 1}#"]
    return rules


def test_a_grammar_that_doubles_each_level_stops_with_a_clear_error() -> None:
    import time

    engine = isolated_engine({"template": template_plugin})
    gen = engine.create("template", max_depth=64)
    gen.fit(_doubling(28))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="more than 200,000 symbol expansions: the grammar "
                       "probably grows without end"):
        gen.generate(seed=1)
    assert time.perf_counter() - start < 20


def test_a_grammar_of_empty_doublings_is_bounded_too() -> None:
    rules = _doubling(28)
    rules["s28"] = [""]
    with pytest.raises(ConfigError, match="more than 200,000 symbol expansions"):
        expand(rules)


def test_output_size_is_bounded() -> None:
    rules = {"origin": ["#a##a##a##a#"], "a": ["y" * 300_000]}
    with pytest.raises(ConfigError, match="longer than 1,000,000 characters"):
        expand(rules)
    assert len(expand({"origin": ["#a##a#"], "a": ["y" * 300_000]})) == 600_000


def test_max_depth_10000_is_iterative_not_recursive() -> None:
    chain = {"origin": ["#s0#"], "s9999": ["end"]}
    chain.update({f"s{i}": [f"<#s{i + 1}#"] for i in range(9999)})
    text = Grammar(chain).expand("origin", random.Random(0), max_depth=10_000)
    assert text == "<" * 9999 + "end"
    forever = {"origin": ["#origin#x"]}
    engine = isolated_engine({"template": template_plugin})
    gen = engine.create("template", max_depth=10_000)
    gen.fit(forever)
    with pytest.raises(ConfigError, match="deeper than max_depth=10000 at #origin#"):
        gen.generate(seed=0)


def test_deeply_nested_actions_are_a_config_error() -> None:
    rule = "[a:" * 1500 + "x" + "]" * 1500  # beyond Python's recursion limit
    with pytest.raises(ConfigError, match="nests actions too deeply"):
        Grammar({"origin": [rule]})


def test_a_grammar_file_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    engine = isolated_engine({"template": template_plugin})
    with pytest.raises(ConfigError, match=r"grammar '.*deep\.json' is nested too deeply"):
        engine.create("template").fit(str(path))
