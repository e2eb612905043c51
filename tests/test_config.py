"""Generator configs and requests: validation, coercion from strings, errors."""

from __future__ import annotations

import dataclasses

import pytest

from aigc_engine import ConfigError, GeneratorConfig, SamplingParams, TextRequest
from aigc_engine.generator import ImageRequest


@dataclasses.dataclass(frozen=True)
class Example(GeneratorConfig):
    order: int = 3
    rate: float = 0.5
    mode: str = "word"
    flag: bool = False
    prune: tuple[int, ...] = ()
    limit: int | None = None

    def validate(self) -> None:
        if self.order < 1:
            raise ConfigError(f"order must be >= 1, got {self.order}")


def test_types_are_checked_and_ints_widen_to_float() -> None:
    cfg = Example(rate=1)
    assert cfg.rate == 1.0 and isinstance(cfg.rate, float)
    with pytest.raises(ConfigError, match=r"Example.order: expected int, got '3'"):
        Example(order="3")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Example.flag"):
        Example(flag=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="order must be >= 1, got 0"):
        Example(order=0)


def test_lists_become_tuples_and_round_trip_through_dicts() -> None:
    cfg = Example.from_mapping({"prune": [0, 1, 1]})
    assert cfg.prune == (0, 1, 1)
    assert cfg.to_dict()["prune"] == [0, 1, 1]
    assert Example.from_mapping(cfg.to_dict()) == cfg


def test_strings_are_coerced_for_the_command_line() -> None:
    cfg = Example.from_mapping({"order": "5", "rate": "0.25", "flag": "yes", "prune": "0,1,2",
                                "limit": "none"}, coerce=True)
    assert (cfg.order, cfg.rate, cfg.flag, cfg.prune, cfg.limit) == (5, 0.25, True, (0, 1, 2),
                                                                     None)
    assert Example.from_mapping({"limit": "7"}, coerce=True).limit == 7
    with pytest.raises(ConfigError, match="cannot read 'five' as int"):
        Example.from_mapping({"order": "five"}, coerce=True)


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown option.*'ordr'.*valid options: order, rate, "
                                          "mode, flag, prune, limit"):
        Example.from_mapping({"ordr": 3})


def test_replace_validates_again() -> None:
    assert Example().replace(order=4).order == 4
    with pytest.raises(ConfigError):
        Example().replace(order=-1)


@pytest.mark.parametrize("bad,match", [
    ({"temperature": -0.1}, "temperature must be finite and >= 0"),
    ({"top_p": 0.0}, "top_p must be > 0"),
    ({"min_p": 1.5}, "min_p must be <= 1"),
    ({"repetition_penalty": 0.0}, "repetition_penalty must be finite and > 0"),
    ({"temperature": float("nan")}, "temperature must be finite"),
    ({"top_k": 2**40}, "top_k must fit in int32"),
    ({"top_k": 2.5}, "top_k must be an integer"),
])
def test_bad_sampling_params_raise(bad: dict[str, float], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SamplingParams(**bad)  # type: ignore[arg-type]


def test_text_request_build_accepts_flat_sampling_options() -> None:
    req = TextRequest.build("To be", max_tokens=5, top_k=40, temperature=0.5, seed=3)
    assert req.prompt == "To be" and req.max_tokens == 5 and req.seed == 3
    assert req.sampling == SamplingParams(temperature=0.5, top_k=40)
    assert TextRequest.build(req, top_p=0.9).sampling.top_k == 40
    with pytest.raises(ConfigError, match="unknown request option.*'topk'"):
        TextRequest.build(topk=3)


@pytest.mark.parametrize("bad,match", [
    ({"max_tokens": 0}, "max_tokens must be a positive integer"),
    ({"n": -1}, "n must be a positive integer"),
    ({"seed": -5}, "seed must be in"),
    ({"seed": 1.5}, "seed must be an integer"),
])
def test_bad_text_requests_raise(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TextRequest(**bad)  # type: ignore[arg-type]


def test_image_request_checks_labels_and_n() -> None:
    assert ImageRequest(n=2, labels=[1, 2]).labels == (1, 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="labels has 1 entries for n=2"):
        ImageRequest(n=2, labels=(1,))
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        ImageRequest(n=0)


def test_a_missing_seed_is_drawn_and_recorded() -> None:
    req = TextRequest().with_seed()
    assert isinstance(req.seed, int) and 0 <= req.seed < 2**63
    assert req.with_seed() is req


def test_prompt_may_be_given_by_keyword() -> None:
    assert TextRequest.build(prompt="hi", n=2).prompt == "hi"
    base = TextRequest(prompt="a")
    assert TextRequest.build(base, prompt="b").prompt == "b"


def test_unknown_image_request_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown request option.*'size'.*valid: labels, n, seed"):
        ImageRequest.build(ImageRequest(n=2), size=3)


@pytest.mark.parametrize("text", ["[0.5, 1.0, 1.5]", "(0.5,1,1.5)", "0.5,1,1.5", "0.5 1 1.5",
                                  " [0.5,1.0,1.5] "])
def test_tuples_from_the_command_line_may_be_bracketed(text: str) -> None:
    from aigc_engine.plugins.ngram.generator import NgramConfig

    config = NgramConfig.from_mapping({"discount_fallback": text}, coerce=True)
    assert config.discount_fallback == (0.5, 1.0, 1.5)


@pytest.mark.parametrize("bad,match", [
    ({"prompt": "caf\udce9"}, r"prompt is not valid text: character 3 is '\\udce9', a lone "
                              "surrogate"),
    ({"max_tokens": 2**31}, r"max_tokens must be at most 2\*\*31 - 1, got 2147483648"),
    ({"max_tokens": 10**20}, r"max_tokens must be at most 2\*\*31 - 1"),
    ({"max_tokens": 10**5000}, r"max_tokens must be at most 2\*\*31 - 1, got an integer of 5001 "
                               "or so digits"),
    ({"seed": -(10**5000)}, r"seed must be in \[0, 2\*\*63 - 1\], got an integer of 5001 or so"),
])
def test_text_requests_the_core_cannot_take_are_config_errors(bad: dict[str, object],
                                                             match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TextRequest.build(**bad)  # type: ignore[arg-type]
