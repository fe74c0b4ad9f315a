"""Generated residents: invented Indonesian names, NIKs built to the rules.

Names come from small lists of common given names and family names, combined;
no real person is copied. Each NIK carries a Kota Bekasi kecamatan prefix
(``3275xx``), the birth date (day + 40 for women) and a serial that is never
0000, so it agrees with the stated birth date and sex. Every generated name is
given to :func:`tests.leakwatch.remember_name`: the session fails if it is seen
in a log line, an error reply or a published event.
"""

import itertools
import random
from datetime import date, timedelta

from tests import leakwatch

KECAMATAN = tuple(f"3275{k:02d}" for k in range(1, 13))  # the 12 kecamatan of Kota Bekasi
MEN = ("Agus", "Bambang", "Dedi", "Eko", "Fajar", "Hendra", "Joko", "Rudi", "Wahyu", "Yudi")
WOMEN = ("Ayu", "Dewi", "Fitri", "Indah", "Lestari", "Nur", "Putri", "Ratna", "Sri", "Wulan")
FAMILY_NAMES = (
    "Hartono",
    "Kusumawati",
    "Nugroho",
    "Prasetyo",
    "Rahmawati",
    "Saputra",
    "Setiawan",
    "Simanjuntak",
    "Wibisono",
    "Yuliana",
)
TODAY = date(2026, 3, 2)
_serials = itertools.count(random.randrange(1, 5000))


def make_nik(birth_date, sex, region="327505", serial=None):
    """A NIK of ``region`` for a person born on ``birth_date`` (ISO) of ``sex``."""
    born = date.fromisoformat(birth_date)
    serial = next(_serials) % 9999 + 1 if serial is None else serial
    day = born.day + (40 if sex == "P" else 0)
    return f"{region}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"


def make_kk(region="327505"):
    """A No. KK: region, an issue date and a serial (16 digits)."""
    return f"{region}{random.randrange(1, 29):02d}{random.randrange(1, 13):02d}{random.randrange(10, 26)}{next(_serials) % 9999 + 1:04d}"


def name_for(sex, rng=random):
    given = rng.choice(MEN if sex == "L" else WOMEN)
    name = f"{given} {rng.choice(FAMILY_NAMES)}"
    leakwatch.remember_name(name)
    return name


def person(sex=None, age=None, rw=7, rt=3, rng=random, **overrides):
    """A register payload for an invented resident (an adult of 18-70 unless ``age``)."""
    sex = sex or rng.choice(("L", "P"))
    age = rng.randrange(18, 71) if age is None else age
    born = TODAY - timedelta(days=365 * age + rng.randrange(30, 330))
    birth_date = born.isoformat()
    payload = {
        "nik": make_nik(birth_date, sex, rng.choice(KECAMATAN)),
        "name": name_for(sex, rng),
        "sex": sex,
        "birth_place": "Bekasi",
        "birth_date": birth_date,
        "religion": rng.choice(("islam", "islam", "islam", "kristen", "katolik", "buddha")),
        "education": rng.choice(("sd", "smp", "sma", "d3", "d4_s1")),
        "occupation": rng.choice(("karyawan_swasta", "wiraswasta", "pedagang", "guru")),
        "marital_status": "kawin" if age >= 25 else "belum_kawin",
        "citizenship": "wni",
        "address": f"Jl. Flamboyan {rng.randrange(1, 40)} No. {rng.randrange(1, 120)}",
        "rt": rt,
        "rw": rw,
    }
    payload.update(overrides)
    if "nik" not in overrides and ("birth_date" in overrides or "sex" in overrides):
        payload["nik"] = make_nik(payload["birth_date"], payload["sex"])
    return payload
