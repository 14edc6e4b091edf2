"""Placing units on the server-drawn map of Việt Nam — pure geometry, no I/O.

The country outline is projected once at build time by d3-geo (`web/build-map.mjs`) with a Mercator
projection; its scale and translation come with it, so units' lat/lon land on the same drawing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Mercator:
    """d3.geoMercator() with only scale and translate set (no rotation, centre 0,0)."""

    scale: float
    translate_x: float
    translate_y: float

    def project(self, lon: float, lat: float) -> tuple[float, float]:
        lam, phi = math.radians(lon), math.radians(lat)
        return (
            self.translate_x + self.scale * lam,
            self.translate_y - self.scale * math.log(math.tan(math.pi / 4 + phi / 2)),
        )


@dataclass(frozen=True)
class ViewBox:
    x: float
    y: float
    width: float
    height: float

    def __str__(self) -> str:
        return f"{self.x:.1f} {self.y:.1f} {self.width:.1f} {self.height:.1f}"


def fit_view(points: Iterable[tuple[float, float]], whole: ViewBox, padding: float = 0.15, min_size: float = 80.0) -> ViewBox:
    """A view around `points` with the map's aspect ratio, no smaller than `min_size`, within `whole`."""
    located = list(points)
    if not located:
        return whole
    xs, ys = [x for x, _ in located], [y for _, y in located]
    min_x, max_x, min_y, max_y = min(xs), max(xs), min(ys), max(ys)
    aspect = whole.width / whole.height
    width = max(max_x - min_x, (max_y - min_y) * aspect, min_size) * (1 + 2 * padding)
    height = width / aspect
    if width >= whole.width or height >= whole.height:
        return whole
    centre_x, centre_y = (min_x + max_x) / 2, (min_y + max_y) / 2
    x = min(max(centre_x - width / 2, whole.x), whole.x + whole.width - width)
    y = min(max(centre_y - height / 2, whole.y), whole.y + whole.height - height)
    return ViewBox(x, y, width, height)


def dot_radius(view: ViewBox, whole: ViewBox, base: float = 6.0) -> float:
    """Dots keep the same size on screen whatever part of the map is shown."""
    return base * view.width / whole.width
