"""Plain factory functions for test data: generated, never copied from real people."""

from shared.actor import Actor

PENGASINAN = "32.75.05.1002"
RAWALUMBU = "32.75.05"


def actor(role, user_id=None, kelurahan=PENGASINAN, rw=None, rt=None):
    return Actor(user_id or f"u-{role}", role, kelurahan, rw=rw, rt=rt)


def operator():
    return actor("operator")


def lurah():
    return actor("lurah")


def rt_chair(rw=7, rt=3):
    return actor("ketua_rt", f"u-rt-{rw}-{rt}", rw=rw, rt=rt)


def rw_chair(rw=7):
    return actor("ketua_rw", f"u-rw-{rw}", rw=rw)


def camat(kecamatan=RAWALUMBU):
    return actor("camat", kelurahan=kecamatan)


def bappeda():
    return actor("bappeda", kelurahan="32.75")


def system():
    return actor("system", "system", kelurahan="32.75")


def proposal(year=2027, rw=7, rt=3, **overrides):
    """A submit-proposal payload for an RT's drainage repair."""
    payload = {
        "year": year,
        "title": "Perbaikan saluran air RT 03",
        "problem": "Saluran tersumbat sampah, banjir setinggi 30 cm setiap hujan deras",
        "idea": "Normalisasi saluran 150 m dan pemasangan penutup beton",
        "sector": "pekerjaan_umum",
        "target_agency": "Dinas Bina Marga dan Sumber Daya Air",
        "proposer": {"level": "rt", "rw": rw, "rt": rt},
        "location": {
            "rw": rw,
            "rt": rt,
            "address": "Jl. Melati Raya",
            "latitude": -6.27,
            "longitude": 107.0,
        },
        "volume": 150,
        "unit": "m",
        "estimated_cost": 120_000_000,
        "photos": ["files/saluran-1.jpg"],
    }
    payload.update(overrides)
    return payload


def bendahara(user_id=None):
    return actor("bendahara", user_id)
