"""A synthetic kelurahan: invented residents for benchmarks and tests, never real people.

``generate(count, seed)`` yields RegisterResident-shaped dicts (with ``rt``/``rw``
as ints) plus the vulnerability columns the importer reads
(:mod:`services.citizens.importer`): about 2 % with a disability (and consent),
about 40 % with a welfare decile 1-10. Names combine lists of common given and
family names; NIKs carry a Kota Bekasi kecamatan prefix (``3275xx``), the birth
date (day + 40 for women) and a serial, unique within the file.

    python -m bench.residents --count 46000 --seed 1 --out residents.csv
"""

import argparse
import csv
import random
import sys
from datetime import date, timedelta

from services.citizens.importer import COLUMNS

TODAY = date(2026, 3, 2)
KECAMATAN = tuple(f"3275{k:02d}" for k in range(1, 13))
MEN = ("Agus", "Bambang", "Dedi", "Eko", "Fajar", "Hendra", "Joko", "Rudi", "Wahyu", "Yudi",
       "Arif", "Budi", "Dimas", "Gilang", "Irfan", "Rizky", "Teguh", "Yoga")  # fmt: skip
WOMEN = ("Ayu", "Dewi", "Fitri", "Indah", "Lestari", "Nur", "Putri", "Ratna", "Sri", "Wulan",
         "Anisa", "Citra", "Eka", "Intan", "Maya", "Rina", "Siti", "Yanti")  # fmt: skip
FAMILY = ("Hartono", "Kusumawati", "Nugroho", "Prasetyo", "Rahmawati", "Saputra", "Setiawan",
          "Simanjuntak", "Wibisono", "Yuliana", "Hidayat", "Siregar", "Gunawan", "Santoso",
          "Permana", "Lubis", "Wijaya", "Purnomo", "Susanti", "Hakim")  # fmt: skip
STREETS = ("Flamboyan", "Cempaka", "Melati", "Kenanga", "Mawar", "Anggrek", "Dahlia", "Teratai")
RELIGIONS = (("islam", 87), ("kristen", 7), ("katolik", 3), ("buddha", 2), ("hindu", 1))
AGE_BANDS = ((0, 15, 24), (15, 25, 17), (25, 45, 32), (45, 60, 17), (60, 90, 10))  # lo, hi, %
WORK = ("karyawan_swasta", "wiraswasta", "pedagang", "buruh_harian_lepas", "buruh_pabrik",
        "mengurus_rumah_tangga", "guru", "pns", "sopir", "tukang", "karyawan_honorer")  # fmt: skip
DISABILITY = ("physical", "intellectual", "mental", "sensory")


def _pick(rng, weighted):
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _person(rng, kelurahan, used):
    sex = rng.choice("LP")
    lo, hi = _pick(rng, [((lo, hi), w) for lo, hi, w in AGE_BANDS])
    born = TODAY - timedelta(days=rng.randrange(lo * 365 + 1, hi * 365))
    region = rng.choice(KECAMATAN)
    day = born.day + (40 if sex == "P" else 0)
    stem = f"{region}{day:02d}{born.month:02d}{born.year % 100:02d}"
    serial = rng.randrange(1, 10000)
    while f"{stem}{serial:04d}" in used:
        serial = serial % 9999 + 1
    nik = f"{stem}{serial:04d}"
    used.add(nik)
    age = (TODAY - born).days // 365
    if age < 7:
        education, occupation = "tidak_sekolah", "belum_bekerja"
    elif age < 19:
        education, occupation = rng.choice(("belum_tamat_sd", "sd", "smp")), "pelajar_mahasiswa"
    else:
        education = rng.choice(("sd", "smp", "sma", "sma", "sma", "d3", "d4_s1", "d4_s1", "s2"))
        occupation = "pensiunan" if age >= 60 and rng.random() < 0.5 else rng.choice(WORK)
    married = age >= 20 and rng.random() < min(0.9, (age - 18) / 12)
    marital = "belum_kawin" if not married else rng.choice(("kawin",) * 9 + ("cerai_hidup",))
    row = {
        "nik": nik,
        "name": f"{rng.choice(MEN if sex == 'L' else WOMEN)} {rng.choice(FAMILY)}",
        "sex": sex,
        "birth_place": rng.choice(("Bekasi", "Bekasi", "Jakarta", "Bandung", "Bogor", "Medan")),
        "birth_date": born.isoformat(),
        "religion": _pick(rng, RELIGIONS),
        "education": education,
        "occupation": occupation,
        "marital_status": "cerai_mati" if married and age > 65 and rng.random() < 0.3 else marital,
        "citizenship": "wni",
        "address": f"Jl. {rng.choice(STREETS)} {rng.randrange(1, 40)} No. {rng.randrange(1, 150)}",
        "rt": rng.randrange(1, 11),
        "rw": rng.randrange(1, 19),
    }
    if rng.random() < 0.02:
        row["disability"] = "|".join(rng.sample(DISABILITY, rng.choice((1, 1, 1, 2))))
        row["disability_consent"] = "self" if age >= 18 else "guardian"
        row["disability_consent_date"] = (TODAY - timedelta(days=rng.randrange(1, 700))).isoformat()
    if rng.random() < 0.4:
        row["welfare_decile"] = rng.randrange(1, 11)
        row["welfare_as_of"] = "2025-12-31"
    return row


def generate(count, seed, kelurahan="32.75.05.1002"):
    """``count`` invented residents of ``kelurahan``, the same for the same ``seed``."""
    rng, used = random.Random(seed), set()
    for _ in range(count):
        yield _person(rng, kelurahan, used)


def write_csv(rows, out):
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=46_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="CSV file (default: stdout)")
    args = parser.parse_args(argv)
    rows = generate(args.count, args.seed)
    if args.out is None:
        write_csv(rows, sys.stdout)
    else:
        with open(args.out, "w", newline="", encoding="utf-8") as out:
            write_csv(rows, out)


if __name__ == "__main__":
    main()
