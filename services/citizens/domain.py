"""Residents, families and the Pamor service desk of a kelurahan: pure domain, no I/O.

Three aggregates:

- :class:`Resident` (stream ``resident-<uuid>``): the population record, moves,
  death, corrections, vulnerability records and erasure;
- :class:`Family` (stream ``family-<uuid>``): a family card (No. KK) and its
  members with their Dukcapil relationship; :func:`split` forms a new family
  from members of another;
- :class:`ServiceRequest` (stream ``request-<uuid>``): a request for help raised
  for a resident, assigned to a pamor, tracked to done against a 24-hour target.

Every command checks, in this order, that the entity exists (:class:`NotFound`),
that the actor's role and scope allow it (:class:`Forbidden`), that its arguments
are sound (:class:`ValidationError`), and that the current state allows it
(:class:`Conflict`, e.g. ``resident was erased``); checks of arguments against
the state (a NIK against a corrected birth date) come last, as ValidationError.
Creating commands check the kelurahan code before the scope. Only then are
events recorded, so a refused command leaves no pending event.

Event data layout (every event of this module)::

    {<non-personal fields: codes, ids, kelurahan>,
     "personal": {...everything about the person...} | None,
     "public": {"rw": int, "sex": "L"|"P", "age_band": "25-29", "categories": [...]}}

``personal`` is sealed per resident by the service (and may come back ``None``
once the resident's key is shredded: every ``on_`` handler tolerates that);
``public`` holds only coarse attributes (family and request events carry
``{"rw": int}`` only). A resident event's ``public`` is the resident's public
view *after* the event, computed at the event's local (WIB) date.

Error messages name roles, scopes, statuses and fields, never personal data.
"""

import numbers
import re
from datetime import UTC, date, datetime, timedelta, timezone

from services.citizens.nik import region_problem, validate_nik
from shared.actor import KELURAHAN_STAFF
from shared.domain import Aggregate, json_copy
from shared.errors import Conflict, Forbidden, ValidationError

# -- codes ------------------------------------------------------------------------------

SEXES = ("L", "P")
RELIGIONS = ("islam", "kristen", "katolik", "hindu", "buddha", "khonghucu", "kepercayaan")
EDUCATION_LEVELS = (  # pendidikan terakhir, as on the KK
    "tidak_sekolah",
    "belum_tamat_sd",
    "sd",
    "smp",
    "sma",
    "d1_d2",
    "d3",
    "d4_s1",
    "s2",
    "s3",
)
OCCUPATIONS = (  # a condensed Dukcapil list; "lainnya" for the rest
    "belum_bekerja",
    "mengurus_rumah_tangga",
    "pelajar_mahasiswa",
    "pensiunan",
    "pns",
    "tni",
    "polri",
    "karyawan_swasta",
    "karyawan_bumn_bumd",
    "karyawan_honorer",
    "wiraswasta",
    "pedagang",
    "buruh_harian_lepas",
    "buruh_pabrik",
    "petani_pekebun",
    "nelayan",
    "sopir",
    "tukang",
    "guru",
    "dosen",
    "dokter",
    "bidan",
    "perawat",
    "asisten_rumah_tangga",
    "pemuka_agama",
    "seniman",
    "lainnya",
)
MARITAL_STATUSES = ("belum_kawin", "kawin", "cerai_hidup", "cerai_mati")
CITIZENSHIPS = ("wni", "wna")
RELATIONSHIPS = (  # status hubungan dalam keluarga (SHDK)
    "kepala_keluarga",
    "suami",
    "istri",
    "anak",
    "menantu",
    "cucu",
    "orang_tua",
    "mertua",
    "famili_lain",
    "pembantu",
    "lainnya",
)
HEAD = "kepala_keluarga"

RESIDENT_STATUSES = ("alive", "dead", "moved_out", "missing", "erased")
ENTRY_KINDS = ("existing", "birth", "move_in")
MOVE_OUT_REASONS = ("work", "family", "education", "housing", "marriage", "other")
CORRECTION_REASONS = ("typo", "document_update", "dukcapil_sync", "court_order", "other")
#: Fields ``Resident.correct`` may change; KK and relationship follow the family.
CORRECTABLE_FIELDS = (
    "nik",
    "name",
    "sex",
    "birth_place",
    "birth_date",
    "religion",
    "education",
    "occupation",
    "marital_status",
    "citizenship",
    "address",
    "rt",
    "rw",
)
ERASURE_BASES = (  # UU 27/2022 arts. 8, 16, 43: why the data is erased
    "data_subject_request",
    "consent_withdrawn",
    "purpose_fulfilled",
    "unlawful_processing",
    "court_order",
)
ERASING_ROLES = ("lurah", "admin")

DISABILITY_CATEGORIES = ("physical", "intellectual", "mental", "sensory", "multiple")  # UU 8/2016
CONSENT_GIVERS = ("self", "guardian")
SOURCES = (  # where a vulnerability record comes from
    "self_report",
    "home_visit",
    "posyandu",
    "puskesmas",
    "dinsos",
    "dtsen",
    "dukcapil",
    "school",
    "other",
)
CHRONIC_CONDITIONS = (
    "hypertension",
    "diabetes",
    "heart_disease",
    "stroke",
    "kidney_disease",
    "cancer",
    "tuberculosis",
    "hiv",
    "lung_disease",
    "mental_illness",
    "other",
)
CARE_NEEDS = (
    "daily_living",
    "mobility",
    "medication",
    "nursing",
    "supervision",
    "assistive_device",
    "transport",
    "other",
)
CLEAR_REASONS = ("consent_withdrawn", "no_longer_applies", "recorded_in_error", "other")
PREGNANCY_END_REASONS = ("delivered", "ended", "recorded_in_error")
VULNERABILITY_KINDS = ("disability", "welfare", "health", "pregnancy")

AGE_BANDS = tuple(f"{low}-{low + 4}" for low in range(0, 75, 5)) + ("75+",)
#: DTSEN decile bands: PKH goes to deciles 1-4, food aid and PBI-JK to 1-5.
WELFARE_BANDS = {
    "welfare.decile_1_4": (1, 4),
    "welfare.decile_5": (5, 5),
    "welfare.decile_6_10": (6, 10),
}
CATEGORIES = (
    *(f"disability.{c}" for c in DISABILITY_CATEGORIES),
    *WELFARE_BANDS,
    "chronic_illness",
    "care_needs",
    "elderly",
    "child",
    "pregnant",
)
ELDERLY_AGE = 60
ADULT_AGE = 18
#: A recorded pregnancy counts as current until this long after the expected date.
PREGNANCY_GRACE = timedelta(days=30)

FAMILY_STATUSES = ("active", "dissolved")
MEMBER_REMOVAL_REASONS = (
    "moved_out",
    "died",
    "married",
    "new_family",
    "erased",
    "recorded_in_error",
    "other",
)

REQUEST_KINDS = ("ktp", "kk", "akta_kelahiran", "bantuan", "lainnya")
REQUEST_STATUSES = ("open", "assigned", "in_progress", "done", "cancelled")
REQUEST_OUTCOMES = ("completed", "referred", "not_needed", "unable")
SERVICE_TARGET = timedelta(hours=24)
REQUEST_RAISERS = (*KELURAHAN_STAFF, "pamor", "ketua_rw", "ketua_rt")

PUBLIC_KEYS = ("rw", "sex", "age_band", "categories")
LOCAL_TZ = timezone(timedelta(hours=7), "WIB")  # Kota Bekasi

_STAFF_NAMES = ", ".join(KELURAHAN_STAFF)
_KELURAHAN_CODE = re.compile(r"^32\.75\.[0-9]{2}\.[0-9]{4}$")
#: A region code of origin or destination: 2-digit province up to a kelurahan/desa code.
REGION_CODE = re.compile(r"^[0-9]{2}(\.[0-9]{2}(\.[0-9]{2}(\.[0-9]{4})?)?)?$")
_KK = re.compile(r"[0-9]{16}")


def resident_stream(resident_id):
    return f"resident-{resident_id}"


def family_stream(family_id):
    return f"family-{family_id}"


def request_stream(request_id):
    return f"request-{request_id}"


# -- time and age -----------------------------------------------------------------------


def moment_of(meta):
    """The aware datetime of ``meta["time"]`` (naive means UTC); now when absent."""
    text = (meta or {}).get("time")
    if isinstance(text, datetime):
        moment = text
    else:
        try:
            moment = datetime.fromisoformat(text)
        except (TypeError, ValueError):
            return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_date(meta):
    """The calendar date in Kota Bekasi (WIB) at ``meta["time"]``."""
    return moment_of(meta).astimezone(LOCAL_TZ).date()


def _to_date(value):
    return value if isinstance(value, date) else date.fromisoformat(value)


def age_on(birth_date, on):
    """Whole years of age at ``on`` (both dates or ISO strings)."""
    birth, on = _to_date(birth_date), _to_date(on)
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def age_band(age):
    """The five-year band of an age: ``"0-4"``, ``"25-29"``, ..., ``"75+"``."""
    if age >= 75:
        return "75+"
    low = max(age, 0) // 5 * 5
    return f"{low}-{low + 4}"


def welfare_band(decile):
    return next(code for code, (lo, hi) in WELFARE_BANDS.items() if lo <= decile <= hi)


def pregnancy_current(pregnancy, on):
    """True when a pregnancy record (with ``expected_date``) still counts at ``on``."""
    if not pregnancy or not pregnancy.get("expected_date"):
        return False
    return _to_date(on) <= _to_date(pregnancy["expected_date"]) + PREGNANCY_GRACE


def pregnant_until(vulnerability):
    """The last day a recorded pregnancy counts (ISO date), or None without one."""
    pregnancy = (vulnerability or {}).get("pregnancy")
    if not pregnancy or not pregnancy.get("expected_date"):
        return None
    return (_to_date(pregnancy["expected_date"]) + PREGNANCY_GRACE).isoformat()


def derive_categories(personal, vulnerability, on):
    """Sorted category codes of a resident at date ``on``: recorded vulnerability
    (disability, welfare band, chronic illness, care needs, a current pregnancy) and
    derived ones (child under 18, elderly from 60; ages stop at death)."""
    on = _to_date(on)
    categories = set()
    disability = vulnerability.get("disability")
    if disability and disability.get("categories"):
        categories.update(f"disability.{c}" for c in disability["categories"])
    welfare = vulnerability.get("welfare")
    if welfare and welfare.get("decile"):
        categories.add(welfare_band(welfare["decile"]))
    health = vulnerability.get("health")
    if health and health.get("chronic_conditions"):
        categories.add("chronic_illness")
    if health and health.get("care_needs"):
        categories.add("care_needs")
    if pregnancy_current(vulnerability.get("pregnancy"), on):
        categories.add("pregnant")
    age = _age_of(personal, on)
    if age < ADULT_AGE:
        categories.add("child")
    if age >= ELDERLY_AGE:
        categories.add("elderly")
    return sorted(categories)


def _age_of(personal, on):
    death = (personal.get("death") or {}).get("date")
    end = min(_to_date(on), _to_date(death)) if death else _to_date(on)
    return age_on(personal["birth_date"], end)


def compute_public(personal, vulnerability, on):
    """The coarse public attributes of a resident at date ``on``: RW, sex, age band and
    categories (see :data:`PUBLIC_KEYS`)."""
    return {
        "rw": personal["rw"],
        "sex": personal["sex"],
        "age_band": age_band(_age_of(personal, on)),
        "categories": derive_categories(personal, vulnerability, on),
    }


# -- argument checks --------------------------------------------------------------------


def _invalid(field, message):
    return ValidationError({field: [message]})


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _text_problem(value, required=True, max_length=1000):
    if value is None:
        return "A non-empty text is required." if required else None
    if not isinstance(value, str) or (required and not value.strip()):
        return "A non-empty text is required." if required else "Must be a text."
    if len(value) > max_length:
        return f"At most {max_length} characters."
    return None


def _choice_problem(value, choices):
    return None if value in choices else f"Must be one of: {', '.join(choices)}."


def _unit_problem(value, name):
    return None if _is_int(value) and 1 <= value <= 99 else f"Must be an {name} number 1-99."


def _date_problem(value, today=None, required=True):
    if value is None:
        return "A date is required." if required else None
    try:
        parsed = _to_date(value)
    except (TypeError, ValueError):
        return "Not a valid date (YYYY-MM-DD)."
    if today is not None and parsed > today:
        return "Must not be in the future."
    if parsed < date(1900, 1, 1):
        return "Must not be before 1900."
    return None


def _kk_problem(value):
    if value is None:
        return None
    if not isinstance(value, str) or not _KK.fullmatch(value):
        return "Must be exactly 16 digits."
    return region_problem(value[:6]) and "Does not start with a valid region code."


def _place_problem(value):
    """A place of origin or destination: ``{"region": code|None, "address": text|None}``."""
    if not isinstance(value, dict) or set(value) - {"region", "address"}:
        return "Give a region code and/or an address."
    region = value.get("region")
    if region is not None and (not isinstance(region, str) or not REGION_CODE.match(region)):
        return "region must be a region code like 32.75 or 31.71.05.1001."
    if _text_problem(value.get("address"), required=False, max_length=300):
        return "address must be a text of at most 300 characters."
    if region is None and not value.get("address"):
        return "Give a region code and/or an address."
    return None


def _raise_if(problems):
    problems = {field: [message] for field, message in problems.items() if message}
    if problems:
        raise ValidationError(problems)


def _require_mapping(data, what):
    if not isinstance(data, dict):
        raise _invalid("_schema", f"{what} must be an object.")
    return data


def _person_problems(values, today):
    """Problems of population-record fields present in ``values`` (state-free)."""
    checks = {
        "sex": lambda v: _choice_problem(v, SEXES),
        "religion": lambda v: _choice_problem(v, RELIGIONS),
        "education": lambda v: _choice_problem(v, EDUCATION_LEVELS),
        "occupation": lambda v: _choice_problem(v, OCCUPATIONS),
        "marital_status": lambda v: _choice_problem(v, MARITAL_STATUSES),
        "citizenship": lambda v: _choice_problem(v, CITIZENSHIPS),
        "relationship": lambda v: None if v is None else _choice_problem(v, RELATIONSHIPS),
        "name": lambda v: _text_problem(v, max_length=200),
        "birth_place": lambda v: _text_problem(v, max_length=100),
        "address": lambda v: _text_problem(v, max_length=300),
        "rt": lambda v: _unit_problem(v, "RT"),
        "rw": lambda v: _unit_problem(v, "RW"),
        "birth_date": lambda v: _date_problem(v, today),
        "kk": _kk_problem,
        "nik": lambda v: (
            None
            if isinstance(v, str) and re.fullmatch(r"[0-9]{16}", v)
            else "Must be exactly 16 digits."
        ),
    }
    return {field: checks[field](value) for field, value in values.items() if field in checks}


def _nik_agreement(personal, today):
    """ValidationError unless the NIK agrees with birth date and sex (no values echoed)."""
    validate_nik(personal["nik"], personal["birth_date"], personal["sex"], today)


# -- role and scope checks --------------------------------------------------------------


def _require_scope(actor, kelurahan, rw=None, rt=None):
    if not actor.covers(kelurahan, rw, rt):
        where = f"kelurahan {kelurahan}" + (f", RW {rw}" if rw is not None else "")
        raise Forbidden(f"the scope of role {actor.role} does not cover {where}")


def _require_staff(actor, kelurahan, action, roles=KELURAHAN_STAFF):
    if actor.role not in roles:
        raise Forbidden(f"role {actor.role} cannot {action}; only {', '.join(roles)}")
    _require_scope(actor, kelurahan)


def _require_kelurahan_code(kelurahan):
    if not isinstance(kelurahan, str) or not _KELURAHAN_CODE.match(kelurahan):
        raise _invalid("kelurahan", "Not a kelurahan code of Kota Bekasi.")


def _history_entry(type_, meta, summary, reason=None):
    return {
        "type": type_,
        "actor": json_copy(meta.get("actor")),
        "time": meta.get("time"),
        "summary": summary,
        "reason": reason,
    }


def _empty_vulnerability():
    return dict.fromkeys(VULNERABILITY_KINDS)


# -- resident ---------------------------------------------------------------------------

#: Population-record fields of a registration, in event order, and their defaults.
REGISTRATION_FIELDS = (
    "nik",
    "kk",
    "relationship",
    "name",
    "sex",
    "birth_place",
    "birth_date",
    "religion",
    "education",
    "occupation",
    "marital_status",
    "citizenship",
    "address",
    "rt",
    "rw",
)
_REGISTRATION_OPTIONAL = {"kk": None, "relationship": None}
_ENTRY_DEFAULTS = {"entry": "existing", "entry_date": None, "origin": None}


class Resident(Aggregate):
    """A resident of the kelurahan (stream ``resident-<uuid>``).

    Status: alive -> moved_out (-> alive by :meth:`move_in`), alive -> missing ->
    alive (:meth:`report_found`), alive|missing -> dead; any -> erased (final: every
    later command is a Conflict ``resident was erased``).

    State: ``kelurahan``, ``status``, ``family_id``; ``personal`` (the population
    record plus ``entry``, ``departure``, ``death``, ``missing`` details; None once
    shredded or erased); ``public``; ``vulnerability`` (kind -> record or None);
    ``vulnerability_history``; ``erasure``; ``history`` (never personal).
    """

    noun = "resident"

    def __init__(self, id):
        super().__init__(id)
        self.kelurahan = None
        self.status = None
        self.family_id = None
        self.personal = None
        self.public = None
        self.vulnerability = _empty_vulnerability()
        self.vulnerability_history = []
        self.erasure = None
        self.history = []

    def snapshot(self, copy=True):
        """The state as a JSON-native dict (the shape of ``ResidentView``)."""
        state = {
            "id": self.id,
            "version": self.version,
            "kelurahan": self.kelurahan,
            "status": self.status,
            "family_id": self.family_id,
            "personal": self.personal,
            "public": self.public,
            "vulnerability": self.vulnerability,
            "vulnerability_history": self.vulnerability_history,
            "erasure": self.erasure,
            "history": self.history,
        }
        return json_copy(state) if copy else state

    def categories_on(self, on):
        """The resident's categories at another date (age and pregnancy move on);
        the last public categories when the personal data is gone."""
        if self.personal is None:
            return list((self.public or {}).get("categories", []))
        return derive_categories(self.personal, self.vulnerability, on)

    def flags_on(self, on):
        """``{"elderly", "child", "pregnant"}`` booleans at date ``on``."""
        categories = self.categories_on(on)
        return {flag: flag in categories for flag in ("elderly", "child", "pregnant")}

    # -- guards ------------------------------------------------------------------------

    def _require_status(self, allowed, done):
        if self.status == "erased":
            raise Conflict("resident was erased")
        if allowed is not None and self.status not in allowed:
            raise Conflict(
                f"resident is {self.status}; only a resident who is {' or '.join(allowed)} "
                f"can be {done}"
            )
        if self.personal is None:
            raise Conflict("the resident's personal data is not available")

    def _staff(self, actor, action, roles=KELURAHAN_STAFF):
        self._require_exists()
        _require_staff(actor, self.kelurahan, action, roles)

    def _public_after(self, meta, personal=None, vulnerability=None):
        return compute_public(
            personal if personal is not None else self.personal,
            vulnerability if vulnerability is not None else self.vulnerability,
            local_date(meta),
        )

    def _record(self, type_, data, personal, meta, new_personal=None, new_vulnerability=None):
        data = {**data, "personal": json_copy(personal)}
        data["public"] = self._public_after(meta, new_personal, new_vulnerability)
        self.record(type_, data, meta)

    # -- life cycle --------------------------------------------------------------------

    @classmethod
    def register(cls, id, actor, data, meta, nik_taken=False):
        """Register a resident from RegisterResident data plus ``kelurahan``.

        ``entry`` is ``existing`` (default), ``birth`` or ``move_in`` (which needs an
        ``origin`` ``{"region", "address"}``); ``entry_date`` optional. ``nik_taken``
        is the service's answer from its NIK index: a Conflict that names the
        problem, not the other person. Records ``resident.registered``.
        """
        _require_mapping(data, "Resident data")
        _require_kelurahan_code(data.get("kelurahan"))
        _require_staff(actor, data["kelurahan"], "register residents")
        today = local_date(meta)
        personal, entry = _registration(data, today)
        if nik_taken:
            raise Conflict(
                "a resident with this NIK is already registered; find and correct that "
                "record instead"
            )
        resident = cls(id)
        public = compute_public(personal, _empty_vulnerability(), today)
        event = {"kelurahan": data["kelurahan"], "entry": entry}
        resident.record(
            "resident.registered", {**event, "personal": personal, "public": public}, meta
        )
        return resident

    def move_within(self, actor, data, meta):
        """Move to another address, RT and/or RW of the same kelurahan:
        ``{"rw", "rt", "address", "date"?}``; records ``resident.moved``."""
        self._staff(actor, "record moves")
        data = _require_mapping(data, "Move")
        today = local_date(meta)
        _raise_if(
            {
                "rw": _unit_problem(data.get("rw"), "RW"),
                "rt": _unit_problem(data.get("rt"), "RT"),
                "address": _text_problem(data.get("address"), max_length=300),
                "date": _date_problem(data.get("date"), today, required=False),
            }
        )
        self._require_status(("alive",), "moved")
        move = {f: data[f] for f in ("address", "rt", "rw")}
        if all(self.personal[f] == v for f, v in move.items()):
            raise _invalid("_schema", "The resident already lives at this address.")
        personal = {**move, "date": data.get("date")}
        after = {**self.personal, **move}
        self._record("resident.moved", {}, personal, meta, new_personal=after)

    def move_out(self, actor, data, meta):
        """Leave the kelurahan: ``{"date", "destination": {"region"?, "address"?},
        "reason": MOVE_OUT_REASONS}``; records ``resident.moved_out``."""
        self._staff(actor, "record moves")
        data = _require_mapping(data, "Move out")
        today = local_date(meta)
        _raise_if(
            {
                "date": _date_problem(data.get("date"), today),
                "destination": _place_problem(data.get("destination")),
                "reason": _choice_problem(data.get("reason", "other"), MOVE_OUT_REASONS),
            }
        )
        self._require_status(("alive",), "moved out")
        self._require_not_before_birth(data["date"])
        personal = {"date": data["date"], "destination": _place(data["destination"])}
        self._record("resident.moved_out", {"reason": data.get("reason", "other")}, personal, meta)

    def move_in(self, actor, data, meta):
        """A resident who had moved out comes back: ``{"rw", "rt", "address", "date",
        "origin"?}``; records ``resident.moved_in``. (A newcomer is registered with
        ``entry="move_in"``.)"""
        self._staff(actor, "record moves")
        data = _require_mapping(data, "Move in")
        today = local_date(meta)
        origin = data.get("origin")
        _raise_if(
            {
                "rw": _unit_problem(data.get("rw"), "RW"),
                "rt": _unit_problem(data.get("rt"), "RT"),
                "address": _text_problem(data.get("address"), max_length=300),
                "date": _date_problem(data.get("date"), today),
                "origin": origin is not None and _place_problem(origin),
            }
        )
        self._require_status(("moved_out",), "moved back in")
        move = {f: data[f] for f in ("address", "rt", "rw")}
        personal = {**move, "date": data["date"], "origin": _place(origin) if origin else None}
        after = {**self.personal, **move}
        self._record("resident.moved_in", {}, personal, meta, new_personal=after)

    def record_death(self, actor, data, meta):
        """``{"date", "place"?, "cause"?, "certificate"?}`` (certificate: akta kematian
        number or file reference); records ``resident.died``."""
        self._staff(actor, "record deaths")
        data = _require_mapping(data, "Death")
        today = local_date(meta)
        _raise_if(
            {
                "date": _date_problem(data.get("date"), today),
                "place": _text_problem(data.get("place"), required=False, max_length=200),
                "cause": _text_problem(data.get("cause"), required=False, max_length=500),
                "certificate": _text_problem(
                    data.get("certificate"), required=False, max_length=300
                ),
            }
        )
        self._require_status(("alive", "missing"), "recorded as dead")
        self._require_not_before_birth(data["date"])
        personal = {f: data.get(f) for f in ("date", "place", "cause", "certificate")}
        after = {**self.personal, "death": personal}
        self._record("resident.died", {}, personal, meta, new_personal=after)

    def report_missing(self, actor, data, meta):
        """``{"date", "note"?}``; records ``resident.missing_reported``."""
        self._staff(actor, "report missing residents")
        data = _require_mapping(data, "Report")
        _raise_if(
            {
                "date": _date_problem(data.get("date"), local_date(meta)),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("alive",), "reported missing")
        self._require_not_before_birth(data["date"])
        personal = {"date": data["date"], "note": data.get("note")}
        self._record("resident.missing_reported", {}, personal, meta)

    def report_found(self, actor, data, meta):
        """A missing resident is back: ``{"date", "note"?}``; records ``resident.found``."""
        self._staff(actor, "report found residents")
        data = _require_mapping(data, "Report")
        _raise_if(
            {
                "date": _date_problem(data.get("date"), local_date(meta)),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("missing",), "reported found")
        personal = {"date": data["date"], "note": data.get("note")}
        self._record("resident.found", {}, personal, meta)

    def correct(self, actor, data, meta, nik_taken=False):
        """Correct population-record fields: ``{"changes": {field: value},
        "reason": CORRECTION_REASONS, "note": text}`` (the note explains, e.g. which
        document; it is personal). Only CORRECTABLE_FIELDS; the NIK must still agree
        with birth date and sex; ``nik_taken`` is the service's index answer for a
        changed NIK. Records ``resident.corrected`` with the changed field names."""
        self._staff(actor, "correct resident records")
        data = _require_mapping(data, "Correction")
        changes = data.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise _invalid("changes", "Give at least one field to correct.")
        unknown = sorted(str(f) for f in changes if f not in CORRECTABLE_FIELDS)
        if unknown:
            raise ValidationError({f: ["This field cannot be corrected."] for f in unknown})
        today = local_date(meta)
        _raise_if(
            {
                **_person_problems(changes, today),
                "reason": _choice_problem(data.get("reason"), CORRECTION_REASONS),
                "note": _text_problem(data.get("note")),
            }
        )
        self._require_status(None, "corrected")
        changed = {f: v for f, v in changes.items() if self.personal.get(f) != v}
        if not changed:
            raise _invalid("changes", "The correction changes nothing.")
        after = {**self.personal, **json_copy(changed)}
        if {"nik", "birth_date", "sex"} & set(changed):
            _nik_agreement(after, today)
        if "nik" in changed and nik_taken:
            raise Conflict("a resident with this NIK is already registered")
        event = {"changed": sorted(changed), "reason": data["reason"]}
        personal = {"changes": changed, "note": data["note"]}
        self._record("resident.corrected", event, personal, meta, new_personal=after)

    def set_family(self, actor, data, meta):
        """Keep the record's family in step with a Family aggregate: ``{"family_id",
        "kk", "relationship"}`` (all None when the resident leaves a family); records
        ``resident.family_changed``. The service calls it for each member a family
        command touches."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Family")
        family_id, kk, relationship = (data.get(f) for f in ("family_id", "kk", "relationship"))
        _raise_if(
            {
                "family_id": None
                if family_id is None or isinstance(family_id, str)
                else "Must be a family id.",
                "kk": _kk_problem(kk),
                "relationship": None
                if relationship is None
                else _choice_problem(relationship, RELATIONSHIPS),
            }
        )
        if (family_id is None) != (kk is None) or (family_id is None) != (relationship is None):
            raise _invalid("_schema", "Give family_id, kk and relationship together, or none.")
        self._require_status(None, "moved between families")
        if (self.family_id, self.personal.get("kk"), self.personal.get("relationship")) == (
            family_id,
            kk,
            relationship,
        ):
            raise _invalid("_schema", "The family does not change.")
        personal = {"kk": kk, "relationship": relationship}
        self._record("resident.family_changed", {"family_id": family_id}, personal, meta)

    def _require_not_before_birth(self, day):
        if _to_date(day) < _to_date(self.personal["birth_date"]):
            raise _invalid("date", "Must not be before the birth date.")

    # -- vulnerability -----------------------------------------------------------------

    def record_disability(self, actor, data, meta):
        """``{"categories": [UU 8/2016 codes], "consent": {"given_by": self|guardian,
        "date", "reference"?}, "source": SOURCES, "note"?}``.

        Refused with ValidationError (field ``consent``) without a consent: consent is
        an argument the command lacks, not a state of the resident (UU 27/2022 needs
        the resident's or a guardian's consent to process disability data). Two or
        more of the four kinds add ``multiple``. Replaces any earlier record; records
        ``resident.disability_recorded``.
        """
        self._staff(actor, "record vulnerability")
        data = _require_mapping(data, "Disability")
        today = local_date(meta)
        categories = data.get("categories")
        if (
            not isinstance(categories, list)
            or not categories
            or any(c not in DISABILITY_CATEGORIES for c in categories)
        ):
            raise _invalid(
                "categories", f"Give one or more of: {', '.join(DISABILITY_CATEGORIES)}."
            )
        _raise_if(
            {
                "consent": _consent_problem(data.get("consent"), today),
                "source": _choice_problem(data.get("source"), SOURCES),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("alive",), "given a disability record")
        kinds = set(categories)
        if len(kinds - {"multiple"}) >= 2:
            kinds.add("multiple")
        consent = data["consent"]
        personal = {
            "categories": [c for c in DISABILITY_CATEGORIES if c in kinds],
            "consent": {
                "given_by": consent["given_by"],
                "date": consent["date"],
                "reference": consent.get("reference"),
            },
            "note": data.get("note"),
        }
        self._record_vulnerability("disability", data["source"], personal, meta)

    def record_welfare(self, actor, data, meta):
        """``{"decile": 1-10, "source": SOURCES (usually dtsen), "as_of": date,
        "note"?}``; records ``resident.welfare_recorded``."""
        self._staff(actor, "record vulnerability")
        data = _require_mapping(data, "Welfare")
        decile = data.get("decile")
        _raise_if(
            {
                "decile": None
                if _is_int(decile) and 1 <= decile <= 10
                else "Must be a whole number from 1 to 10.",
                "source": _choice_problem(data.get("source"), SOURCES),
                "as_of": _date_problem(data.get("as_of"), local_date(meta)),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("alive",), "given a welfare record")
        personal = {"decile": int(decile), "as_of": data["as_of"], "note": data.get("note")}
        self._record_vulnerability("welfare", data["source"], personal, meta)

    def record_health(self, actor, data, meta):
        """``{"chronic_conditions": [CHRONIC_CONDITIONS], "care_needs": [CARE_NEEDS],
        "source", "note"?}`` (at least one condition or need); records
        ``resident.health_recorded``."""
        self._staff(actor, "record vulnerability")
        data = _require_mapping(data, "Health")
        conditions, needs = data.get("chronic_conditions", []), data.get("care_needs", [])
        _raise_if(
            {
                "chronic_conditions": _codes_problem(conditions, CHRONIC_CONDITIONS),
                "care_needs": _codes_problem(needs, CARE_NEEDS),
                "source": _choice_problem(data.get("source"), SOURCES),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        if not conditions and not needs:
            raise _invalid("_schema", "Give a chronic condition or a care need.")
        self._require_status(("alive",), "given a health record")
        personal = {
            "chronic_conditions": [c for c in CHRONIC_CONDITIONS if c in conditions],
            "care_needs": [c for c in CARE_NEEDS if c in needs],
            "note": data.get("note"),
        }
        self._record_vulnerability("health", data["source"], personal, meta)

    def record_pregnancy(self, actor, data, meta):
        """``{"expected_date", "source", "note"?}``: the pregnancy counts until
        PREGNANCY_GRACE after the expected date; records ``resident.pregnancy_recorded``."""
        self._staff(actor, "record vulnerability")
        data = _require_mapping(data, "Pregnancy")
        today = local_date(meta)
        expected = data.get("expected_date")
        problem = _date_problem(expected)
        if problem is None and not today <= _to_date(expected) <= today + timedelta(days=300):
            problem = "Must be a date within the next 300 days."
        _raise_if(
            {
                "expected_date": problem,
                "source": _choice_problem(data.get("source"), SOURCES),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("alive",), "given a pregnancy record")
        if self.personal["sex"] != "P":
            raise Conflict("a pregnancy can only be recorded for a woman")
        personal = {"expected_date": expected, "note": data.get("note")}
        self._record_vulnerability("pregnancy", data["source"], personal, meta)

    def clear(self, actor, kind, data, meta):
        """End a vulnerability record of ``kind`` (disability, welfare, health,
        pregnancy): ``{"reason", "note"?}`` with reason from CLEAR_REASONS
        (PREGNANCY_END_REASONS for a pregnancy); records ``resident.<kind>_cleared``.
        Allowed in any status but erased (consent can be withdrawn after a move)."""
        self._staff(actor, "clear vulnerability records")
        if kind not in VULNERABILITY_KINDS:
            raise _invalid("kind", f"Must be one of: {', '.join(VULNERABILITY_KINDS)}.")
        data = _require_mapping(data, "Clearing")
        reasons = PREGNANCY_END_REASONS if kind == "pregnancy" else CLEAR_REASONS
        _raise_if(
            {
                "reason": _choice_problem(data.get("reason"), reasons),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(None, f"cleared of a {kind} record")
        if self.vulnerability.get(kind) is None:
            raise Conflict(f"resident has no {kind} record to clear")
        vulnerability = {**self.vulnerability, kind: None}
        self._record(
            f"resident.{kind}_cleared",
            {"reason": data["reason"]},
            {"note": data.get("note")},
            meta,
            new_vulnerability=vulnerability,
        )

    def clear_disability(self, actor, data, meta):
        self.clear(actor, "disability", data, meta)

    def clear_welfare(self, actor, data, meta):
        self.clear(actor, "welfare", data, meta)

    def clear_health(self, actor, data, meta):
        self.clear(actor, "health", data, meta)

    def clear_pregnancy(self, actor, data, meta):
        self.clear(actor, "pregnancy", data, meta)

    def _record_vulnerability(self, kind, source, personal, meta):
        vulnerability = {**self.vulnerability, kind: personal}
        self._record(
            f"resident.{kind}_recorded",
            {"source": source},
            personal,
            meta,
            new_vulnerability=vulnerability,
        )

    # -- erasure -----------------------------------------------------------------------

    def erase(self, actor, data, meta):
        """Erase the resident on a request: ``{"legal_basis": ERASURE_BASES,
        "request_reference": text}`` (the erasure request's letter number or file,
        no personal data), by lurah or admin only. Records ``resident.erased`` with
        ``personal`` None and the last public part; the service then deletes the
        resident's key. Every later command is a Conflict."""
        self._staff(actor, "erase residents", ERASING_ROLES)
        data = _require_mapping(data, "Erasure")
        _raise_if(
            {
                "legal_basis": _choice_problem(data.get("legal_basis"), ERASURE_BASES),
                "request_reference": _text_problem(data.get("request_reference"), max_length=300),
            }
        )
        if self.status == "erased":
            raise Conflict("resident was erased")
        event = {
            "legal_basis": data["legal_basis"],
            "request_reference": data["request_reference"],
            "personal": None,
            "public": json_copy(self.public),
        }
        self.record("resident.erased", event, meta)

    # -- folding events into state -----------------------------------------------------

    def _note(self, type_, meta, summary, reason=None):
        self.history.append(_history_entry(type_, meta, summary, reason))

    def _fold_public(self, data):
        if data.get("public") is not None:
            self.public = json_copy(data["public"])

    def _merge_personal(self, data, **updates):
        """Fold personal updates in when both the state and the event carry personal data."""
        if self.personal is not None and data.get("personal") is not None:
            self.personal.update(json_copy(updates))

    def on_registered(self, data, meta):
        self.kelurahan = data["kelurahan"]
        self.status = "alive"
        personal = data.get("personal")
        if personal is not None:
            self.personal = json_copy(personal)
            self.personal.update(
                {
                    "entry": {
                        "kind": data["entry"],
                        "date": personal.get("entry_date"),
                        "origin": json_copy(personal.get("origin")),
                    },
                    "departure": None,
                    "death": None,
                    "missing": None,
                }
            )
            del self.personal["entry_date"], self.personal["origin"]
        self._fold_public(data)
        self._note("resident.registered", meta, f"registered ({data['entry']})")

    def on_moved(self, data, meta):
        p = data.get("personal") or {}
        self._merge_personal(data, **{f: p.get(f) for f in ("address", "rt", "rw")})
        self._fold_public(data)
        self._note("resident.moved", meta, "moved within the kelurahan")

    def on_moved_out(self, data, meta):
        self.status = "moved_out"
        self._merge_personal(data, departure=data.get("personal"))
        self._fold_public(data)
        self._note("resident.moved_out", meta, "moved out", data.get("reason"))

    def on_moved_in(self, data, meta):
        self.status = "alive"
        p = data.get("personal") or {}
        updates = {f: p.get(f) for f in ("address", "rt", "rw")}
        entry = {"kind": "move_in", "date": p.get("date"), "origin": p.get("origin")}
        self._merge_personal(data, **updates, entry=entry, departure=None)
        self._fold_public(data)
        self._note("resident.moved_in", meta, "moved back in")

    def on_died(self, data, meta):
        self.status = "dead"
        self._merge_personal(data, death=data.get("personal"))
        self._fold_public(data)
        self._note("resident.died", meta, "died")

    def on_missing_reported(self, data, meta):
        self.status = "missing"
        self._merge_personal(data, missing=data.get("personal"))
        self._fold_public(data)
        self._note("resident.missing_reported", meta, "reported missing")

    def on_found(self, data, meta):
        self.status = "alive"
        self._merge_personal(data, missing=None)
        self._fold_public(data)
        self._note("resident.found", meta, "reported found")

    def on_corrected(self, data, meta):
        self._merge_personal(data, **(data.get("personal") or {}).get("changes", {}))
        self._fold_public(data)
        summary = "corrected: " + ", ".join(data["changed"])
        self._note("resident.corrected", meta, summary, data["reason"])

    def on_family_changed(self, data, meta):
        self.family_id = data["family_id"]
        self._merge_personal(data, **(data.get("personal") or {}))
        self._fold_public(data)
        summary = "joined a family" if data["family_id"] else "left the family"
        self._note("resident.family_changed", meta, summary)

    def _fold_recorded(self, kind, data, meta):
        personal = data.get("personal")
        record = {
            **json_copy(personal or {}),
            "source": data["source"],
            "recorded_by": json_copy(meta.get("actor")),
            "recorded_at": meta.get("time"),
        }
        self.vulnerability[kind] = record
        self.vulnerability_history.append(
            {
                "kind": kind,
                "action": "recorded",
                "details": json_copy(personal),
                "source": data["source"],
                "reason": None,
                "actor": json_copy(meta.get("actor")),
                "time": meta.get("time"),
            }
        )
        self._fold_public(data)
        self._note(f"resident.{kind}_recorded", meta, f"{kind} recorded", data["source"])

    def _fold_cleared(self, kind, data, meta):
        self.vulnerability[kind] = None
        self.vulnerability_history.append(
            {
                "kind": kind,
                "action": "cleared",
                "details": json_copy(data.get("personal")),
                "source": None,
                "reason": data["reason"],
                "actor": json_copy(meta.get("actor")),
                "time": meta.get("time"),
            }
        )
        self._fold_public(data)
        self._note(f"resident.{kind}_cleared", meta, f"{kind} cleared", data["reason"])

    def on_disability_recorded(self, data, meta):
        self._fold_recorded("disability", data, meta)

    def on_welfare_recorded(self, data, meta):
        self._fold_recorded("welfare", data, meta)

    def on_health_recorded(self, data, meta):
        self._fold_recorded("health", data, meta)

    def on_pregnancy_recorded(self, data, meta):
        self._fold_recorded("pregnancy", data, meta)

    def on_disability_cleared(self, data, meta):
        self._fold_cleared("disability", data, meta)

    def on_welfare_cleared(self, data, meta):
        self._fold_cleared("welfare", data, meta)

    def on_health_cleared(self, data, meta):
        self._fold_cleared("health", data, meta)

    def on_pregnancy_cleared(self, data, meta):
        self._fold_cleared("pregnancy", data, meta)

    def on_erased(self, data, meta):
        self.status = "erased"
        self.personal = None
        self.vulnerability = _empty_vulnerability()
        self.vulnerability_history = []
        self.erasure = {
            "legal_basis": data["legal_basis"],
            "request_reference": data["request_reference"],
            "actor": json_copy(meta.get("actor")),
            "time": meta.get("time"),
        }
        self._fold_public(data)
        self._note("resident.erased", meta, "erased", data["legal_basis"])


def _place(value):
    return {"region": value.get("region"), "address": value.get("address")}


def _codes_problem(values, choices):
    if not isinstance(values, list) or any(v not in choices for v in values):
        return f"Give a list of: {', '.join(choices)}."
    if len(set(values)) != len(values):
        return "A code is given twice."
    return None


def _consent_problem(consent, today):
    if consent is None:
        return (
            "Consent of the resident or a guardian is required to record disability "
            "data (UU 27/2022)."
        )
    if not isinstance(consent, dict) or set(consent) - {"given_by", "date", "reference"}:
        return "Give given_by (self or guardian), date and optionally a reference."
    if consent.get("given_by") not in CONSENT_GIVERS:
        return "given_by must be self or guardian."
    if _date_problem(consent.get("date"), today):
        return "date must be a valid date, not in the future."
    if _text_problem(consent.get("reference"), required=False, max_length=300):
        return "reference must be a text of at most 300 characters."
    return None


def _registration(data, today):
    """The ``personal`` part of ``resident.registered`` and the entry kind, or
    ValidationError naming every bad field."""
    missing = [
        f for f in REGISTRATION_FIELDS if data.get(f) is None and f not in _REGISTRATION_OPTIONAL
    ]
    if missing:
        raise ValidationError({f: ["Missing data for required field."] for f in missing})
    values = {f: data.get(f, _REGISTRATION_OPTIONAL.get(f)) for f in REGISTRATION_FIELDS}
    entry = data.get("entry") or _ENTRY_DEFAULTS["entry"]
    origin = data.get("origin")
    problems = _person_problems(values, today)
    problems["entry"] = _choice_problem(entry, ENTRY_KINDS)
    problems["entry_date"] = _date_problem(data.get("entry_date"), today, required=False)
    if origin is not None:
        problems["origin"] = _place_problem(origin)
    elif entry == "move_in":
        problems["origin"] = "Required when the resident moves in."
    _raise_if(problems)
    _nik_agreement(values, today)
    if data.get("entry_date") and _to_date(data["entry_date"]) < _to_date(values["birth_date"]):
        raise _invalid("entry_date", "Must not be before the birth date.")
    personal = json_copy(values)
    personal["entry_date"] = data.get("entry_date")
    personal["origin"] = _place(origin) if origin is not None else None
    return personal, entry


# -- family -----------------------------------------------------------------------------


def _members_problem(members):
    if not isinstance(members, list) or not members:
        return "Give the members, each with resident_id and relationship."
    ids = []
    for member in members:
        if (
            not isinstance(member, dict)
            or not isinstance(member.get("resident_id"), str)
            or member.get("relationship") not in RELATIONSHIPS
        ):
            return "Each member needs a resident_id and a relationship code."
        ids.append(member["resident_id"])
    if len(set(ids)) != len(ids):
        return "A resident is listed twice."
    if sum(m["relationship"] == HEAD for m in members) != 1:
        return "Exactly one member must be the kepala_keluarga."
    return None


class Family(Aggregate):
    """A family card (No. KK) and its members (stream ``family-<uuid>``).

    Status: active -> dissolved (when its last member leaves). ``members`` (resident
    ids, in order) are non-personal; the KK number, address and each member's
    relationship are personal (``relationships`` is None once shredded).
    """

    noun = "family"

    def __init__(self, id):
        super().__init__(id)
        self.kelurahan = None
        self.status = None
        self.members = []
        self.relationships = {}  # resident_id -> relationship; None when shredded
        self.kk = None
        self.address = None  # {"address", "rt", "rw"}
        self.rw = None
        self.split_from = None
        self.history = []

    @property
    def head_id(self):
        if self.relationships is None:
            return None
        return next((r for r, rel in self.relationships.items() if rel == HEAD), None)

    def member_list(self):
        """``[{"resident_id", "relationship"}]`` in member order."""
        rel = self.relationships or {}
        return [{"resident_id": r, "relationship": rel.get(r)} for r in self.members]

    def snapshot(self, copy=True):
        """The state as a JSON-native dict (the shape of ``FamilyView``)."""
        state = {
            "id": self.id,
            "version": self.version,
            "kelurahan": self.kelurahan,
            "status": self.status,
            "kk": self.kk,
            "address": self.address,
            "rw": self.rw,
            "head_id": self.head_id,
            "members": self.member_list(),
            "split_from": self.split_from,
            "history": self.history,
        }
        return json_copy(state) if copy else state

    def _require_active(self, done):
        if self.status != "active":
            raise Conflict(f"family is {self.status}; only an active family can be {done}")
        if self.relationships is None:
            raise Conflict("the family's personal data is not available")

    def _staff(self, actor, action):
        self._require_exists()
        _require_staff(actor, self.kelurahan, action)

    def _require_member(self, resident_id, field="resident_id"):
        if resident_id not in self.members:
            raise Conflict(f"resident {resident_id} is not a member of this family")

    def _public(self):
        return {"rw": self.rw}

    @classmethod
    def form(cls, id, actor, data, meta, kk_taken=False, split_from=None):
        """Form a family: ``{"kelurahan", "kk", "address", "rt", "rw", "members":
        [{"resident_id", "relationship"}]}`` with exactly one kepala_keluarga.
        ``kk_taken`` is the service's KK index answer. Records ``family.formed``."""
        _require_mapping(data, "Family data")
        _require_kelurahan_code(data.get("kelurahan"))
        _require_staff(actor, data["kelurahan"], "form families")
        kk = data.get("kk")
        _raise_if(
            {
                "kk": _kk_problem(kk) if kk is not None else "Missing data for required field.",
                "address": _text_problem(data.get("address"), max_length=300),
                "rt": _unit_problem(data.get("rt"), "RT"),
                "rw": _unit_problem(data.get("rw"), "RW"),
                "members": _members_problem(data.get("members")),
            }
        )
        if kk_taken:
            raise Conflict("a family with this KK number is already registered")
        members = [
            {"resident_id": m["resident_id"], "relationship": m["relationship"]}
            for m in data["members"]
        ]
        event = {
            "kelurahan": data["kelurahan"],
            "members": [m["resident_id"] for m in members],
            "split_from": split_from,
            "personal": {
                "kk": kk,
                "address": data["address"],
                "rt": data["rt"],
                "rw": data["rw"],
                "members": members,
            },
            "public": {"rw": data["rw"]},
        }
        family = cls(id)
        family.record("family.formed", event, meta)
        return family

    def add_member(self, actor, data, meta):
        """``{"resident_id", "relationship"}`` (not kepala_keluarga: change the head for
        that); records ``family.member_added``."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Member")
        resident_id, relationship = data.get("resident_id"), data.get("relationship")
        _raise_if(
            {
                "resident_id": None
                if isinstance(resident_id, str)
                else "A resident id is required.",
                "relationship": _choice_problem(relationship, RELATIONSHIPS),
            }
        )
        if relationship == HEAD:
            raise _invalid("relationship", "Use change_head to make a member the head.")
        self._require_active("changed")
        if resident_id in self.members:
            raise Conflict(f"resident {resident_id} is already a member of this family")
        event = {
            "resident_id": resident_id,
            "personal": {"relationship": relationship},
            "public": self._public(),
        }
        self.record("family.member_added", event, meta)

    def remove_member(self, actor, data, meta):
        """``{"resident_id", "reason": MEMBER_REMOVAL_REASONS}``; the head can leave only
        as the last member (change the head first). Records ``family.member_removed``
        and, for the last member, ``family.dissolved``."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Member")
        resident_id = data.get("resident_id")
        _raise_if(
            {
                "resident_id": None
                if isinstance(resident_id, str)
                else "A resident id is required.",
                "reason": _choice_problem(data.get("reason"), MEMBER_REMOVAL_REASONS),
            }
        )
        self._require_active("changed")
        self._require_member(resident_id)
        last = len(self.members) == 1
        if resident_id == self.head_id and not last:
            raise Conflict(
                "the head of the family cannot leave while others remain; change the head first"
            )
        event = {"resident_id": resident_id, "reason": data["reason"]}
        self.record(
            "family.member_removed", {**event, "personal": {}, "public": self._public()}, meta
        )
        if last:
            self.record(
                "family.dissolved",
                {"reason": "no_members", "personal": {}, "public": self._public()},
                meta,
            )

    def forget(self, resident_id, meta):
        """Take an erased resident off the card, their relationship with them (the head
        too: the family keeps no head until one is named). The erasure was authorised;
        records ``family.member_removed`` (reason ``erased``) and, for the last member,
        ``family.dissolved``."""
        if resident_id not in self.members or self.status != "active":
            return
        event = {"resident_id": resident_id, "reason": "erased"}
        self.record(
            "family.member_removed", {**event, "personal": {}, "public": self._public()}, meta
        )
        if not self.members:
            self.record(
                "family.dissolved",
                {"reason": "no_members", "personal": {}, "public": self._public()},
                meta,
            )

    def change_relationship(self, actor, data, meta):
        """``{"resident_id", "relationship"}`` for a member other than the head;
        records ``family.relationship_changed``."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Member")
        resident_id, relationship = data.get("resident_id"), data.get("relationship")
        _raise_if({"relationship": _choice_problem(relationship, RELATIONSHIPS)})
        if relationship == HEAD:
            raise _invalid("relationship", "Use change_head to make a member the head.")
        self._require_active("changed")
        self._require_member(resident_id)
        if resident_id == self.head_id:
            raise Conflict("the head's relationship changes only through change_head")
        if self.relationships.get(resident_id) == relationship:
            raise _invalid("relationship", "The relationship does not change.")
        event = {
            "resident_id": resident_id,
            "personal": {"relationship": relationship},
            "public": self._public(),
        }
        self.record("family.relationship_changed", event, meta)

    def change_head(self, actor, data, meta):
        """``{"resident_id": new head, "previous_head_relationship": code,
        "relationships"?: {resident_id: code}}`` (others' new relationships, e.g. anak
        becoming cucu); records ``family.head_changed`` with every member's
        relationship after the change."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Head")
        new_head = data.get("resident_id")
        previous = data.get("previous_head_relationship")
        others = data.get("relationships") or {}
        if not isinstance(others, dict) or any(
            v not in RELATIONSHIPS or v == HEAD for v in others.values()
        ):
            raise _invalid("relationships", "Map member ids to relationship codes (not the head).")
        _raise_if(
            {
                "resident_id": None if isinstance(new_head, str) else "A resident id is required.",
                "previous_head_relationship": _choice_problem(previous, RELATIONSHIPS)
                or (previous == HEAD and "Must not be kepala_keluarga."),
            }
        )
        self._require_active("changed")
        self._require_member(new_head)
        for resident_id in others:
            self._require_member(resident_id)
        old_head = self.head_id
        if new_head == old_head:
            raise Conflict("this member is already the head of the family")
        relationships = dict(self.relationships)
        if old_head is not None:
            relationships[old_head] = previous
        relationships.update(others)
        relationships[new_head] = HEAD
        members = [{"resident_id": r, "relationship": relationships[r]} for r in self.members]
        event = {
            "resident_id": new_head,
            "personal": {"members": members},
            "public": self._public(),
        }
        self.record("family.head_changed", event, meta)

    def move(self, actor, data, meta):
        """The family's address: ``{"address", "rt", "rw"}``; records ``family.moved``."""
        self._staff(actor, "change families")
        data = _require_mapping(data, "Address")
        _raise_if(
            {
                "address": _text_problem(data.get("address"), max_length=300),
                "rt": _unit_problem(data.get("rt"), "RT"),
                "rw": _unit_problem(data.get("rw"), "RW"),
            }
        )
        self._require_active("moved")
        address = {f: data[f] for f in ("address", "rt", "rw")}
        event = {"personal": address, "public": {"rw": data["rw"]}}
        self.record("family.moved", event, meta)

    # -- folding -----------------------------------------------------------------------

    def _note(self, type_, meta, summary, reason=None):
        self.history.append(_history_entry(type_, meta, summary, reason))

    def _fold_public(self, data):
        if data.get("public"):
            self.rw = data["public"]["rw"]

    def on_formed(self, data, meta):
        self.kelurahan = data["kelurahan"]
        self.status = "active"
        self.members = list(data["members"])
        self.split_from = data.get("split_from")
        personal = data.get("personal")
        if personal is None:
            self.relationships = None
        else:
            self.relationships = {m["resident_id"]: m["relationship"] for m in personal["members"]}
            self.kk = personal["kk"]
            self.address = {f: personal[f] for f in ("address", "rt", "rw")}
        self._fold_public(data)
        summary = "formed" + (
            f" by a split from family {self.split_from}" if self.split_from else ""
        )
        self._note("family.formed", meta, summary)

    def on_member_added(self, data, meta):
        self.members.append(data["resident_id"])
        if self.relationships is not None and data.get("personal") is not None:
            self.relationships[data["resident_id"]] = data["personal"]["relationship"]
        self._note("family.member_added", meta, f"member {data['resident_id']} added")

    def on_member_removed(self, data, meta):
        self._drop([data["resident_id"]])
        if data["reason"] == "erased":  # the card's history no longer names them either
            for entry in self.history:
                entry["summary"] = entry["summary"].replace(data["resident_id"], "(erased)")
            self._note("family.member_removed", meta, "an erased member removed", "erased")
            return
        self._note(
            "family.member_removed", meta, f"member {data['resident_id']} removed", data["reason"]
        )

    def on_relationship_changed(self, data, meta):
        if self.relationships is not None and data.get("personal") is not None:
            self.relationships[data["resident_id"]] = data["personal"]["relationship"]
        self._note(
            "family.relationship_changed", meta, f"relationship of {data['resident_id']} changed"
        )

    def on_head_changed(self, data, meta):
        if self.relationships is not None and data.get("personal") is not None:
            self.relationships = {
                m["resident_id"]: m["relationship"] for m in data["personal"]["members"]
            }
        self._note("family.head_changed", meta, f"head changed to {data['resident_id']}")

    def on_moved(self, data, meta):
        if data.get("personal") is not None:
            self.address = json_copy(data["personal"])
        self._fold_public(data)
        self._note("family.moved", meta, "moved")

    def on_split(self, data, meta):
        self._drop(data["members"])
        self._note(
            "family.split",
            meta,
            f"{len(data['members'])} members formed family {data['new_family_id']}",
        )

    def on_dissolved(self, data, meta):
        self.status = "dissolved"
        self._note("family.dissolved", meta, "dissolved", data["reason"])

    def _drop(self, resident_ids):
        self.members = [r for r in self.members if r not in resident_ids]
        if self.relationships is not None:
            for resident_id in resident_ids:
                self.relationships.pop(resident_id, None)


def split(actor, source, new_id, data, meta, kk_taken=False):
    """Form family ``new_id`` from members of ``source``: ``data`` as for
    :meth:`Family.form` (without kelurahan: the source's). Every listed member must
    belong to ``source`` and one of them heads the new family; the source's head
    stays (so someone always stays with it). Checks both sides, then records
    ``family.split`` on the source and ``family.formed`` (with ``split_from``) on the
    new family. Returns ``(source, new_family)``."""
    source._staff(actor, "split families")
    data = _require_mapping(data, "Family data")
    _raise_if({"members": _members_problem(data.get("members"))})
    source._require_active("split")
    leaving = [m["resident_id"] for m in data["members"]]
    for resident_id in leaving:
        source._require_member(resident_id)
    if source.head_id in leaving:
        raise Conflict("the head of the family stays; change the head before the split")
    new_family = Family.form(
        new_id, actor, {**data, "kelurahan": source.kelurahan}, meta, kk_taken, source.id
    )
    event = {
        "new_family_id": new_id,
        "members": leaving,
        "personal": {},
        "public": source._public(),
    }
    source.record("family.split", event, meta)
    return source, new_family


# -- service requests -------------------------------------------------------------------


class ServiceRequest(Aggregate):
    """A request for help carried by the Pamor workers (stream ``request-<uuid>``).

    Status: open -> assigned -> in_progress -> done; cancelled from any but done.
    The target is done within :data:`SERVICE_TARGET` (24 h) of raising.
    """

    noun = "service request"

    def __init__(self, id):
        super().__init__(id)
        self.kelurahan = None
        self.status = None
        self.kind = None
        self.resident_id = None
        self.rw = None
        self.personal = None  # {"rt", "note"}, outcome note, cancel reason
        self.raised_by = None
        self.raised_at = None
        self.assigned_to = None
        self.assigned_at = None
        self.started_at = None
        self.closed_at = None
        self.outcome = None
        self.history = []

    @property
    def due_at(self):
        if self.raised_at is None:
            return None
        return (moment_of({"time": self.raised_at}) + SERVICE_TARGET).isoformat()

    def breached(self, now):
        """True when the request was not done within 24 h of raising: for an open
        request, ``now`` (datetime or ISO string) is past the due time; a done or
        cancelled one breached when it closed after the due time."""
        if self.status is None:
            return False
        due = moment_of({"time": self.raised_at}) + SERVICE_TARGET
        if self.status in ("done", "cancelled"):
            return moment_of({"time": self.closed_at}) > due
        return moment_of({"time": now}) > due

    def snapshot(self, copy=True, now=None):
        """The state as a JSON-native dict (the shape of ``ServiceRequestView``);
        ``breached`` is None for an open request unless ``now`` is given."""
        closed = self.status in ("done", "cancelled")
        state = {
            "id": self.id,
            "version": self.version,
            "kelurahan": self.kelurahan,
            "status": self.status,
            "kind": self.kind,
            "resident_id": self.resident_id,
            "rw": self.rw,
            "personal": self.personal,
            "raised_by": self.raised_by,
            "raised_at": self.raised_at,
            "due_at": self.due_at,
            "target_hours": int(SERVICE_TARGET.total_seconds() // 3600),
            "breached": self.breached(now) if closed or now is not None else None,
            "assigned_to": self.assigned_to,
            "assigned_at": self.assigned_at,
            "started_at": self.started_at,
            "closed_at": self.closed_at,
            "outcome": self.outcome,
            "history": self.history,
        }
        return json_copy(state) if copy else state

    def _require_worker(self, actor, action, self_only=True):
        """Staff of the kelurahan, or a pamor of the request's RW (``self_only``: the
        pamor it is assigned to)."""
        if actor.role in KELURAHAN_STAFF:
            _require_scope(actor, self.kelurahan)
            return
        if actor.role != "pamor":
            raise Forbidden(f"role {actor.role} cannot {action}; only pamor and {_STAFF_NAMES}")
        _require_rw_scope(actor, self.kelurahan, self.rw)
        if self_only and self.assigned_to != actor.user_id:
            raise Forbidden(f"a pamor can only {action} for requests assigned to them")

    def _public(self):
        return {"rw": self.rw}

    @classmethod
    def raise_request(cls, id, actor, data, meta):
        """Raise a request: ``{"kelurahan", "kind": REQUEST_KINDS, "resident_id", "rw",
        "rt"?, "note"?}`` by staff, a pamor or ketua RW of that RW, or a ketua RT of
        that RT (who must give ``rt``). Records ``request.raised``."""
        _require_mapping(data, "Request")
        _require_kelurahan_code(data.get("kelurahan"))
        kelurahan, rw, rt = data["kelurahan"], data.get("rw"), data.get("rt")
        if actor.role not in REQUEST_RAISERS:
            raise Forbidden(
                f"role {actor.role} cannot raise service requests; only {', '.join(REQUEST_RAISERS)}"
            )
        if actor.role in KELURAHAN_STAFF:
            _require_scope(actor, kelurahan)
        else:
            _require_rw_scope(actor, kelurahan, rw, rt if actor.role == "ketua_rt" else None)
        resident_id = data.get("resident_id")
        _raise_if(
            {
                "kind": _choice_problem(data.get("kind"), REQUEST_KINDS),
                "resident_id": None
                if isinstance(resident_id, str)
                else "A resident id is required.",
                "rw": _unit_problem(rw, "RW"),
                "rt": None if rt is None else _unit_problem(rt, "RT"),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        event = {
            "kelurahan": kelurahan,
            "kind": data["kind"],
            "resident_id": resident_id,
            "personal": {"rt": rt, "note": data.get("note")},
            "public": {"rw": rw},
        }
        request = cls(id)
        request.record("request.raised", event, meta)
        return request

    def assign(self, actor, data, meta):
        """``{"pamor_id"}``: staff assign any pamor; a pamor of the RW only itself.
        Open or assigned (reassignment) requests, and in-progress ones (a handover);
        records ``request.assigned``."""
        self._require_exists()
        data = _require_mapping(data, "Assignment")
        pamor_id = data.get("pamor_id")
        self._require_worker(actor, "assign requests", self_only=False)
        if actor.role == "pamor" and pamor_id != actor.user_id:
            raise Forbidden("a pamor can only assign requests to themselves")
        _raise_if(
            {
                "pamor_id": None
                if isinstance(pamor_id, str) and pamor_id
                else "A pamor id is required."
            }
        )
        self._require_status(("open", "assigned", "in_progress"), "assigned")
        if pamor_id == self.assigned_to:
            raise Conflict("the request is already assigned to this pamor")
        event = {"pamor_id": pamor_id, "personal": {}, "public": self._public()}
        self.record("request.assigned", event, meta)

    def start(self, actor, meta):
        """The assigned pamor (or staff) starts work; records ``request.started``."""
        self._require_exists()
        self._require_worker(actor, "start work")
        self._require_status(("assigned",), "started")
        self.record("request.started", {"personal": {}, "public": self._public()}, meta)

    def done(self, actor, data, meta):
        """``{"outcome": REQUEST_OUTCOMES, "note"?}`` by the assigned pamor or staff,
        for an assigned or in-progress request; records ``request.done``."""
        self._require_exists()
        self._require_worker(actor, "complete requests")
        data = _require_mapping(data, "Outcome")
        _raise_if(
            {
                "outcome": _choice_problem(data.get("outcome"), REQUEST_OUTCOMES),
                "note": _text_problem(data.get("note"), required=False),
            }
        )
        self._require_status(("assigned", "in_progress"), "done")
        event = {
            "outcome": data["outcome"],
            "personal": {"note": data.get("note")},
            "public": self._public(),
        }
        self.record("request.done", event, meta)

    def cancel(self, actor, data, meta):
        """``{"reason"}`` by staff or whoever raised it; records ``request.cancelled``."""
        self._require_exists()
        raised_by_actor = self.raised_by and actor.user_id == self.raised_by.get("id")
        if not raised_by_actor:
            if actor.role not in KELURAHAN_STAFF:
                raise Forbidden(
                    f"role {actor.role} cannot cancel requests raised by others; only {_STAFF_NAMES}"
                )
            _require_scope(actor, self.kelurahan)
        data = _require_mapping(data, "Cancellation")
        _raise_if({"reason": _text_problem(data.get("reason"))})
        self._require_status(("open", "assigned", "in_progress"), "cancelled")
        event = {"personal": {"reason": data["reason"]}, "public": self._public()}
        self.record("request.cancelled", event, meta)

    # -- folding -----------------------------------------------------------------------

    def _note(self, type_, meta, summary, reason=None):
        self.history.append(_history_entry(type_, meta, summary, reason))

    def _merge_personal(self, data, **updates):
        if self.personal is not None and data.get("personal") is not None:
            self.personal.update(json_copy(updates))

    def on_raised(self, data, meta):
        self.kelurahan = data["kelurahan"]
        self.status = "open"
        self.kind = data["kind"]
        self.resident_id = data["resident_id"]
        self.rw = data["public"]["rw"]
        personal = data.get("personal")
        self.personal = (
            None
            if personal is None
            else {**json_copy(personal), "outcome_note": None, "cancel_reason": None}
        )
        self.raised_by = json_copy(meta.get("actor"))
        self.raised_at = moment_of(meta).isoformat()
        self._note("request.raised", meta, f"raised ({data['kind']})")

    def on_assigned(self, data, meta):
        if self.status == "open":
            self.status = "assigned"
        self.assigned_to = data["pamor_id"]
        self.assigned_at = moment_of(meta).isoformat()
        self._note("request.assigned", meta, f"assigned to {data['pamor_id']}")

    def on_started(self, data, meta):
        self.status = "in_progress"
        self.started_at = moment_of(meta).isoformat()
        self._note("request.started", meta, "started")

    def on_done(self, data, meta):
        self.status = "done"
        self.outcome = data["outcome"]
        self.closed_at = moment_of(meta).isoformat()
        self._merge_personal(data, outcome_note=(data.get("personal") or {}).get("note"))
        self._note("request.done", meta, f"done ({data['outcome']})", data["outcome"])

    def on_cancelled(self, data, meta):
        self.status = "cancelled"
        self.closed_at = moment_of(meta).isoformat()
        self._merge_personal(data, cancel_reason=(data.get("personal") or {}).get("reason"))
        self._note("request.cancelled", meta, "cancelled")


def _require_rw_scope(actor, kelurahan, rw, rt=None):
    """A pamor or RW/RT chair acts only inside its own RW (and RT)."""
    if actor.rw is None or (actor.role == "ketua_rt" and actor.rt is None):
        raise Forbidden(f"role {actor.role} has no RW/RT in its scope")
    if not actor.covers(kelurahan, rw, rt if actor.role == "ketua_rt" else None):
        raise Forbidden(
            f"the scope of role {actor.role} (RW {actor.rw}"
            + (f", RT {actor.rt}" if actor.role == "ketua_rt" else "")
            + f") does not cover this request's place in kelurahan {kelurahan}"
        )


def desk_counts(requests, now):
    """Counts over ServiceRequest aggregates at ``now``: total, each status, breached
    (open past due, or closed late), and done within target."""
    counts = {"total": 0, "breached": 0, "done_within_target": 0}
    counts.update(dict.fromkeys(REQUEST_STATUSES, 0))
    for request in requests:
        if request.status is None:
            continue
        counts["total"] += 1
        counts[request.status] += 1
        late = request.breached(now)
        counts["breached"] += late
        counts["done_within_target"] += request.status == "done" and not late
    return counts
