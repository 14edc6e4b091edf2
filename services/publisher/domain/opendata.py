"""The open data the publisher offers: rankings as CSV/JSON, units as GeoJSON, with licence and schema.

Described as a Frictionless Data Package (Table Schema for the CSV), so tools can validate the files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from services.publisher.domain.publication import PublicResult

LICENCE = {
    "name": "CC-BY-4.0",
    "title": "Creative Commons Attribution 4.0 International",
    "path": "https://creativecommons.org/licenses/by/4.0/",
}

# (name, Table Schema type, description) — the CSV's columns, in order.
RANKING_FIELDS: list[tuple[str, str, str]] = [
    ("rank", "integer", "competition rank among the listed units (ties share a rank); empty when not ranked"),
    ("unit_code", "string", "the unit's identifier in the registry"),
    ("unit_name", "string", "the unit's name"),
    ("level", "string", "province | department | agency | ward | commune | special_zone | center"),
    ("parent_code", "string", "the unit above it"),
    ("period", "string", "YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY, in Asia/Ho_Chi_Minh"),
    ("profile", "string", "the scoring profile (the regulation the figure follows)"),
    ("edition", "string", "live (moves with new ratings) or official (frozen at the period's close)"),
    ("snapshot_version", "integer", "version of the official snapshot; empty for live figures"),
    ("score", "number", "the figure; empty when there are too few ratings to publish it"),
    ("max_score", "number", "the largest possible figure of the profile"),
    ("band", "string", "the profile's band, or insufficient_data"),
    ("provisional", "boolean", "true until the period's non-citizen inputs are in (not ranked among final figures)"),
    ("ratings", "integer", "ratings counted"),
    ("dossiers", "integer", "dossiers completed"),
    ("version", "integer", "the figure's version; only goes up"),
    ("updated_at", "datetime", "when the figure was computed (RFC 3339)"),
]
RANKING_COLUMNS = [name for name, _, _ in RANKING_FIELDS]

UNIT_PROPERTIES: list[tuple[str, str, str]] = [
    ("code", "string", "the unit's identifier"),
    ("name", "string", "the unit's name"),
    ("level", "string", "administrative level"),
    ("parent_code", "string", "the unit above it"),
    ("successor_code", "string", "for a merged or retired unit, the unit that took over"),
    ("coordinates_source", "string", "registry, or provincial_seat for a province placed at its People's Committee seat"),
    ("period", "string", "the period of the figures below, when one was asked for"),
    ("profile", "string", "the profile of the figures below"),
    ("score", "number", "the unit's live figure; absent or null with too few ratings"),
    ("max_score", "number", "the profile's largest figure"),
    ("band", "string", "the profile's band, or insufficient_data"),
    ("ratings", "integer", "ratings counted"),
]


def csv_row(result: PublicResult, edition: str, snapshot_version: int | None) -> dict[str, Any]:
    row = result.as_dict()
    row.update(edition=edition, snapshot_version=snapshot_version, provisional=str(result.provisional).lower())
    return {name: ("" if row.get(name) is None else row[name]) for name in RANKING_COLUMNS}


def rankings_csv(results: Iterable[PublicResult], edition: str, snapshot_version: int | None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RANKING_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for result in results:
        writer.writerow(csv_row(result, edition, snapshot_version))
    return out.getvalue()


def data_package(base_url: str) -> dict[str, Any]:
    """The Data Package descriptor; `base_url` is where this publisher answers (no trailing slash)."""
    return {
        "profile": "data-package",
        "name": "hailong-public-service-satisfaction",
        "title": "Hài Lòng — mức độ hài lòng với dịch vụ hành chính công / satisfaction with public administrative services",
        "licenses": [LICENCE],
        "resources": [
            {
                "name": "rankings",
                "path": f"{base_url}/v1/public/rankings?format=csv",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "description": "Rankings of units for one period and profile (query: period, profile, level, parent, edition, version).",
                "schema": {
                    "fields": [{"name": n, "type": t, "description": d} for n, t, d in RANKING_FIELDS],
                    "missingValues": [""],
                },
            },
            {
                "name": "units",
                "path": f"{base_url}/v1/public/units.geojson",
                "format": "geojson",
                "mediatype": "application/geo+json",
                "description": "Units that have coordinates, as GeoJSON points (RFC 7946), with their live figure "
                               "when period and profile are given.",
                "schema": {"fields": [{"name": n, "type": t, "description": d} for n, t, d in UNIT_PROPERTIES]},
            },
        ],
    }
