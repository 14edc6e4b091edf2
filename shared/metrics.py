"""Prometheus metrics shared by the four services (one process = one service, labelled by name)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "hailong_http_requests_total", "HTTP requests answered", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "hailong_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_IN = Counter(
    "hailong_events_consumed_total", "Kafka records consumed", ["service", "topic", "outcome"]
)
EVENTS_OUT = Counter("hailong_events_published_total", "Outbox rows published to Kafka", ["service", "topic"])
CONSUMER_LAG = Gauge(
    "hailong_consumer_lag", "Records behind the partition's high watermark", ["service", "topic", "partition"]
)
OUTBOX_BACKLOG = Gauge("hailong_outbox_backlog", "Outbox rows not yet published", ["service"])
DLQ_EVENTS = Counter("hailong_dlq_events_total", "Records sent to a dead-letter topic", ["service", "topic"])
