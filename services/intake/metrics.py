"""Intake's own Prometheus metrics: what arrived, what was held back and why, what is still waiting."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RATINGS = Counter("hailong_intake_ratings_total", "Ratings stored, by channel and status on arrival", ["channel", "status"])
RATINGS_REFUSED = Counter("hailong_intake_ratings_refused_total", "Rating items refused, by HTTP status", ["status"])
FLAGS = Counter("hailong_intake_flags_total", "Integrity flags raised, by rule", ["rule"])
RELEASED = Counter("hailong_intake_ratings_released_total", "Held ratings whose dossier arrived, by outcome", ["status"])
UNMATCHED = Counter("hailong_intake_ratings_unmatched_total", "Held ratings whose dossier never arrived within the window")
HELD = Gauge("hailong_intake_ratings_held", "Ratings currently waiting for their dossier (pending_dossier) or given up on (unmatched)", ["status"])
DOSSIERS = Counter("hailong_intake_dossiers_total", "Dossier completions, by outcome", ["outcome"])
