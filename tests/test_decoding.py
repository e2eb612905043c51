"""The engine's decoding loop: batching, keys, stop rules, logprobs, usage, streams."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from aigc_engine import ConfigError, TextDone, TextEvent, TextRequest
from aigc_engine.decoding import DecodeBatch, TokenModel, TokenTextGenerator, decode
from aigc_engine.generator import SamplingParams
from aigc_engine.plugin_api import GeneratorConfig, Manifest, hookimpl
from aigc_engine.sampling import apply_penalties, filter_probs, sample
from aigc_engine.testing import isolated_engine
from aigc_engine.tokenizers import ByteTokenizer, CharTokenizer, Tokenizer


class Scripted(TokenModel):
    """Puts all the mass on ``script[position]`` (then on end-of-text)."""

    def __init__(self, tokenizer: Tokenizer, script: Sequence[int]) -> None:
        self._tok = tokenizer
        self.script = list(script)
        self.steps = 0

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def _rows(self, pos: list[int]) -> np.ndarray:
        rows = np.full((len(pos), self._tok.vocab_size), -20.0, dtype=np.float32)
        for r, p in enumerate(pos):
            target = self.script[p] if p < len(self.script) else self._tok.eos_id
            rows[r, target] = 20.0
        return rows

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        pos = [0] * len(prompts)
        return self._rows(pos), pos

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        self.steps += 1
        pos = [p + 1 for p in state]
        return self._rows(pos), pos

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return [state[int(i)] for i in rows]

    def concat(self, states: Sequence[Any]) -> Any:
        return [p for s in states for p in s]


class Random(TokenModel):
    """Logits that are a fixed random function of (last token, position)."""

    def __init__(self, vocab: int = 65) -> None:
        self._tok = CharTokenizer([chr(ord("0") + i) for i in range(vocab - 1)])
        assert self._tok.vocab_size == vocab

    @property
    def tokenizer(self) -> Tokenizer:
        return self._tok

    def row(self, last: int, pos: int) -> np.ndarray:
        rng = np.random.default_rng(1000 * last + pos)
        return (rng.standard_normal(self._tok.vocab_size) * 2).astype(np.float32)

    def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        state = [((p[-1] if p else 0), 0) for p in prompts]
        return np.stack([self.row(*s) for s in state]), state

    def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
        state = [(int(t), pos + 1) for t, (_, pos) in zip(tokens, state, strict=True)]
        return np.stack([self.row(*s) for s in state]), state

    def select(self, state: Any, rows: np.ndarray) -> Any:
        return [state[int(i)] for i in rows]

    def concat(self, states: Sequence[Any]) -> Any:
        return [x for s in states for x in s]


def req(**options: Any) -> TextRequest:
    return TextRequest.build(**{"seed": 3, **options})


def collect(model: TokenModel, request: TextRequest) -> tuple[list[str], Any]:
    from aigc_engine.decoding import decode_events

    texts = [""] * request.n
    result = None
    for item in decode_events(model, request):
        if isinstance(item, TextDone):
            result = item.result
        else:
            texts[item.index] += item.text
    return texts, result


def test_stop_string_across_tokens_stops_there_and_is_excluded() -> None:
    tok = CharTokenizer("helo wrd")
    model = Scripted(tok, tok.encode("hello world"))
    r = decode(model, req(temperature=0, stop=["o w"], max_tokens=50))
    c = r.choices[0]
    assert r.text == "hell" and c.finish_reason == "stop"
    assert c.token_ids == tok.encode("hello w")  # the token that completed the stop is drawn
    assert r.usage.completion_tokens == 7
    texts, streamed = collect(model, req(temperature=0, stop=["o w"], max_tokens=50))
    assert texts == ["hell"] and streamed.texts == ["hell"]
    # The earliest of several stop strings wins, a stop never matched changes nothing,
    # and a stop string inside one token works too.
    assert decode(model, req(temperature=0, stop=["rld", "lo"])).text == "hel"
    assert decode(model, req(temperature=0, stop=["xyz"])).text == "hello world"
    words = CharTokenizer("ab")
    assert decode(Scripted(words, [0, 1, 0, 1]), req(temperature=0, stop=["b"])).text == "a"


def test_stop_strings_are_held_back_while_streaming() -> None:
    tok = CharTokenizer("abcd")
    model = Scripted(tok, tok.encode("abcabd"))
    from aigc_engine.decoding import decode_events

    events = [e for e in decode_events(model, req(temperature=0, stop=["abd"]))
              if isinstance(e, TextEvent)]
    # "a" and "ab" could start "abd": they are released once "c" rules that out.
    assert [e.text for e in events] == ["", "", "abc", "", "", ""]
    assert events[-1].finish_reason == "stop" and "".join(e.text for e in events) == "abc"


def test_n_samples_stream_to_the_generated_texts_and_sample_0_is_n_1() -> None:
    model = Random()
    request = req(n=4, max_tokens=30, top_k=20, top_p=0.9, repetition_penalty=1.3)
    generated = decode(model, request)
    texts, streamed = collect(model, request)
    assert texts == generated.texts == streamed.texts
    assert [c.token_ids for c in streamed.choices] == [c.token_ids for c in generated.choices]
    one = decode(model, dataclasses.replace(request, n=1))
    assert one.texts[0] == generated.texts[0]
    assert len(set(generated.texts)) == 4  # the streams differ


def test_a_sequence_does_not_depend_on_its_batch() -> None:
    model = Random()
    a = req(n=2, max_tokens=12, seed=5)
    b = req(n=3, max_tokens=25, seed=9, temperature=0.5)
    batch = DecodeBatch(model)
    sa = batch.add(a)
    batch.step()
    sb = batch.add(b)  # joins a running batch
    while not batch.done:
        batch.step()
    assert [s.completion().text for s in sa] == decode(model, a).texts
    assert [s.completion().text for s in sb] == decode(model, b).texts


def test_finish_reasons_and_usage() -> None:
    tok = CharTokenizer("abc")
    model = Scripted(tok, tok.encode("abcab"))
    r = decode(model, req(temperature=0, max_tokens=3, n=2, prompt="ca"))
    assert r.texts == ["abc", "abc"] and [c.finish_reason for c in r.choices] == ["length"] * 2
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (2, 6, 8)
    r = decode(model, req(temperature=0, max_tokens=10))
    # Five tokens, then end-of-text: counted as generated, not part of the text or ids.
    assert r.text == "abcab" and r.choices[0].finish_reason == "stop"
    assert r.choices[0].token_ids == tok.encode("abcab") and r.usage.completion_tokens == 6
    assert decode(model, req(temperature=0, max_tokens=5)).choices[0].finish_reason == "length"
    r = decode(model, req(temperature=0, max_tokens=10, stop_token_ids=[2]))
    assert r.text == "ab" and r.choices[0].token_ids == [0, 1] and r.usage.completion_tokens == 3
    r = decode(model, req(temperature=0, max_tokens=10, stop_at_eos=False))
    assert r.text == "abcab" and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 10
    r = decode(model, req(temperature=0, max_tokens=4, echo=True, prompt="c"))
    assert r.text == "cabca"


def test_min_tokens_bans_end_of_text_and_stop_tokens() -> None:
    tok = CharTokenizer("ab")
    model = Scripted(tok, [])  # end-of-text at once
    assert decode(model, req(temperature=0)).text == ""
    r = decode(model, req(temperature=0, min_tokens=3, max_tokens=10))
    assert len(r.choices[0].token_ids) == 3 and r.choices[0].finish_reason == "stop"
    model = Scripted(tok, [1, 1, 1, 0])
    r = decode(model, req(temperature=0, min_tokens=2, stop_token_ids=[1], max_tokens=10))
    assert r.choices[0].token_ids[:2] != [1, 1] and len(r.choices[0].token_ids) >= 2
    with pytest.raises(ConfigError, match=r"min_tokens must be an integer in \[0, max_tokens=5\]"):
        req(min_tokens=6, max_tokens=5)


def test_logprobs_are_those_of_the_distribution_drawn_from() -> None:
    model = Random()
    params = SamplingParams(temperature=0.8, top_k=30, top_p=0.95, repetition_penalty=1.2,
                            frequency_penalty=0.3)
    request = TextRequest(max_tokens=40, sampling=params, seed=11, logprobs=5, n=2)
    r = decode(model, request)
    plain = dataclasses.replace(params, repetition_penalty=1.0, frequency_penalty=0.0)
    for c in r.choices:
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        last, history = 0, []
        for pos, (token, lp) in enumerate(zip(c.token_ids, c.logprobs, strict=True)):
            row = apply_penalties(model.row(last, pos), params, history=history)
            probs = filter_probs(row, plain)
            assert lp.token_id == token
            assert lp.logprob == pytest.approx(np.log(probs[token]), abs=1e-5)
            kept = np.flatnonzero(probs > 0)
            best = sorted(kept, key=lambda i: (-probs[i], i))[:5]
            assert [i for i, _ in lp.top] == best
            assert [v for _, v in lp.top] == pytest.approx(np.log(probs[best]), abs=1e-5)
            # The draw itself is the sampler's, with the history as penalties.
            assert sample(model.row(last, pos), params, seed=11, stream=c.index, step=pos,
                          history=history) == token
            last, history = token, history + [token]
    greedy = decode(model, TextRequest(max_tokens=3, sampling=SamplingParams(temperature=0),
                                       seed=1, logprobs=2))
    assert [lp.logprob for lp in greedy.choices[0].logprobs or []] == [0.0, 0.0, 0.0]


def test_penalties_count_the_completion_incrementally() -> None:
    model = Random(vocab=8)
    request = req(max_tokens=400, repetition_penalty=2.0, presence_penalty=0.5,
                  frequency_penalty=0.2)
    r = decode(model, request)
    ids = r.choices[0].token_ids
    last, history = 0, []
    for pos, token in enumerate(ids):
        assert sample(model.row(last, pos), request.sampling, seed=3, step=pos,
                      history=history) == token, pos
        last, history = token, history + [token]


def test_byte_tokens_stream_whole_characters() -> None:
    tok = ByteTokenizer()
    text = "naïve 世界 🎉!"
    model = Scripted(tok, list(text.encode()))
    texts, result = collect(model, req(temperature=0, max_tokens=100))
    assert texts == [text] and result.text == text
    from aigc_engine.decoding import decode_events

    pieces = [e.text for e in decode_events(model, req(temperature=0)) if isinstance(e, TextEvent)]
    assert "🎉" in pieces and "世" in pieces and all("\ufffd" not in p for p in pieces)
    # Cut inside a character by max_tokens: the bytes that never completed are U+FFFD,
    # in the stream and in the text alike.
    texts, result = collect(model, req(temperature=0, max_tokens=8))
    assert texts == result.texts == ["naïve \ufffd"]


def test_bad_requests_are_clear_errors() -> None:
    model = Random()
    with pytest.raises(ConfigError, match="stop_token_ids .*outside the vocabulary of 65"):
        decode(model, req(stop_token_ids=[65]))
    with pytest.raises(ConfigError, match="stop must be a string or a list of non-empty"):
        req(stop=[""])
    with pytest.raises(ConfigError, match=r"logprobs must be None or an integer in \[0, 20\]"):
        req(logprobs=21)
    with pytest.raises(ConfigError, match="unknown request option"):
        req(stop_words=["x"])
    assert req(stop="x").stop == ("x",)


# -- through a generator and the engine's hooks ---------------------------------------------
@dataclasses.dataclass(frozen=True)
class RandomConfig(GeneratorConfig):
    vocab: int = 65


class RandomGenerator(TokenTextGenerator):
    name = "random-lm"
    config_class = RandomConfig

    def token_model(self) -> TokenModel:
        return Random(self.config_as(RandomConfig).vocab)

    def _save_payload(self, directory: Any) -> None:
        pass

    def _load_payload(self, directory: Any, manifest: Manifest) -> None:
        pass


class RandomPlugin:
    @hookimpl
    def aigc_register_generators(self, register: Any) -> None:
        from aigc_engine.plugin_api import GeneratorSpec

        register(GeneratorSpec("random-lm", "text", RandomGenerator, description="test model"))


class Shout:
    """A stream filter that upper-cases every piece and holds back the digit 7."""

    @hookimpl
    def aigc_process_stream(self, request: Any, events: Iterator[Any]) -> Iterator[Any]:
        for e in events:
            if isinstance(e, TextEvent):
                yield dataclasses.replace(e, text=e.text.replace("7", "").upper())
            else:
                yield e


def test_the_contract_of_a_token_generator() -> None:
    from aigc_engine.testing import check_generator

    engine = isolated_engine({"random": RandomPlugin()})
    check_generator(engine, "random-lm", request={"max_tokens": 20, "top_k": 10})


def test_stream_filters_see_and_rewrite_pieces_and_generate_agrees() -> None:
    engine = isolated_engine({"random": RandomPlugin(), "shout": Shout()})
    gen = engine.create("random-lm")
    plain = RandomGenerator().generate(seed=4, n=3, max_tokens=40).texts
    expected = [t.replace("7", "").upper() for t in plain]
    assert gen.generate(seed=4, n=3, max_tokens=40).texts == expected
    pieces = [""] * 3
    done = None
    for item in gen.stream(seed=4, n=3, max_tokens=40):
        if isinstance(item, TextDone):
            done = item.result
        else:
            pieces[item.index] += item.text
    assert pieces == expected and done is not None and done.texts == expected


class Tag:
    """A result processor (wrapper) that tags texts and turns inner errors into a tag."""

    @hookimpl(wrapper=True)
    def aigc_process_result(self, request: Any, result: Any) -> Any:
        try:
            inner = yield
        except RuntimeError as exc:
            return result.replace_texts([f"[error: {exc}]"] * len(result.texts))
        return inner.replace_texts([t + " #" for t in inner.texts])


class Fails:
    @hookimpl
    def aigc_process_result(self, request: Any, result: Any) -> Any:
        raise RuntimeError("inner failed")


def test_result_processors_apply_to_streams_and_wrappers_get_errors() -> None:
    engine = isolated_engine({"random": RandomPlugin(), "tag": Tag()})
    gen = engine.create("random-lm")
    plain = RandomGenerator().generate(seed=1, n=2, max_tokens=10).texts
    events = list(gen.stream(seed=1, n=2, max_tokens=10))
    assert [e.text for e in events if isinstance(e, TextEvent)] == [t + " #" for t in plain]
    assert isinstance(events[-1], TextDone) and events[-1].result.texts == [t + " #" for t in plain]
    engine = isolated_engine({"random": RandomPlugin(), "tag": Tag(), "fails": Fails()})
    out = engine.create("random-lm").generate(seed=1, max_tokens=5)
    # The inner failure reaches the wrapper at its yield (pluggy's wrapper contract).
    assert out.texts == ["[error: plugin 'fails' failed in aigc_process_result: "
                         "RuntimeError: inner failed]"]


def test_torch_cpu_logits_are_sampled_like_numpy_ones() -> None:
    torch = pytest.importorskip("torch")

    class TorchRandom(Random):
        def prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[Any, Any]:
            rows, state = super().prefill(prompts)
            return torch.from_numpy(rows).to(torch.float64), state  # any float dtype

        def step(self, tokens: np.ndarray, state: Any) -> tuple[Any, Any]:
            rows, state = super().step(tokens, state)
            return torch.from_numpy(rows), state

    request = req(n=3, max_tokens=25, top_p=0.8, presence_penalty=0.7, logprobs=1)
    assert decode(TorchRandom(), request).texts == decode(Random(), request).texts
