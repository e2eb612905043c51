"""A Tracery-style grammar: symbols expanded recursively from rules.

A grammar maps symbol names to lists of rules. In a rule, ``#name#`` expands
the symbol ``name``; ``#name.capitalize.s#`` applies modifiers left to right;
``[hero:#name#]`` pushes a value for ``hero`` (expanded once, so later
``#hero#`` repeat it) and ``[hero:POP]`` pops it. ``\\#`` and ``\\[`` are
literal characters.

Modifiers: capitalize, capitalizeAll, uppercase, lowercase, s (plural), a
(a/an article), ed (past tense), possessive, inQuotes, comma.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from aigc_engine.plugin_api import ConfigError

_VOWELS = "aeiouAEIOU"


def _plural(word: str) -> str:
    if not word:
        return word
    low = word.lower()
    if low.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def _article(word: str) -> str:
    if not word:
        return word
    first = word[0]
    if first in _VOWELS and not word.lower().startswith(("uni", "use", "eu")):
        return "an " + word
    return "a " + word


def _past(word: str) -> str:
    if not word:
        return word
    head, sep, rest = word.partition(" ")
    low = head.lower()
    if low.endswith("e"):
        head += "d"
    elif low.endswith("y") and len(low) > 1 and low[-2] not in _VOWELS:
        head = head[:-1] + "ied"
    else:
        head += "ed"
    return head + sep + rest


def _possessive(word: str) -> str:
    return word + "'" if word.endswith("s") else word + "'s"


MODIFIERS: dict[str, Callable[[str], str]] = {
    "capitalize": lambda s: s[:1].upper() + s[1:],
    "capitalizeAll": lambda s: " ".join(w[:1].upper() + w[1:] for w in s.split(" ")),
    "uppercase": str.upper,
    "lowercase": str.lower,
    "s": _plural,
    "a": _article,
    "ed": _past,
    "possessive": _possessive,
    "inQuotes": lambda s: f'"{s}"',
    "comma": lambda s: s if s.endswith((",", ".", "!", "?")) or not s else s + ",",
}


@dataclass(frozen=True)
class _Text:
    value: str


@dataclass(frozen=True)
class _Symbol:
    name: str  # empty: a tag holding actions only
    modifiers: tuple[str, ...]
    actions: tuple[_Action, ...] = ()  # pushed before the expansion, popped after


@dataclass(frozen=True)
class _Action:
    key: str
    rule: tuple[_Node, ...] | None  # None = POP


_Node = _Text | _Symbol | _Action


def parse_rule(rule: str, *, where: str) -> tuple[_Node, ...]:
    """Parse one rule into text, symbol and action nodes; errors name ``where``."""
    nodes: list[_Node] = []
    text: list[str] = []
    i = 0
    while i < len(rule):
        c = rule[i]
        if c == "\\" and i + 1 < len(rule):
            text.append(rule[i + 1])
            i += 2
            continue
        if c == "#":
            if text:
                nodes.append(_Text("".join(text)))
                text = []
            j = i + 1
            actions: list[_Action] = []
            while j < len(rule) and rule[j] == "[":
                end = _matching_bracket(rule, j, where)
                actions.append(_parse_action(rule, j, end, where))
                j = end + 1
            end = rule.find("#", j)
            if end < 0:
                raise ConfigError(f"{where}: unclosed '#' at position {i} in rule {rule!r}")
            tag = rule[j:end]
            name, *mods = tag.split(".") if tag else ("",)
            if not name and (mods or not actions):
                raise ConfigError(f"{where}: empty symbol at position {i} in rule {rule!r}")
            for mod in mods:
                if mod not in MODIFIERS:
                    raise ConfigError(
                        f"{where}: unknown modifier {mod!r} in rule {rule!r}; "
                        f"known: {', '.join(MODIFIERS)}"
                    )
            nodes.append(_Symbol(name, tuple(mods), tuple(actions)))
            i = end + 1
            continue
        if c == "[":
            end = _matching_bracket(rule, i, where)
            if text:
                nodes.append(_Text("".join(text)))
                text = []
            nodes.append(_parse_action(rule, i, end, where))
            i = end + 1
            continue
        text.append(c)
        i += 1
    if text:
        nodes.append(_Text("".join(text)))
    return tuple(nodes)


def _parse_action(rule: str, start: int, end: int, where: str) -> _Action:
    key, sep, value = rule[start + 1:end].partition(":")
    if not sep or not key:
        raise ConfigError(f"{where}: action {rule[start:end + 1]!r} must be [key:rule]")
    return _Action(key, None if value == "POP" else parse_rule(value, where=where))


def _matching_bracket(rule: str, start: int, where: str) -> int:
    depth = 0
    for j in range(start, len(rule)):
        if rule[j] == "[":
            depth += 1
        elif rule[j] == "]":
            depth -= 1
            if depth == 0:
                return j
    raise ConfigError(f"{where}: unclosed '[' at position {start} in rule {rule!r}")


class Grammar:
    """A parsed, checked grammar."""

    def __init__(self, rules: Mapping[str, Sequence[str] | str]) -> None:
        if not isinstance(rules, Mapping) or not rules:
            raise ConfigError("a grammar must be a non-empty JSON object of symbol -> rules")
        self.source: dict[str, list[str]] = {}
        self._rules: dict[str, list[tuple[_Node, ...]]] = {}
        for symbol, options in rules.items():
            if isinstance(options, str):
                options = [options]
            if not isinstance(options, Sequence) or not options or not all(
                    isinstance(o, str) for o in options):
                raise ConfigError(
                    f"grammar symbol {symbol!r} must have a non-empty list of string rules"
                )
            self.source[symbol] = list(options)
            self._rules[symbol] = [parse_rule(o, where=f"symbol {symbol!r}") for o in options]
        self._check_references()

    def _check_references(self) -> None:
        pushed = {key for options in self._rules.values() for nodes in options
                  for key in _pushed_keys(nodes)}
        for symbol, options in self._rules.items():
            for nodes in options:
                for name in _referenced(nodes):
                    if name not in self._rules and name not in pushed:
                        raise ConfigError(
                            f"symbol {symbol!r} refers to #{name}#, which the grammar does not "
                            "define"
                        )

    @property
    def symbols(self) -> list[str]:
        """The symbols the grammar defines."""
        return list(self._rules)

    def expand(self, start: str, rng: random.Random, *, max_depth: int) -> str:
        """Expand ``start`` to text."""
        return "".join(self.iter_expand(start, rng, max_depth=max_depth))

    def iter_expand(self, start: str, rng: random.Random, *, max_depth: int) -> Iterator[str]:
        """Expand ``start``, yielding pieces of text in order (for streaming)."""
        if start not in self._rules:
            raise ConfigError(f"start symbol {start!r} is not in the grammar; symbols: "
                              f"{', '.join(self._rules)}")
        stack: dict[str, list[list[tuple[_Node, ...]]]] = {}
        pieces: list[str] = []
        self._expand_symbol(_Symbol(start, ()), rng, stack, 0, max_depth, pieces)
        yield from pieces

    def _expand_symbol(self, sym: _Symbol, rng: random.Random,
                       stack: dict[str, list[list[tuple[_Node, ...]]]], depth: int,
                       max_depth: int, out: list[str]) -> None:
        if depth > max_depth:
            raise ConfigError(
                f"expansion deeper than max_depth={max_depth} at #{sym.name}#: "
                "the grammar probably recurses without end"
            )
        if sym.actions:
            self._expand_nodes(sym.actions, rng, stack, depth, max_depth, out)
            if sym.name:
                self._expand_symbol(_Symbol(sym.name, sym.modifiers), rng, stack, depth,
                                    max_depth, out)
            for action in sym.actions:
                if action.rule is not None and stack.get(action.key):
                    stack[action.key].pop()
            return
        pushed = stack.get(sym.name)
        options = pushed[-1] if pushed else self._rules.get(sym.name)
        if options is None:
            raise ConfigError(f"#{sym.name}# is not defined at this point of the expansion")
        chosen = options[rng.randrange(len(options))] if len(options) > 1 else options[0]
        if sym.modifiers:
            inner: list[str] = []
            self._expand_nodes(chosen, rng, stack, depth + 1, max_depth, inner)
            text = "".join(inner)
            for mod in sym.modifiers:
                text = MODIFIERS[mod](text)
            out.append(text)
        else:
            self._expand_nodes(chosen, rng, stack, depth + 1, max_depth, out)

    def _expand_nodes(self, nodes: tuple[_Node, ...], rng: random.Random,
                      stack: dict[str, list[list[tuple[_Node, ...]]]], depth: int,
                      max_depth: int, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.value)
            elif isinstance(node, _Symbol):
                self._expand_symbol(node, rng, stack, depth, max_depth, out)
            elif node.rule is None:
                if stack.get(node.key):
                    stack[node.key].pop()
            else:
                value: list[str] = []
                self._expand_nodes(node.rule, rng, stack, depth + 1, max_depth, value)
                stack.setdefault(node.key, []).append([(_Text("".join(value)),)])


def _referenced(nodes: tuple[_Node, ...]) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, _Symbol):
            if node.name:
                yield node.name
            yield from _referenced(node.actions)
        elif isinstance(node, _Action) and node.rule is not None:
            yield from _referenced(node.rule)


def _pushed_keys(nodes: tuple[_Node, ...]) -> set[str]:
    keys: set[str] = set()
    for node in nodes:
        if isinstance(node, _Symbol):
            keys |= _pushed_keys(node.actions)
        elif isinstance(node, _Action):
            keys.add(node.key)
            if node.rule is not None:
                keys |= _pushed_keys(node.rule)
    return keys
