"""Benchmark: `aigc serve` under load (loopback only, bounded).

Starts the real server (``python -m aigc_engine serve``) on a free 127.0.0.1
port with an n-gram bundle (order 5 on gutenberg.txt by default, or
``--corpus ts_train.txt`` for a quick run; ``--transformer`` exports a 10 M-parameter
GPT shape instead (6 layers, 6 heads, 384 dims, context 256, the 65 characters of
tiny shakespeare, random weights: speed does not depend on them) and serves it
through the torch-free runtime; ``--bundle PATH`` serves any bundle), then for 1, 4, 16 and 64
concurrent streaming clients sends ``--requests`` requests per client and
reports aggregate tokens/s, time to first token p50/p99 and inter-token
latency p50/p99 (between streamed pieces of one sample).

Also: the server's own overhead for a one-token completion, HTTP + JSON +
scheduling, against a direct Python call of the same generator (medians over
``--overhead`` sequential requests on one keep-alive connection).

    python benchmarks/serve_load.py [--corpus gutenberg.txt] [--order 5] [--max-tokens 128]
    python benchmarks/serve_load.py --transformer [--requests 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def one_client(http: httpx.AsyncClient, model: str, requests: int, max_tokens: int,
                     seed: int, stats: dict[str, list[float]]) -> int:
    tokens = 0
    for r in range(requests):
        body = {"model": model, "prompt": "the king", "max_tokens": max_tokens, "stream": True,
                "seed": seed * 1000 + r, "ignore_eos": True, "top_k": 40,
                "stream_options": {"include_usage": True}}
        start = time.perf_counter()
        last = None
        async with http.stream("POST", "/v1/completions", json=body) as resp:
            resp.raise_for_status()
            async for line in resp.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                now = time.perf_counter()
                if chunk.get("usage"):
                    tokens += chunk["usage"]["completion_tokens"]
                    continue
                if any(c["text"] for c in chunk["choices"]):
                    if last is None:
                        stats["ttft"].append(now - start)
                    else:
                        stats["itl"].append(now - last)
                    last = now
    return tokens


async def load(url: str, model: str, clients: int, requests: int, max_tokens: int) -> None:
    stats: dict[str, list[float]] = {"ttft": [], "itl": []}
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        start = time.perf_counter()
        counts = await asyncio.gather(*[one_client(http, model, requests, max_tokens, c, stats)
                                        for c in range(clients)])
        took = time.perf_counter() - start
    total = sum(counts)
    print(f"{clients:>7} | {total / took:>12,.0f} | {pct(stats['ttft'], .5) * 1e3:>8.1f} "
          f"{pct(stats['ttft'], .99) * 1e3:>8.1f} | {pct(stats['itl'], .5) * 1e3:>8.2f} "
          f"{pct(stats['itl'], .99) * 1e3:>8.2f}", flush=True)


class RawClient:
    """HTTP/1.1 over one keep-alive socket, request bytes built beforehand: what a
    request costs the server, with as little of the client's own work as possible."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, path: str, body: bytes) -> bytes:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                f"\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.sock.sendall(head + body)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        header, _, rest = self.buf.partition(b"\r\n\r\n")
        if not header.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(header.decode(errors="replace"))
        length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(rest) < length:
            rest += self.sock.recv(65536)
        self.buf = rest[length:]
        return rest[:length]

    def close(self) -> None:
        self.sock.close()


def overhead(port: int, model: str, bundle: Path, rounds: int) -> None:
    from aigc_engine import Engine

    gen: Any = Engine().load(bundle)
    client = RawClient(port)
    bodies = [json.dumps({"model": model, "prompt": "the king", "max_tokens": 1,
                          "seed": i}).encode() for i in range(rounds)]
    direct, served = [], []
    try:
        for i in range(rounds):  # alternated, so load changes hit both alike
            t0 = time.perf_counter()
            gen.generate("the king", max_tokens=1, seed=i)
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            out = client.post("/v1/completions", bodies[i])
            served.append(time.perf_counter() - t0)
            assert json.loads(out)["usage"]["completion_tokens"] == 1
    finally:
        client.close()
    d, s = statistics.median(direct), statistics.median(served)
    print(f"\none-token completion: direct call {d * 1e3:.3f} ms, through the server "
          f"{s * 1e3:.3f} ms: overhead {(s - d) * 1e3:.3f} ms per request (median over "
          f"{rounds}; target <= 2 ms); fastest: {min(direct) * 1e3:.3f} vs "
          f"{min(served) * 1e3:.3f} ms, {(min(served) - min(direct)) * 1e3:.3f} ms "
          "(client: a keep-alive socket sending prepared bytes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default="gutenberg.txt")
    ap.add_argument("--order", type=int, default=5)
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--transformer", action="store_true",
                    help="serve an exported 10 M-parameter GPT shape (needs torch to export)")
    ap.add_argument("--clients", default="1,4,16,64")
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--overhead", type=int, default=300)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle
        if bundle is None and args.transformer:
            from text_runtime import gpt as gpt10m  # the speed benchmarks' 10 M shape

            from aigc_engine.tokenizers import CharTokenizer

            gpt = gpt10m(CharTokenizer.from_text([(DATA / "tinyshakespeare.txt").read_text()]))
            bundle = gpt.export(Path(tmp) / "gpt", format="onnx")
            print("serving an exported 6x384 GPT (context 256, 65 characters), onnxruntime "
                  "1 thread")
        elif bundle is None:
            from aigc_engine.plugins.ngram.generator import NgramGenerator

            t0 = time.perf_counter()
            gen = NgramGenerator(order=args.order)
            gen.fit(str(DATA / args.corpus))
            bundle = gen.save(Path(tmp) / "lm")
            print(f"order-{args.order} n-gram on {args.corpus} in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "aigc_engine", "serve", str(bundle), "--name", "m",
             "--port", str(port), "--slots", "64", "--queue", "256", "--log-level", "warning"])
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            # Warm-up: the first top-k request builds the model's index.
            httpx.post(url + "/v1/completions", json={"model": "m", "prompt": "the",
                                                      "max_tokens": 4, "top_k": 40},
                       timeout=300).raise_for_status()
            print(f"\n{args.requests} streamed requests of {args.max_tokens} tokens per client\n"
                  f"clients | tokens/s agg | ttft p50      p99 (ms) | itl p50      p99 (ms)")
            for c in [int(x) for x in args.clients.split(",")]:
                asyncio.run(load(url, "m", c, args.requests, args.max_tokens))
            overhead(port, "m", bundle, args.overhead)
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
