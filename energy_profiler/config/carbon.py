"""`carbon`: the grid's carbon intensity (given, or a country's from the table shipped here) and a price.

grid_intensity.csv holds each country's annual average carbon intensity of electricity generation
(gCO2e/kWh, the latest year with a value: 2021-2023, one 2009) by ISO 3166-1 alpha-2 code, from Our
World in Data's "Carbon intensity of electricity generation" (Ritchie, Rosado and Roser, "Energy",
2023; data adapted from Ember and the Energy Institute; column carbon_intensity_elec of
github.com/owid/energy-data), as CodeCarbon ships it (codecarbon/data/private_infra/
global_energy_mix.json, read at commit b05965e), codes mapped with lukes/ISO-3166-Countries-with-
Regional-Codes. Offline: nothing is fetched while a campaign runs. The table has no sub-national
regions.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from energy_profiler.config.errors import ConfigIssue, did_you_mean

GRID_TABLE = Path(__file__).with_name("grid_intensity.csv")
GRID_SOURCE = "Our World in Data (Ember, Energy Institute)"


@dataclass(frozen=True)
class GridIntensity:
    code: str
    country: str
    g_per_kwh: float
    year: int


@dataclass(frozen=True)
class CarbonSettings:
    """What a joule costs in CO2e (and money): each row's co2e_g and cost are computed from it."""

    g_per_kwh: float | None = None
    source: str | None = None
    """`given`, or the table's source, the country and the year (`Our World in Data (...): DE 2023`)."""
    price_per_kwh: float | None = None
    currency: str | None = None


@cache
def grid_table() -> dict[str, GridIntensity]:
    """The shipped table, by alpha-2 code."""
    with open(GRID_TABLE, newline="", encoding="utf-8") as table:
        return {row["code"]: GridIntensity(row["code"], row["country"], float(row["g_per_kwh"]), int(row["year"]))
                for row in csv.DictReader(table)}


ALIASES = {"UK": "GB", "EL": "GR"}
"""Codes people use that ISO 3166-1 does not: the United Kingdom's and (in the EU) Greece's."""


def carbon_issues(document: dict[str, Any], file: str) -> list[ConfigIssue]:
    """What the schema cannot say of `carbon`: both intensities given, a currency without a price, a
    region the table does not hold (with the code meant where it can tell: a country's name, its
    alpha-3 code, UK for GB, or a near code)."""
    carbon = document.get("carbon")
    if not isinstance(carbon, dict):
        return []
    issues = []
    if "g_per_kwh" in carbon and "region" in carbon:
        issues.append(ConfigIssue(file, ("carbon",), "give g_per_kwh or region, not both: which intensity counts "
                                                     "would be a guess"))
    if "currency" in carbon and "price_per_kwh" not in carbon:
        issues.append(ConfigIssue(file, ("carbon", "currency"), "names the currency of price_per_kwh, which is "
                                                                "not given"))
    region = carbon.get("region")
    if not isinstance(region, str) or region.upper() in grid_table():  # `de` is DE
        return issues
    table = grid_table()
    meant = ALIASES.get(region.upper()) or next(
        (code for code, entry in table.items() if region.lower() == entry.country.lower()), None)
    if meant is None and len(region) == 3:
        meant = _alpha3().get(region.upper())
    hint = f" (did you mean '{meant}', {table[meant].country}?)" if meant else did_you_mean(region.upper(), table)
    return [*issues, ConfigIssue(file, ("carbon", "region"), f"{region!r} is not a country code of the carbon "
                                                             f"table{hint}; its ISO 3166-1 alpha-2 codes are in "
                                                             f"{GRID_TABLE}")]


@cache
def _alpha3() -> dict[str, str]:
    with open(GRID_TABLE, newline="", encoding="utf-8") as table:
        return {row["alpha3"]: row["code"] for row in csv.DictReader(table)}


def carbon_settings(carbon: Any) -> CarbonSettings | None:
    """The `carbon` block as a value (None when absent); a region the table lacks gives no intensity."""
    if not isinstance(carbon, dict):
        return None
    g_per_kwh, source = carbon.get("g_per_kwh"), "given" if "g_per_kwh" in carbon else None
    region = carbon.get("region")
    if isinstance(region, str) and (entry := grid_table().get(region.upper())) is not None:
        g_per_kwh, source = entry.g_per_kwh, f"{GRID_SOURCE}: {entry.code} {entry.year}"
    return CarbonSettings(g_per_kwh=g_per_kwh, source=source, price_per_kwh=carbon.get("price_per_kwh"),
                          currency=carbon.get("currency"))
