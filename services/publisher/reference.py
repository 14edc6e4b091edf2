"""Reference data shipped with the publisher: where each province's People's Committee sits.

`vietnam-provinces` carries codes and names of the 34 provinces after the July 2025 reorganisation but no
coordinates, and no offline package we could find carries post-2025 centroids or boundaries. So a province
the registry gives no coordinates is placed at its administrative centre (Resolution 202/2025/QH15), taken
from `data/provincial_seats.csv` (approximate, a few kilometres — enough for a dot on the national map).
Coordinates in the registry always win; other units without coordinates are listed, not mapped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SEATS_CSV = Path(__file__).parent / "data" / "provincial_seats.csv"


@dataclass(frozen=True)
class Seat:
    code: str
    name: str
    seat: str
    lat: float
    lon: float


@lru_cache(maxsize=1)
def provincial_seats() -> dict[str, Seat]:
    with SEATS_CSV.open(encoding="utf-8", newline="") as handle:
        return {
            row["code"]: Seat(row["code"], row["name"], row["seat"], float(row["lat"]), float(row["lon"]))
            for row in csv.DictReader(handle)
        }


def provincial_seat(code: str) -> Seat | None:
    return provincial_seats().get(code)
