"""Reference units after the July 2025 reorganisation (vietnam-provinces) and the HCMC demo CSV."""

from collections import Counter

from services.intake.reference import DEMO_CSV, administrative_units, csv_units


def test_34_provinces_and_their_wards_communes_and_special_zones() -> None:
    units = dict(administrative_units())
    levels = Counter(unit.level for unit in units.values())
    assert levels["province"] == 34
    assert levels["ward"] + levels["commune"] + levels["special_zone"] > 3_000
    assert units["79"].name.endswith("Hồ Chí Minh") and units["01"].name.endswith("Hà Nội")
    assert all(unit.parent_code in units for unit in units.values() if unit.level != "province")


def test_the_demo_csv_names_hcmc_departments_and_the_service_centre_with_its_branches() -> None:
    units = dict(csv_units(DEMO_CSV))
    assert units["79.SNV"].level == "department" and units["79.SNV"].parent_code == "79"
    branches = [code for code, unit in units.items() if unit.parent_code == "79.TTPVHCC"]
    assert len(branches) >= 3 and all(units[code].level == "center" for code in branches)
