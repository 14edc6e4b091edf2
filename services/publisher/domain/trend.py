"""Geometry of a unit's trend chart (score per period), drawn as SVG on the server — pure, no I/O.

Periods without a publishable figure (too few ratings) break the line instead of being drawn as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChartPoint:
    label: str
    value: float | None
    x: float
    y: float | None


@dataclass(frozen=True)
class TrendChart:
    width: float
    height: float
    left: float
    right: float
    top: float
    bottom: float
    max_value: float
    points: list[ChartPoint] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)  # SVG polyline `points` attributes
    y_ticks: list[tuple[float, float]] = field(default_factory=list)  # (value, y)


def trend_chart(
    series: list[tuple[str, float | None]], max_value: float, width: float = 640, height: float = 240,
    margins: tuple[float, float, float, float] = (16, 16, 40, 48),
) -> TrendChart:
    """Lay out `series` (label, value) left to right in a width × height box, 0 … max_value bottom to top."""
    top, right, bottom, left = margins
    inner_w, inner_h = width - left - right, height - top - bottom
    max_value = max_value or max((v for _, v in series if v is not None), default=1.0) or 1.0
    step = inner_w / (len(series) - 1) if len(series) > 1 else 0.0

    def y_of(value: float) -> float:
        return top + inner_h * (1 - min(max(value / max_value, 0.0), 1.0))

    points = [
        ChartPoint(label, value, left + (index * step if len(series) > 1 else inner_w / 2), None if value is None else y_of(value))
        for index, (label, value) in enumerate(series)
    ]
    segments: list[str] = []
    current: list[str] = []
    for point in points:
        if point.y is None:
            if current:
                segments.append(" ".join(current))
            current = []
        else:
            current.append(f"{point.x:.1f},{point.y:.1f}")
    if current:
        segments.append(" ".join(current))
    ticks = [(max_value * fraction, y_of(max_value * fraction)) for fraction in (0, 0.25, 0.5, 0.75, 1)]
    return TrendChart(width, height, left, right, top, bottom, max_value, points, segments, ticks)
