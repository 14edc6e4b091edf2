"""Reference units: provinces and wards/communes after the July 2025 reorganisation, plus an operator CSV.

Provinces and wards come from the `vietnam-provinces` package (General Statistics Office codes, HCMC
is 79); departments and centres come from a CSV the operator provides (a demo for HCMC ships here).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from vietnam_provinces import Province, VietNamDivisionType, Ward

from services.intake.schemas import UnitIn

DEMO_CSV = Path(__file__).parent / "data" / "hcmc_demo_units.csv"
WARD_LEVELS = {
    VietNamDivisionType.PHUONG: "ward",
    VietNamDivisionType.XA: "commune",
    VietNamDivisionType.DAC_KHU: "special_zone",
}


def _code(value: object, digits: int) -> str:
    # GSO codes are written zero-padded: provinces 2 digits (HCMC 79, Hà Nội 01), wards 5 digits.
    return f"{int(getattr(value, 'value', value)):0{digits}d}"


def administrative_units() -> Iterator[tuple[str, UnitIn]]:
    for province in Province.iter_all():
        yield _code(province.code, 2), UnitIn(name=province.name, level="province")
    for ward in Ward.iter_all():
        level = WARD_LEVELS.get(ward.division_type, "commune")
        yield _code(ward.code, 5), UnitIn(name=ward.name, level=level, parent_code=_code(ward.province_code, 2))


def csv_units(path: Path) -> Iterator[tuple[str, UnitIn]]:
    """Rows of code, name, level, parent_code, lat, lon (extra columns such as a note are ignored)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                yield row["code"].strip(), UnitIn(
                    name=row["name"], level=row["level"], parent_code=row.get("parent_code") or None,
                    lat=float(row["lat"]) if row.get("lat") else None, lon=float(row["lon"]) if row.get("lon") else None,
                )
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from exc
