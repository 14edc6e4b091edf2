"""Intake's own Prometheus metrics: what arrived, what was held back and why, what is still waiting."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RATINGS = Counter("hailong_intake_ratings_total", "Ratings stored, by channel and status on arrival", ["channel", "status"])
RATINGS_REFUSED = Counter("hailong_intake_ratings_refused_total", "Rating items refused, by HTTP status", ["status"])
FLAGS = Counter("hailong_intake_flags_total", "Integrity flags raised, by rule", ["rule"])
RELEASED = Counter("hailong_intake_ratings_released_total", "Held ratings whose dossier arrived, by outcome", ["status"])
UNMATCHED = Counter("hailong_intake_ratings_unmatched_total", "Held ratings whose dossier never arrived within the window")
HELD = Gauge("hailong_intake_ratings_held", "Ratings currently waiting for their dossier (pending_dossier) or given up on (unmatched)", ["status"])
DOSSIERS = Counter("hailong_intake_dossiers_total", "Dossier completions, by outcome", ["outcome"])
WRITE_GROUP = Histogram(
    "hailong_intake_write_group_size", "Single rating posts committed together (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
WRITE_SECONDS = Histogram(
    "hailong_intake_write_group_seconds", "Time to write and commit one group of single rating posts",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
