"""Residents from a CSV file, as register payloads for ``citizens.import_residents``.

The file is UTF-8 with a header line; columns may come in any order and may be
left out or empty when optional. An empty cell is a missing value.

Registration (the fields of :class:`services.citizens.schemas.RegisterResident`):

- ``nik``, ``name``, ``sex`` (L/P), ``birth_place``, ``birth_date`` (YYYY-MM-DD),
  ``religion``, ``education``, ``occupation``, ``marital_status``, ``citizenship``,
  ``address``, ``rt``, ``rw`` (whole numbers): required;
- ``kk``, ``relationship``, ``entry`` (existing/birth/move_in), ``entry_date``,
  ``origin_region``, ``origin_address`` (the nested ``origin``, flattened): optional.

Vulnerability, optional, recorded with the registration (the same events as
``record_disability`` / ``record_welfare``):

- ``disability``: UU 8/2016 categories separated by ``|`` (e.g. ``physical|sensory``),
  with ``disability_consent`` (self/guardian) and ``disability_consent_date``, and
  ``disability_source`` (default ``home_visit``);
- ``welfare_decile`` (1-10) with ``welfare_as_of`` and ``welfare_source`` (default
  ``dtsen``).

:func:`read` yields ``(line_number, payload)`` for each record, or ``(line_number,
reason)`` (a str) for a record that cannot become a payload. Reasons name fields,
never values. A header with an unknown column is refused at once (ValueError).
"""

import csv

REGISTER = (
    "nik", "name", "sex", "birth_place", "birth_date", "religion", "education", "occupation",
    "marital_status", "citizenship", "address", "rt", "rw", "kk", "relationship", "entry",
    "entry_date",
)  # fmt: skip
ORIGIN = ("origin_region", "origin_address")
DISABILITY = ("disability", "disability_consent", "disability_consent_date", "disability_source")
WELFARE = ("welfare_decile", "welfare_as_of", "welfare_source")
COLUMNS = (*REGISTER, *ORIGIN, *DISABILITY, *WELFARE)
INTEGERS = ("rt", "rw", "welfare_decile")


def read(lines):
    """``(line_number, payload | reason)`` for each record of an open CSV file."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip().lower() for name in header]
    unknown = sorted(set(header) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown column(s) in the header: {', '.join(unknown)}")
    if len(set(header)) != len(header):
        raise ValueError("a column is named twice in the header")
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # a blank line
        if len(record) != len(header):
            yield line, f"the line has {len(record)} cells, the header {len(header)}"
            continue
        yield line, payload(dict(zip(header, record, strict=True)))


def payload(row):
    """A register payload (plus ``disability``/``welfare``) from one CSV row of str."""
    row = {k: _value(k, v) for k, v in row.items()}
    data = {k: row[k] for k in REGISTER if row.get(k) is not None}
    if any(row.get(k) is not None for k in ORIGIN):
        data["origin"] = {"region": row.get("origin_region"), "address": row.get("origin_address")}
    if any(row.get(k) is not None for k in DISABILITY):
        categories = row.get("disability")
        consent = None
        if row.get("disability_consent") is not None or row.get("disability_consent_date"):
            consent = {
                "given_by": row.get("disability_consent"),
                "date": row.get("disability_consent_date"),
            }
        data["disability"] = {
            "categories": categories.split("|") if categories else [],
            "consent": consent,
            "source": row.get("disability_source") or "home_visit",
        }
    if any(row.get(k) is not None for k in WELFARE):
        data["welfare"] = {
            "decile": row.get("welfare_decile"),
            "as_of": row.get("welfare_as_of"),
            "source": row.get("welfare_source") or "dtsen",
        }
    return data


def _value(name, text):
    text = text.strip()
    if not text:
        return None
    if name in INTEGERS and text.isascii() and text.isdigit():
        return int(text)
    return text
