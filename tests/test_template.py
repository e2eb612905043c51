"""The template (Tracery-style) generator."""

from __future__ import annotations

import random

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
