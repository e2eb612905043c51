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
from typing import Any

from aigc_engine.plugin_api import ConfigError

_VOWELS = "aeiouAEIOU"

#: Bounds of one expansion: characters of text and symbol expansions.
MAX_CHARS = 1_000_000
MAX_EXPANSIONS = 200_000


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
            try:
                self._rules[symbol] = [parse_rule(o, where=f"symbol {symbol!r}") for o in options]
            except RecursionError:
                raise ConfigError(f"a rule of symbol {symbol!r} nests actions too deeply"
                                  ) from None
        try:
            self._check_references()
        except RecursionError:
            raise ConfigError("the grammar's rules nest actions too deeply") from None

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

    def expand(self, start: str, rng: random.Random, *, max_depth: int,
               max_chars: int = MAX_CHARS, max_expansions: int = MAX_EXPANSIONS) -> str:
        """Expand ``start`` to text (bounds: see :meth:`iter_expand`)."""
        return "".join(self.iter_expand(start, rng, max_depth=max_depth, max_chars=max_chars,
                                        max_expansions=max_expansions))

    def iter_expand(self, start: str, rng: random.Random, *, max_depth: int,
                    max_chars: int = MAX_CHARS, max_expansions: int = MAX_EXPANSIONS
                    ) -> Iterator[str]:
        """Expand ``start``, yielding pieces of text in order (for streaming).

        The expansion runs on an explicit stack (no Python recursion, so any
        ``max_depth`` is safe) and is bounded: nesting deeper than
        ``max_depth``, more than ``max_expansions`` symbol expansions, or more
        than ``max_chars`` characters of text is a ConfigError that says which
        bound was hit (a grammar whose symbols double the next one grows
        exponentially).
        """
        if start not in self._rules:
            raise ConfigError(f"start symbol {start!r} is not in the grammar; symbols: "
                              f"{', '.join(self._rules)}")
        pieces: list[str] = []
        _Expansion(self._rules, rng, max_depth=max_depth, max_chars=max_chars,
                   max_expansions=max_expansions).run(_Symbol(start, ()), pieces)
        yield from pieces


class _Expansion:
    """One expansion: a work stack of tasks, run last-in first-out.

    Tasks (tuples, first item the kind), in the order the recursive definition
    visits them, so the random choices are drawn in the same order:
    ``nodes`` (expand nodes[i:] into a buffer), ``symbol`` (expand one symbol),
    ``apply`` (join an inner buffer, apply modifiers, append to the outer one),
    ``push`` (push an action's expanded value), ``unpush`` (pop the values a
    symbol's actions pushed, once the symbol is done).
    """

    def __init__(self, rules: dict[str, list[tuple[_Node, ...]]], rng: random.Random, *,
                 max_depth: int, max_chars: int, max_expansions: int) -> None:
        self.rules = rules
        self.rng = rng
        self.max_depth = max_depth
        self.max_chars = max_chars
        self.max_expansions = max_expansions
        self.stack: dict[str, list[list[tuple[_Node, ...]]]] = {}
        self.chars = 0
        self.expansions = 0

    def _emit(self, out: list[str], text: str) -> None:
        self.chars += len(text)
        if self.chars > self.max_chars:
            raise ConfigError(
                f"the expansion is longer than {self.max_chars:,} characters: the grammar "
                "probably grows without end (e.g. each symbol expanding the next twice)"
            )
        out.append(text)

    def run(self, start: _Symbol, out: list[str]) -> None:
        work: list[tuple[Any, ...]] = [("symbol", start, 0, out)]
        stack = self.stack
        while work:
            task = work.pop()
            kind = task[0]
            if kind == "nodes":
                _, nodes, i, depth, buf = task
                if i >= len(nodes):
                    continue
                work.append(("nodes", nodes, i + 1, depth, buf))
                node = nodes[i]
                if isinstance(node, _Text):
                    self._emit(buf, node.value)
                elif isinstance(node, _Symbol):
                    work.append(("symbol", node, depth, buf))
                elif node.rule is None:
                    if stack.get(node.key):
                        stack[node.key].pop()
                else:
                    value: list[str] = []
                    work.append(("push", node.key, value))
                    work.append(("nodes", node.rule, 0, depth + 1, value))
            elif kind == "symbol":
                _, sym, depth, buf = task
                self._symbol(sym, depth, buf, work)
            elif kind == "apply":
                _, modifiers, inner, buf = task
                text = "".join(inner)
                for mod in modifiers:
                    text = MODIFIERS[mod](text)
                self._emit(buf, text)
            elif kind == "push":
                _, key, value = task
                stack.setdefault(key, []).append([(_Text("".join(value)),)])
            else:  # "unpush"
                for action in task[1]:
                    if action.rule is not None and stack.get(action.key):
                        stack[action.key].pop()

    def _symbol(self, sym: _Symbol, depth: int, buf: list[str],
                work: list[tuple[Any, ...]]) -> None:
        if depth > self.max_depth:
            raise ConfigError(
                f"expansion deeper than max_depth={self.max_depth} at #{sym.name}#: "
                "the grammar probably recurses without end"
            )
        if sym.actions:
            # The actions, then the symbol itself, then undo the actions' pushes.
            work.append(("unpush", sym.actions))
            if sym.name:
                work.append(("symbol", _Symbol(sym.name, sym.modifiers), depth, buf))
            work.append(("nodes", sym.actions, 0, depth, buf))
            return
        self.expansions += 1
        if self.expansions > self.max_expansions:
            raise ConfigError(
                f"the expansion needs more than {self.max_expansions:,} symbol expansions: the "
                "grammar probably grows without end (e.g. each symbol expanding the next twice)"
            )
        pushed = self.stack.get(sym.name)
        options = pushed[-1] if pushed else self.rules.get(sym.name)
        if options is None:
            raise ConfigError(f"#{sym.name}# is not defined at this point of the expansion")
        chosen = options[self.rng.randrange(len(options))] if len(options) > 1 else options[0]
        if sym.modifiers:
            inner: list[str] = []
            work.append(("apply", sym.modifiers, inner, buf))
            work.append(("nodes", chosen, 0, depth + 1, inner))
        else:
            work.append(("nodes", chosen, 0, depth + 1, buf))


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
