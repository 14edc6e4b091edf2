"""Prometheus metrics of the publisher: pushes to each target, the state of its breaker, public traffic."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge, Histogram

DELIVERY_ATTEMPTS = Counter(
    "hailong_delivery_attempts_total", "Pushes attempted, by target and outcome (delivered, retry, dead)",
    ["target", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "hailong_delivery_seconds", "Duration of one push attempt", ["target"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES = Gauge("hailong_deliveries", "Delivery rows by target and status", ["target", "status"])
OLDEST_DUE = Gauge(
    "hailong_delivery_oldest_due_seconds", "Age of the oldest result waiting to be pushed to the target", ["target"]
)
CIRCUIT = Enum(
    "hailong_delivery_circuit", "Circuit breaker of each push target", ["target"],
    states=["closed", "open", "half_open"],
)
FEED_HEAD = Gauge("hailong_feed_head_seq", "Newest sequence number of the changes feed seen by this process")
SNAPSHOTS = Counter("hailong_official_snapshots_total", "Official snapshots frozen", ["reason"])
LIVE_SUBSCRIBERS = Gauge("hailong_live_subscribers", "Open Server-Sent Events streams of the public page")
PRUNED_ROWS = Counter("hailong_publisher_pruned_rows_total", "Rows removed by the retention of the publisher's history", ["table"])
