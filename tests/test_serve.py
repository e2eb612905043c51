"""`aigc serve`: the real server (uvicorn on a free 127.0.0.1 port), the official
openai client, httpx for the error cases, and headless Chromium for the page."""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
uvicorn = pytest.importorskip("uvicorn")

from aigc_engine.plugins.ngram.generator import NgramGenerator  # noqa: E402
from aigc_engine.serve import create_app  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SMALL = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog",
         "the mat is red", "a log is brown", "the cat saw the dog"]
KEY = "sesame"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """uvicorn in a thread, stopped at the end."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the server did not become healthy")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    lm = NgramGenerator(order=3, discount_fallback=(0.5, 1.0, 1.5))
    lm.fit(SMALL * 3)
    out = {"small": lm.save(root / "small")}
    if (DATA / "ts_train.txt").is_file():
        ts = NgramGenerator(order=3)
        ts.fit(str(DATA / "ts_train.txt"))
        out["ts3"] = ts.save(root / "ts3")
    from aigc_engine import Engine

    engine = Engine(plugins=["template", "datasets"])
    story = engine.create("template")
    story.fit("example-grammar")
    out["story"] = story.save(root / "story")
    try:
        import torch  # noqa: F401

        gan = Engine(plugins=["gan"]).create("gan", steps=5, seed=1, g_width=8, d_width=8,
                                             latent_dim=8, batch_size=16, log_every=0)
        gan.fit("digits")
        out["digits"] = gan.export_onnx(root / "digits-onnx")
        gpt = Engine(plugins=["transformer", "datasets"]).create(
            "transformer", n_layer=2, n_head=2, n_embd=32, context=32, threads=1, batch_size=8,
            warmup_steps=5, log_every=0, max_steps=30, lr=3e-3)
        gpt.fit(SMALL * 4)
        out["gpt-onnx"] = gpt.export(root / "gpt-onnx", format="onnx")
    except ImportError:
        pass
    return out


@pytest.fixture(scope="module")
def server(bundles: dict[str, Path]) -> Iterator[Server]:
    srv = Server(create_app(bundles, slots=32, queue_size=256))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_models_and_health(server: Server, client: Any, bundles: dict[str, Path]) -> None:
    ids = sorted(m.id for m in client.models.list().data)
    assert ids == sorted(bundles)
    assert httpx.get(server.url + "/health").json()["status"] == "ok"


def test_completions_match_the_engine(client: Any, bundles: dict[str, Path]) -> None:
    gen = NgramGenerator.load(bundles["small"])
    r = client.completions.create(model="small", prompt="the", max_tokens=12, seed=4, n=3,
                                  extra_body={"top_k": 5})
    expected = gen.generate("the", max_tokens=12, seed=4, n=3, top_k=5)
    assert [c.text for c in r.choices] == expected.texts
    assert [c.finish_reason for c in r.choices] == [c.finish_reason for c in expected.choices]
    assert r.usage.prompt_tokens == 1
    assert r.usage.completion_tokens == expected.usage.completion_tokens
    # A list of prompts: n choices each, indexed prompt by prompt.
    r = client.completions.create(model="small", prompt=["the", "a"], max_tokens=5, seed=1,
                                  n=2, echo=True, logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text.startswith("the") and r.choices[2].text.startswith("a")
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) >= 1


def test_streaming_completions_join_to_the_same_text(client: Any) -> None:
    kwargs = {"model": "small", "prompt": "the cat", "max_tokens": 30, "seed": 8, "n": 2,
              "stop": ["log"], "extra_body": {"ignore_eos": True}}
    whole = client.completions.create(**kwargs)
    parts = ["", ""]
    finish = [None, None]
    usage = None
    for chunk in client.completions.create(stream=True, stream_options={"include_usage": True},
                                           **kwargs):
        for c in chunk.choices:
            parts[c.index] += c.text
            finish[c.index] = c.finish_reason or finish[c.index]
        usage = chunk.usage or usage
    assert parts == [c.text for c in whole.choices]
    assert finish == [c.finish_reason for c in whole.choices]
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_chat_uses_the_documented_template(client: Any, bundles: dict[str, Path]) -> None:
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the cat"}]
    r = client.chat.completions.create(model="small", messages=msgs, max_tokens=10, seed=2,
                                       logprobs=True, top_logprobs=2)
    gen = NgramGenerator.load(bundles["small"])
    prompt = "System: be brief\nUser: the cat\nAssistant:"
    expected = gen.generate(prompt, max_tokens=10, seed=2, stop=["\nUser:"]).text
    assert r.choices[0].message.content == expected.removeprefix(" ")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content
    pieces = []
    for chunk in client.chat.completions.create(model="small", messages=msgs, max_tokens=10,
                                                seed=2, stream=True):
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
    assert "".join(pieces) == r.choices[0].message.content


def test_whole_text_models_and_images(client: Any, bundles: dict[str, Path]) -> None:
    r = client.completions.create(model="story", prompt="", seed=3, n=2)
    assert len(r.choices) == 2 and all(c.text for c in r.choices)
    if "digits" not in bundles:
        pytest.skip("torch is not installed: no GAN bundle to serve")
    from PIL import Image

    img = client.images.generate(model="digits", prompt="", n=3, response_format="b64_json",
                                 extra_body={"seed": 5})
    assert len(img.data) == 3
    pic = Image.open(io.BytesIO(base64.b64decode(img.data[0].b64_json)))
    assert pic.size == (8, 8)
    again = client.images.generate(model="digits", prompt="", n=3, response_format="b64_json",
                                   extra_body={"seed": 5})
    assert [d.b64_json for d in again.data] == [d.b64_json for d in img.data]


@pytest.mark.parametrize("model", ["ts3", "gpt-onnx"])
def test_concurrent_seeded_requests_equal_one_at_a_time(client: Any, bundles: dict[str, Path],
                                                        model: str) -> None:
    if model not in bundles:
        pytest.skip(f"no {model} bundle (shared data or torch missing)")
    prompts = ["the king", "my lord", "to be", "", "what"] if model == "ts3" else \
        ["the cat", "a dog", "the mat is", "", "log"]  # the char model's alphabet
    reqs = [{"model": model, "prompt": p, "max_tokens": 40, "seed": s, "n": 1 + s % 2,
             "temperature": 0.9, "extra_body": {"top_k": 40, "ignore_eos": s % 3 == 0}}
            for s, p in enumerate(prompts * 4)][:16]
    alone = [[c.text for c in client.completions.create(**r).choices] for r in reqs]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(
            lambda r: [c.text for c in client.completions.create(**r).choices], reqs))
    assert together == alone


def post(server: Server, path: str, body: Any, **kw: Any) -> Any:
    return httpx.post(server.url + path, json=body, timeout=30, **kw)


def assert_error(resp: Any, status: int, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert err["param"] == param, err
    return dict(err)


def test_error_cases(server: Server) -> None:
    assert_error(post(server, "/v1/completions", {"model": "nope", "prompt": "x"}), 404, "model")
    assert_error(post(server, "/v1/completions", {"model": "small", "max_tokens": -1}), 400,
                 "max_tokens")
    assert_error(post(server, "/v1/completions", {"model": "small", "temperature": "hot"}), 400,
                 "temperature")
    assert_error(post(server, "/v1/completions", {"model": "small", "n": 10**9}), 400, "n")
    assert_error(post(server, "/v1/completions", {"model": "small", "frobnicate": 1}), 400,
                 "frobnicate")
    assert_error(post(server, "/v1/completions", {"model": "small", "stop_token_ids": [10**6]}),
                 400)
    assert_error(post(server, "/v1/chat/completions", {"model": "small", "messages": []}), 400,
                 "messages")
    assert_error(post(server, "/v1/images/generations", {"model": "small"}), 400, "model")
    big = {"model": "small", "prompt": "x" * (2 << 20)}
    assert_error(post(server, "/v1/completions", big), 413)
    bad = httpx.post(server.url + "/v1/completions", content=b'{"prompt": "\xff"}', timeout=30)
    assert_error(bad, 400)
    nan = httpx.post(server.url + "/v1/completions", content=b'{"temperature": NaN}', timeout=30)
    assert_error(nan, 400)


def test_api_key_and_queue_limits(bundles: dict[str, Path]) -> None:
    from aigc_engine.serve import Limits

    srv = Server(create_app({"small": bundles["small"]}, api_key=KEY, slots=1, queue_size=1,
                            limits=Limits(max_tokens=400_000)))
    try:
        body = {"model": "small", "prompt": "the", "max_tokens": 4, "seed": 1}
        assert_error(post(srv, "/v1/completions", body), 401)
        assert_error(post(srv, "/v1/completions", body,
                          headers={"Authorization": "Bearer wrong"}), 401)
        auth = {"Authorization": f"Bearer {KEY}"}
        assert post(srv, "/v1/completions", body, headers=auth).status_code == 200
        # One slot and a queue of one: of many long requests at once, some get 429.
        # Long enough (about a second each) that the slot and the queue are taken.
        long = {**body, "max_tokens": 400_000, "ignore_eos": True}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(srv, "/v1/completions", long, headers=auth),
                                    range(8)))
        codes = sorted(a.status_code for a in answers)
        assert 429 in codes and 200 in codes and set(codes) <= {200, 429}
        limited = next(a for a in answers if a.status_code == 429)
        assert limited.headers["retry-after"] == "1"
        assert_error(limited, 429)
    finally:
        srv.stop()


def malformed(rng: random.Random) -> tuple[str, bytes]:
    """One randomised bad request: (path, raw body)."""
    path = rng.choice(["/v1/completions", "/v1/chat/completions", "/v1/images/generations"])
    junk: list[Any] = [None, True, -1, 0, 2**70, -(2**70), 1e308, -1e308, "x", "", [], {}, [1],
                       {"a": 1}, "\ud800", 3.5, "NaN"]
    fields = ["prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
              "logprobs", "echo", "presence_penalty", "frequency_penalty", "top_k", "min_p",
              "repetition_penalty", "messages", "model", "min_tokens", "stop_token_ids",
              "response_format", "stream_options", "top_logprobs", "bogus_field"]
    kind = rng.randrange(6)
    if kind == 0:  # not JSON / not UTF-8 / truncated
        raw = rng.choice([b"{", b"not json", b'{"prompt": "\xc3\x28"}', b"[1, 2", b"\x00\xff",
                          b'{"a": 1e999999}', b'{"max_tokens": Infinity}'])
        return path, raw
    if kind == 1:  # nested too deep
        return path, b"[" * 100_000 + b"]" * 100_000
    body: dict[str, Any] = {"model": rng.choice(["small", "nope", 5, None])}
    for _ in range(rng.randint(1, 4)):
        value = rng.choice(junk)
        if value == "\ud800":
            return path, json.dumps({rng.choice(fields): value}).encode()
        body[rng.choice(fields)] = value
    if kind == 2:  # absurd sizes
        body.update({"n": rng.choice([0, 10**6, -3]), "max_tokens": rng.choice([0, 10**12])})
    if kind == 3:  # a valid-looking body with one bad field
        body = {"model": "small", "prompt": "the", rng.choice(fields): rng.choice(junk)}
        if all(not isinstance(v, bool) and v not in (None,) for v in body.values()) and \
                rng.random() < 0.5:
            body["max_tokens"] = -5
    return path, json.dumps(body, allow_nan=True).encode()


def test_a_thousand_malformed_requests_are_all_4xx(server: Server) -> None:
    rng = random.Random(1234)
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for _ in range(1000):
            path, raw = malformed(rng)
            resp = http.post(path, content=raw, headers={"Content-Type": "application/json"})
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
            if resp.status_code == 200:
                continue  # some random bodies are valid requests
            assert 400 <= resp.status_code < 500, (path, raw[:200], resp.text)
            assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    # Cut-off connections: a body shorter than its Content-Length, then a close.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 500\r\n\r\n{\"prompt\": \"th")
    assert sum(v for k, v in statuses.items() if 400 <= k < 500) >= 900, statuses
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    ok = post(server, "/v1/completions", {"model": "small", "prompt": "the", "seed": 1})
    assert ok.status_code == 200


def test_metrics_count_requests_and_tokens(server: Server) -> None:
    post(server, "/v1/completions", {"model": "small", "prompt": "the", "max_tokens": 5,
                                     "seed": 3})
    text = httpx.get(server.url + "/metrics").text
    assert 'aigc_requests_total{endpoint="/v1/completions",status="200"}' in text
    assert 'aigc_tokens_generated_total{model="small"}' in text
    assert "aigc_time_to_first_token_seconds_bucket" in text
    assert 'aigc_queue_depth{model="small"}' in text


def test_sigterm_drains_in_flight_requests(bundles: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGC_")}
    env["AIGC_PLUGINS"] = "ngram,datasets"
    proc = subprocess.Popen([sys.executable, "-m", "aigc_engine", "serve", str(bundles["small"]),
                             "--port", str(port), "--log-level", "warning",
                             "--max-tokens-limit", "4000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the server did not become healthy"
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        # Megabytes more text than loopback buffers hold: the server is still sending
        # (in flight) while the client waits, whatever the machine's speed.
        body = {"model": "small", "prompt": "the", "max_tokens": 4000000, "stream": True,
                "seed": 1, "ignore_eos": True}
        received = []
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=60) as resp:
            lines = resp.iter_lines()
            received.append(next(lines))
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            refused = httpx.post(url + "/v1/completions", json={"model": "small"}, timeout=10)
            assert_error(refused, 503)
            assert httpx.get(url + "/health").status_code == 503
            received.extend(lines)
        # The stream in flight ran to its end, then the server exited cleanly.
        assert "data: [DONE]" in received
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_playground_streams_in_headless_chromium(server: Server) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_function("document.querySelectorAll('#model option').length > 0")
            page.select_option("#model", "small")
            page.fill("#prompt", "the cat")
            page.fill("#seed", "7")
            page.fill("#max_tokens", "20")
            page.click("#go")
            page.wait_for_function(
                "document.getElementById('generated') && "
                "document.getElementById('generated').textContent.length > 0", timeout=30000)
            page.wait_for_function("!document.getElementById('go').disabled", timeout=30000)
            shown = page.text_content("#generated")
            expected = NgramGenerator.load(server_bundle(server)).generate(
                "the cat", seed=7, max_tokens=20, top_k=40).text
            assert shown == expected
        finally:
            browser.close()


def server_bundle(server: Server) -> Path:
    state = server.server.config.app.state.aigc
    return Path(state.sources["small"])
