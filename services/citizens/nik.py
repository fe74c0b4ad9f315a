"""The NIK (Nomor Induk Kependudukan): 16 digits that encode region, birth date and sex.

Layout: ``PPKKCC DDMMYY SSSS`` -- province, regency/city and kecamatan codes (6
digits), the birth date with 40 added to the day for women, and a serial that is
never ``0000``. For Kota Bekasi (``3275``) the kecamatan must exist in
:mod:`shared.wilayah`; for any other region only the format is checked (a
plausible province 11-96, regency and kecamatan not ``00``).

Every error is a :class:`shared.errors.ValidationError` on field ``nik`` (or
``birth_date``/``sex``) whose messages never contain the NIK or any part of it.
"""

import re
from datetime import date

from shared.errors import ValidationError
from shared.wilayah import regions

BEKASI = "3275"
PROVINCES = range(11, 97)  # 11 (Aceh) .. 96 (Papua Barat Daya)
WOMAN_DAY_OFFSET = 40

_SIXTEEN_DIGITS = re.compile(r"[0-9]{16}")  # ASCII digits only: str.isdigit takes others


def _invalid(message, field="nik"):
    return ValidationError({field: [message]})


def region_problem(region):
    """Why a 6-digit region code is not acceptable, or None when it is."""
    if not re.fullmatch(r"[0-9]{6}", region):
        return "The region code must be 6 digits."
    if int(region[:2]) not in PROVINCES:
        return "The region code does not start with a valid province code."
    if region[2:4] == "00" or region[4:6] == "00":
        return "The region code does not name a regency/city and kecamatan."
    if region[:4] == BEKASI:
        code = f"{region[:2]}.{region[2:4]}.{region[4:6]}"
        if regions().get(code, ("",))[0] != "kecamatan":
            return "The region code is not a kecamatan of Kota Bekasi."
    return None


def _birth_date(day, month, yy, today):
    """The date DD-MM-YY in the latest century that puts it no later than ``today``."""
    for century in (2000, 1900):
        try:
            candidate = date(century + yy, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise _invalid("The birth date encoded in the NIK is not a valid date.")


def parse_nik(nik, today=None):
    """Return ``(region6, birth_date, sex)`` of a NIK, or raise ValidationError.

    ``sex`` is ``"L"`` (laki-laki) or ``"P"`` (perempuan, day + 40). The two-digit
    year takes the century that keeps the date no later than ``today``
    (default: the local date), so ``...0130`` read in 2026 is 1930.
    """
    if not isinstance(nik, str) or not _SIXTEEN_DIGITS.fullmatch(nik):
        raise _invalid("Must be exactly 16 digits.")
    region = nik[:6]
    problem = region_problem(region)
    if problem:
        raise _invalid(problem)
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    sex = "L"
    if day > WOMAN_DAY_OFFSET:
        day, sex = day - WOMAN_DAY_OFFSET, "P"
    birth = _birth_date(day, month, yy, today or date.today())
    if nik[12:] == "0000":
        raise _invalid("The serial number (the last 4 digits) must not be 0000.")
    return region, birth, sex


def _as_date(value, field):
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise _invalid("Not a valid date (YYYY-MM-DD).", field) from None


def validate_nik(nik, birth_date, sex, today=None):
    """Check a NIK against the stated birth date (ISO string or date) and sex (L/P).

    Returns the 6-digit region code. Raises ValidationError naming ``nik``,
    ``birth_date`` or ``sex``; the birth date must not lie after ``today``. The
    NIK's day, month and two-digit year must equal the stated birth date's, its
    day carrying + 40 exactly when ``sex`` is ``"P"``.
    """
    today = today or date.today()
    stated = _as_date(birth_date, "birth_date")
    if stated > today:
        raise _invalid("Must not be in the future.", "birth_date")
    if sex not in ("L", "P"):
        raise _invalid("Must be L or P.", "sex")
    region, _, _ = parse_nik(nik, today)
    day, month, yy = int(nik[6:8]), int(nik[8:10]), int(nik[10:12])
    encoded_sex = "P" if day > WOMAN_DAY_OFFSET else "L"
    problems = []
    if (day - WOMAN_DAY_OFFSET if encoded_sex == "P" else day, month, yy) != (
        stated.day,
        stated.month,
        stated.year % 100,
    ):
        problems.append("The birth date encoded in the NIK does not match the birth date.")
    if encoded_sex != sex:
        problems.append(
            "The sex encoded in the NIK (day + 40 for women) does not match the stated sex."
        )
    if problems:
        raise ValidationError({"nik": problems})
    return region
