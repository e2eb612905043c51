"""Prometheus metrics of one app (its own registry, so apps never share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Requests by endpoint and status, tokens generated, queue depth, time to first
    token and per-token latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("aigc_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=self.registry)
        self.tokens = Counter("aigc_tokens_generated", "Tokens generated", ["model"],
                              registry=self.registry)
        self.queue = Gauge("aigc_queue_depth", "Requests waiting for a slot", ["model"],
                           registry=self.registry)
        self.running = Gauge("aigc_requests_running", "Requests being decoded", ["model"],
                             registry=self.registry)
        self.ttft = Histogram("aigc_time_to_first_token_seconds",
                              "From arrival to the first generated text", ["model"],
                              buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.itl = Histogram("aigc_inter_token_latency_seconds",
                             "Time between successive tokens of one sample", ["model"],
                             buckets=_LATENCY_BUCKETS, registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
