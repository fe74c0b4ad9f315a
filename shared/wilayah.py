"""Kota Bekasi's kecamatan and kelurahan codes (Kepmendagri 2025), shipped with the package."""

import csv
from functools import cache
from pathlib import Path

CSV = Path(__file__).with_name("data") / "bekasi_wilayah.csv"


@cache
def regions():
    """Map of code -> (level, name, kecamatan name) for the city, its kecamatan and kelurahan."""
    with CSV.open(newline="", encoding="utf-8") as f:
        return {
            row["kode"]: (row["level"], row["nama"], row["kecamatan"]) for row in csv.DictReader(f)
        }


def kelurahan_codes():
    """Every kelurahan code, in file order."""
    return [code for code, (level, _, _) in regions().items() if level == "kelurahan"]


def is_kelurahan(code):
    """True when ``code`` names a real kelurahan of Kota Bekasi (the codes have gaps)."""
    return regions().get(code, ("",))[0] == "kelurahan"


def name_of(code):
    """The name of a region, for messages and views."""
    return regions()[code][1]
