"""Marshmallow schemas of the citizens service: the single source of its contract.

Three families, as in :mod:`services.proposals.schemas` (whose custom fields and
:func:`load` this module reuses):

- command and query schemas (RPC input), all ``unknown = RAISE``; a loaded
  command minus ``command_id`` and its entity id is the ``data`` argument of the
  matching domain command (:mod:`services.citizens.domain`);
- event payload schemas, registered in :data:`EVENT_SCHEMAS` by event type, each
  with ``version``; every payload has ``personal`` (a Nested schema that allows
  None: shredded) and ``public`` (coarse attributes only);
- view schemas (RPC output): ``ResidentView``, ``ResidentSummary``,
  ``FamilyView``, ``ServiceRequestView``, ``ServiceDeskCounts``.

:func:`load` raises only :class:`shared.errors.ValidationError`; no message here
echoes an input value (a NIK above all).
"""

import re
from datetime import datetime

import marshmallow
from marshmallow import Schema, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from services.citizens.domain import (
    AGE_BANDS,
    CARE_NEEDS,
    CATEGORIES,
    CHRONIC_CONDITIONS,
    CITIZENSHIPS,
    CLEAR_REASONS,
    CONSENT_GIVERS,
    CORRECTABLE_FIELDS,
    CORRECTION_REASONS,
    DISABILITY_CATEGORIES,
    EDUCATION_LEVELS,
    ENTRY_KINDS,
    ERASURE_BASES,
    FAMILY_STATUSES,
    HEAD,
    LOCAL_TZ,
    MARITAL_STATUSES,
    MEMBER_REMOVAL_REASONS,
    MOVE_OUT_REASONS,
    OCCUPATIONS,
    PREGNANCY_END_REASONS,
    REGION_CODE,
    RELATIONSHIPS,
    RELIGIONS,
    REQUEST_KINDS,
    REQUEST_OUTCOMES,
    REQUEST_STATUSES,
    RESIDENT_STATUSES,
    SEXES,
    SOURCES,
    VULNERABILITY_KINDS,
)
from services.citizens.nik import validate_nik
from services.proposals.schemas import (
    KECAMATAN_CODE,
    KELURAHAN_CODE,
    PSEUDONYM,
    ActorRef,
    Command,
    HistoryEntry,
    Int,
    IsoDate,
    Pattern,
    Strict,
    Text,
    UuidStr,
)
from services.proposals.schemas import load as load  # re-exported: the one entry point
from services.proposals.schemas import schema_instance as schema_instance
from shared.errors import ValidationError

NIK_PATTERN = re.compile(r"[0-9]{16}")
KK_PATTERN = re.compile(r"[0-9]{16}")
MAX_MEMBERS = 30
CONSENT_REQUIRED = "Consent of the resident or a guardian is required (UU 27/2022)."


def _today():
    return datetime.now(LOCAL_TZ).date()


def _not_future(value):
    if value > _today().isoformat():  # ISO dates compare as strings
        raise marshmallow.ValidationError("Must not be in the future.")


def _not_before_1900(value):
    if value < "1900-01-01":
        raise marshmallow.ValidationError("Must not be before 1900.")


def _past_date(**kwargs):
    return IsoDate(validate=[_not_future, _not_before_1900], **kwargs)


def _choice(choices, **kwargs):
    return fields.String(validate=OneOf(choices), **kwargs)


def _codes(choices, **kwargs):
    return fields.List(fields.String(validate=OneOf(choices)), **kwargs)


def _unit(**kwargs):
    return Int(validate=Range(1, 99), **kwargs)


def _line(max_length, min_length=1, **kwargs):
    return Text(min_length, max_length, multiline=False, **kwargs)


def _note(**kwargs):
    kwargs.setdefault("load_default", None)
    return Text(0, 1000, **kwargs)


def _nik(**kwargs):
    return Pattern(NIK_PATTERN, "NIK (16 digits)", **kwargs)


def _kk(**kwargs):
    return Pattern(KK_PATTERN, "No. KK (16 digits)", **kwargs)


def _unique(values, message="A value is given twice."):
    if len(values) != len(set(values)):
        raise marshmallow.ValidationError(message)


def _none_if_blank(data, *names):
    for name in names:
        if data.get(name) == "":
            data[name] = None


def _check_nik(data):
    """NIK against birth date and sex; the messages never contain the NIK."""
    try:
        validate_nik(data["nik"], data["birth_date"], data["sex"], _today())
    except ValidationError as error:
        raise marshmallow.ValidationError(error.fields) from None


# -- nested parts -----------------------------------------------------------------------


class Place(Strict):
    """Where a resident came from or went: a region code (``32.75``, ``31.71.05``,
    ``32.75.05.1002``) and/or an address line."""

    region = Pattern(REGION_CODE, "region code", load_default=None, allow_none=True)
    address = _line(300, load_default=None, allow_none=True)

    @validates_schema
    def _something(self, data, **kwargs):
        if data.get("region") is None and not data.get("address"):
            raise marshmallow.ValidationError("Give a region code and/or an address.")


class Consent(Strict):
    """Consent to process disability data: by the resident or a guardian, when, and
    a reference to the signed form (optional)."""

    given_by = _choice(CONSENT_GIVERS, required=True)
    date = _past_date(required=True)
    reference = _line(300, load_default=None, allow_none=True)


class Member(Strict):
    resident_id = UuidStr(required=True)
    relationship = _choice(RELATIONSHIPS, required=True)


def _check_members(members):
    _unique([m["resident_id"] for m in members], "A resident is listed twice.")
    if sum(m["relationship"] == HEAD for m in members) != 1:
        raise marshmallow.ValidationError("Exactly one member must be the kepala_keluarga.")


# -- resident commands ------------------------------------------------------------------


class _PersonFields(Strict):
    """The population-record fields (Dukcapil), shared by registration and corrections."""

    nik = _nik(required=True)
    name = _line(200, required=True)
    sex = _choice(SEXES, required=True)
    birth_place = _line(100, required=True)
    birth_date = _past_date(required=True)
    religion = _choice(RELIGIONS, required=True)
    education = _choice(EDUCATION_LEVELS, required=True)
    occupation = _choice(OCCUPATIONS, required=True)
    marital_status = _choice(MARITAL_STATUSES, required=True)
    citizenship = _choice(CITIZENSHIPS, required=True)
    address = _line(300, required=True)
    rt = _unit(required=True)
    rw = _unit(required=True)


class RegisterResident(_PersonFields, Command):
    """A new resident; the service adds ``kelurahan`` and passes the rest (without
    ``command_id``) to ``Resident.register``. ``entry=move_in`` needs an ``origin``.
    The NIK must agree with birth date and sex."""

    kk = _kk(load_default=None, allow_none=True)
    relationship = _choice(RELATIONSHIPS, load_default=None, allow_none=True)
    entry = _choice(ENTRY_KINDS, load_default="existing")
    entry_date = _past_date(load_default=None, allow_none=True)
    origin = fields.Nested(Place, load_default=None, allow_none=True)

    @validates_schema
    def _consistent(self, data, **kwargs):
        _check_nik(data)
        if data["entry"] == "move_in" and data.get("origin") is None:
            raise marshmallow.ValidationError("Required when the resident moves in.", "origin")
        if data.get("entry_date") and data["entry_date"] < data["birth_date"]:
            raise marshmallow.ValidationError("Must not be before the birth date.", "entry_date")


class ResidentCommand(Command):
    resident_id = UuidStr(required=True)


class MoveWithin(ResidentCommand):
    rw = _unit(required=True)
    rt = _unit(required=True)
    address = _line(300, required=True)
    date = _past_date(load_default=None, allow_none=True)


class MoveOut(ResidentCommand):
    date = _past_date(required=True)
    destination = fields.Nested(Place, required=True)
    reason = _choice(MOVE_OUT_REASONS, load_default="other")


class MoveIn(ResidentCommand):
    """A resident who had moved out comes back."""

    rw = _unit(required=True)
    rt = _unit(required=True)
    address = _line(300, required=True)
    date = _past_date(required=True)
    origin = fields.Nested(Place, load_default=None, allow_none=True)


class RecordDeath(ResidentCommand):
    date = _past_date(required=True)
    place = _line(200, load_default=None, allow_none=True)
    cause = Text(1, 500, load_default=None, allow_none=True)
    certificate = _line(300, load_default=None, allow_none=True)


class ReportMissing(ResidentCommand):
    date = _past_date(required=True)
    note = _note(allow_none=True)


class ReportFound(ReportMissing):
    pass


class _Corrections(_PersonFields):
    """Any non-empty subset of CORRECTABLE_FIELDS."""

    def __init__(self, **kwargs):
        kwargs.setdefault("partial", True)
        super().__init__(**kwargs)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise marshmallow.ValidationError("Give at least one field to correct.")


class CorrectResident(ResidentCommand):
    """Corrections with a reason code and a note saying why (the note is personal)."""

    changes = fields.Nested(_Corrections, required=True)
    reason = _choice(CORRECTION_REASONS, required=True)
    note = Text(1, 1000, required=True)


class RecordDisability(ResidentCommand):
    """UU 8/2016 categories; refused without consent (resident or guardian)."""

    categories = _codes(DISABILITY_CATEGORIES, required=True, validate=Length(1, 5))
    consent = fields.Nested(
        Consent,
        required=True,
        error_messages={"required": CONSENT_REQUIRED, "null": CONSENT_REQUIRED},
    )
    source = _choice(SOURCES, required=True)
    note = _note(allow_none=True)

    @validates_schema
    def _unique_categories(self, data, **kwargs):
        if len(set(data["categories"])) != len(data["categories"]):
            raise marshmallow.ValidationError("A category is given twice.", "categories")


class RecordWelfare(ResidentCommand):
    """A DTSEN welfare decile (1 poorest .. 10) with its source and date."""

    decile = Int(required=True, validate=Range(1, 10))
    source = _choice(SOURCES, required=True)
    as_of = _past_date(required=True)
    note = _note(allow_none=True)


class RecordHealth(ResidentCommand):
    """Chronic conditions and care needs (at least one of them)."""

    chronic_conditions = _codes(CHRONIC_CONDITIONS, load_default=list, validate=Length(max=11))
    care_needs = _codes(CARE_NEEDS, load_default=list, validate=Length(max=8))
    source = _choice(SOURCES, required=True)
    note = _note(allow_none=True)

    @validates_schema
    def _something(self, data, **kwargs):
        for field in ("chronic_conditions", "care_needs"):
            if len(set(data[field])) != len(data[field]):
                raise marshmallow.ValidationError("A code is given twice.", field)
        if not data["chronic_conditions"] and not data["care_needs"]:
            raise marshmallow.ValidationError("Give a chronic condition or a care need.")


class RecordPregnancy(ResidentCommand):
    """The expected delivery date (within the next 300 days: the domain checks)."""

    expected_date = IsoDate(required=True)
    source = _choice(SOURCES, required=True)
    note = _note(allow_none=True)


class ClearVulnerability(ResidentCommand):
    """End a record of ``kind``; a pregnancy ends with PREGNANCY_END_REASONS."""

    kind = _choice(VULNERABILITY_KINDS, required=True)
    reason = fields.String(required=True)
    note = _note(allow_none=True)

    @validates_schema
    def _reason_fits_kind(self, data, **kwargs):
        reasons = PREGNANCY_END_REASONS if data["kind"] == "pregnancy" else CLEAR_REASONS
        if data["reason"] not in reasons:
            raise marshmallow.ValidationError(f"Must be one of: {', '.join(reasons)}.", "reason")


class EraseResident(ResidentCommand):
    """Erasure on a request: its legal basis and the request's reference (letter
    number or file), which must not contain personal data."""

    legal_basis = _choice(ERASURE_BASES, required=True)
    request_reference = _line(300, required=True)


# -- family commands --------------------------------------------------------------------


class _FamilyBody(Strict):
    kk = _kk(required=True)
    address = _line(300, required=True)
    rt = _unit(required=True)
    rw = _unit(required=True)
    members = fields.List(fields.Nested(Member), required=True, validate=Length(1, MAX_MEMBERS))

    @validates_schema
    def _one_head(self, data, **kwargs):
        try:
            _check_members(data["members"])
        except marshmallow.ValidationError as error:
            raise marshmallow.ValidationError(error.messages, "members") from None


class FormFamily(_FamilyBody, Command):
    """A family card; the service adds ``kelurahan`` before ``Family.form``."""


class FamilyCommand(Command):
    family_id = UuidStr(required=True)


class SplitFamily(_FamilyBody, FamilyCommand):
    """Members of ``family_id`` form a new family (``new_family_id``, optional: the
    service makes one) with its own KK."""

    new_family_id = UuidStr(load_default=None)


class AddFamilyMember(FamilyCommand):
    resident_id = UuidStr(required=True)
    relationship = fields.String(
        required=True, validate=OneOf([r for r in RELATIONSHIPS if r != HEAD])
    )


class RemoveFamilyMember(FamilyCommand):
    resident_id = UuidStr(required=True)
    reason = _choice(MEMBER_REMOVAL_REASONS, required=True)


class ChangeRelationship(AddFamilyMember):
    pass


class ChangeFamilyHead(FamilyCommand):
    resident_id = UuidStr(required=True)
    previous_head_relationship = fields.String(
        required=True, validate=OneOf([r for r in RELATIONSHIPS if r != HEAD])
    )
    relationships = fields.Dict(
        keys=UuidStr(),
        values=fields.String(validate=OneOf([r for r in RELATIONSHIPS if r != HEAD])),
        load_default=dict,
        validate=Length(max=MAX_MEMBERS),
    )


class MoveFamily(FamilyCommand):
    address = _line(300, required=True)
    rt = _unit(required=True)
    rw = _unit(required=True)


# -- service desk commands --------------------------------------------------------------


class RaiseServiceRequest(Command):
    """A request for help for a resident; the service adds ``kelurahan``. A ketua RT
    must give ``rt``."""

    kind = _choice(REQUEST_KINDS, required=True)
    resident_id = UuidStr(required=True)
    rw = _unit(required=True)
    rt = _unit(load_default=None, allow_none=True)
    note = _note(allow_none=True)


class ServiceRequestCommand(Command):
    request_id = UuidStr(required=True)


class AssignServiceRequest(ServiceRequestCommand):
    pamor_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)


class StartServiceRequest(ServiceRequestCommand):
    pass


class CompleteServiceRequest(ServiceRequestCommand):
    outcome = _choice(REQUEST_OUTCOMES, required=True)
    note = _note(allow_none=True)


class CancelServiceRequest(ServiceRequestCommand):
    reason = Text(1, 1000, required=True)


# -- queries ----------------------------------------------------------------------------


class Paged(Strict):
    page = Int(validate=Range(1, 1_000_000), load_default=1)
    per_page = Int(validate=Range(1, 200), load_default=50)


class GetResident(Strict):
    resident_id = UuidStr(required=True)


class FindResidentByNik(Strict):
    nik = _nik(required=True)


class ListResidents(Paged):
    rw = _unit(load_default=None)
    rt = _unit(load_default=None)
    status = _choice(RESIDENT_STATUSES, load_default=None)
    category = _choice(CATEGORIES, load_default=None)
    sex = _choice(SEXES, load_default=None)
    age_band = _choice(AGE_BANDS, load_default=None)
    family_id = UuidStr(load_default=None)
    name = _line(100, min_length=2, load_default=None)
    purpose = Text(1, 500, load_default="list")  # recorded in the access log


class TargetingQuery(Strict):
    """Who falls in a category (optionally in one RW), for a stated purpose (logged)."""

    rw = _unit(load_default=None)
    category = _choice(CATEGORIES, required=True)
    purpose = Text(10, 500, required=True)


class MonographQuery(Strict):
    as_of = IsoDate(load_default=None)
    format = _choice(("json", "csv"), load_default="json")


class CityMonographQuery(Strict):
    kecamatan = Pattern(KECAMATAN_CODE, "kecamatan code", load_default=None)


class GetFamily(Strict):
    family_id = UuidStr(required=True)


class GetServiceRequest(Strict):
    request_id = UuidStr(required=True)


class ListServiceRequests(Paged):
    rw = _unit(load_default=None)
    status = _choice(REQUEST_STATUSES, load_default=None)
    kind = _choice(REQUEST_KINDS, load_default=None)
    assigned_to = Pattern(PSEUDONYM, "pseudonymous id", load_default=None)
    resident_id = UuidStr(load_default=None)
    breached = fields.Boolean(load_default=None)


# -- event payloads ---------------------------------------------------------------------


class Event(Strict):
    """Base of event payload schemas; bump ``version`` and add an upcaster on change."""

    version = 1


class Public(Strict):
    """The coarse attributes that may leave the node."""

    rw = _unit(required=True)
    sex = _choice(SEXES, required=True)
    age_band = _choice(AGE_BANDS, required=True)
    categories = _codes(CATEGORIES, required=True)


class RwPublic(Strict):
    rw = _unit(required=True)


class NoPersonal(Strict):
    """An event with nothing personal to say carries ``{}``."""


def _personal(schema):
    return fields.Nested(schema, required=True, allow_none=True)


class ResidentEvent(Event):
    public = fields.Nested(Public, required=True)


class _RegisteredPersonal(Strict):
    nik = _nik(required=True)
    kk = _kk(required=True, allow_none=True)
    relationship = _choice(RELATIONSHIPS, required=True, allow_none=True)
    name = _line(200, required=True)
    sex = _choice(SEXES, required=True)
    birth_place = _line(100, required=True)
    birth_date = IsoDate(required=True)
    religion = _choice(RELIGIONS, required=True)
    education = _choice(EDUCATION_LEVELS, required=True)
    occupation = _choice(OCCUPATIONS, required=True)
    marital_status = _choice(MARITAL_STATUSES, required=True)
    citizenship = _choice(CITIZENSHIPS, required=True)
    address = _line(300, required=True)
    rt = _unit(required=True)
    rw = _unit(required=True)
    entry_date = IsoDate(required=True, allow_none=True)
    origin = fields.Nested(Place, required=True, allow_none=True)


class RegisteredEvent(ResidentEvent):
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    entry = _choice(ENTRY_KINDS, required=True)
    personal = _personal(_RegisteredPersonal)


class _Address(Strict):
    address = _line(300, required=True)
    rt = _unit(required=True)
    rw = _unit(required=True)


class _MovedPersonal(_Address):
    date = IsoDate(required=True, allow_none=True)


class MovedEvent(ResidentEvent):
    personal = _personal(_MovedPersonal)


class _MovedOutPersonal(Strict):
    date = IsoDate(required=True)
    destination = fields.Nested(Place, required=True)


class MovedOutEvent(ResidentEvent):
    reason = _choice(MOVE_OUT_REASONS, required=True)
    personal = _personal(_MovedOutPersonal)


class _MovedInPersonal(_Address):
    date = IsoDate(required=True)
    origin = fields.Nested(Place, required=True, allow_none=True)


class MovedInEvent(ResidentEvent):
    personal = _personal(_MovedInPersonal)


class _DiedPersonal(Strict):
    date = IsoDate(required=True)
    place = _line(200, required=True, allow_none=True)
    cause = Text(1, 500, required=True, allow_none=True)
    certificate = _line(300, required=True, allow_none=True)


class DiedEvent(ResidentEvent):
    personal = _personal(_DiedPersonal)


class _DatedNote(Strict):
    date = IsoDate(required=True)
    note = Text(0, 1000, required=True, allow_none=True)


class MissingReportedEvent(ResidentEvent):
    personal = _personal(_DatedNote)


class FoundEvent(ResidentEvent):
    personal = _personal(_DatedNote)


class _ChangesInEvent(Strict):
    """Corrected values (any subset of CORRECTABLE_FIELDS)."""

    nik = _nik()
    name = _line(200)
    sex = _choice(SEXES)
    birth_place = _line(100)
    birth_date = IsoDate()
    religion = _choice(RELIGIONS)
    education = _choice(EDUCATION_LEVELS)
    occupation = _choice(OCCUPATIONS)
    marital_status = _choice(MARITAL_STATUSES)
    citizenship = _choice(CITIZENSHIPS)
    address = _line(300)
    rt = _unit()
    rw = _unit()


class _CorrectedPersonal(Strict):
    changes = fields.Nested(_ChangesInEvent, required=True)
    note = Text(1, 1000, required=True)


class CorrectedEvent(ResidentEvent):
    changed = fields.List(
        fields.String(validate=OneOf(CORRECTABLE_FIELDS)), required=True, validate=Length(min=1)
    )
    reason = _choice(CORRECTION_REASONS, required=True)
    personal = _personal(_CorrectedPersonal)


class _FamilyPersonal(Strict):
    kk = _kk(required=True, allow_none=True)
    relationship = _choice(RELATIONSHIPS, required=True, allow_none=True)


class FamilyChangedEvent(ResidentEvent):
    family_id = UuidStr(required=True, allow_none=True)
    personal = _personal(_FamilyPersonal)


class _DisabilityPersonal(Strict):
    categories = _codes(DISABILITY_CATEGORIES, required=True, validate=Length(1, 5))
    consent = fields.Nested(Consent, required=True)
    note = Text(0, 1000, required=True, allow_none=True)


class _WelfarePersonal(Strict):
    decile = Int(required=True, validate=Range(1, 10))
    as_of = IsoDate(required=True)
    note = Text(0, 1000, required=True, allow_none=True)


class _HealthPersonal(Strict):
    chronic_conditions = _codes(CHRONIC_CONDITIONS, required=True)
    care_needs = _codes(CARE_NEEDS, required=True)
    note = Text(0, 1000, required=True, allow_none=True)


class _PregnancyPersonal(Strict):
    expected_date = IsoDate(required=True)
    note = Text(0, 1000, required=True, allow_none=True)


class _NotePersonal(Strict):
    note = Text(0, 1000, required=True, allow_none=True)


class _Recorded(ResidentEvent):
    source = _choice(SOURCES, required=True)


class DisabilityRecordedEvent(_Recorded):
    personal = _personal(_DisabilityPersonal)


class WelfareRecordedEvent(_Recorded):
    personal = _personal(_WelfarePersonal)


class HealthRecordedEvent(_Recorded):
    personal = _personal(_HealthPersonal)


class PregnancyRecordedEvent(_Recorded):
    personal = _personal(_PregnancyPersonal)


class ClearedEvent(ResidentEvent):
    reason = _choice(CLEAR_REASONS, required=True)
    personal = _personal(_NotePersonal)


class PregnancyClearedEvent(ResidentEvent):
    reason = _choice(PREGNANCY_END_REASONS, required=True)
    personal = _personal(_NotePersonal)


def _must_be_none(value):
    if value is not None:
        raise marshmallow.ValidationError("An erasure carries no personal data.")


class ErasedEvent(ResidentEvent):
    legal_basis = _choice(ERASURE_BASES, required=True)
    request_reference = _line(300, required=True)
    personal = fields.Raw(required=True, allow_none=True, validate=_must_be_none)


class RwEvent(Event):
    """Family and service-request events: their public part is the RW only."""

    public = fields.Nested(RwPublic, required=True)


class _FormedPersonal(_Address):
    kk = _kk(required=True)
    members = fields.List(fields.Nested(Member), required=True, validate=Length(min=1))


class FamilyFormedEvent(RwEvent):
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    members = fields.List(UuidStr(), required=True, validate=Length(min=1))
    split_from = UuidStr(required=True, allow_none=True)
    personal = _personal(_FormedPersonal)


class _RelationshipPersonal(Strict):
    relationship = _choice(RELATIONSHIPS, required=True)


class MemberAddedEvent(RwEvent):
    resident_id = UuidStr(required=True)
    personal = _personal(_RelationshipPersonal)


class MemberRemovedEvent(RwEvent):
    resident_id = UuidStr(required=True)
    reason = _choice(MEMBER_REMOVAL_REASONS, required=True)
    personal = _personal(NoPersonal)


class RelationshipChangedEvent(RwEvent):
    resident_id = UuidStr(required=True)
    personal = _personal(_RelationshipPersonal)


class _MembersPersonal(Strict):
    members = fields.List(fields.Nested(Member), required=True, validate=Length(min=1))


class HeadChangedEvent(RwEvent):
    resident_id = UuidStr(required=True)
    personal = _personal(_MembersPersonal)


class FamilyMovedEvent(RwEvent):
    personal = _personal(_Address)


class FamilySplitEvent(RwEvent):
    new_family_id = UuidStr(required=True)
    members = fields.List(UuidStr(), required=True, validate=Length(min=1))
    personal = _personal(NoPersonal)


class FamilyDissolvedEvent(RwEvent):
    reason = _choice(("no_members",), required=True)
    personal = _personal(NoPersonal)


class _RaisedPersonal(Strict):
    rt = _unit(required=True, allow_none=True)
    note = Text(0, 1000, required=True, allow_none=True)


class RequestRaisedEvent(RwEvent):
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    kind = _choice(REQUEST_KINDS, required=True)
    resident_id = UuidStr(required=True)
    personal = _personal(_RaisedPersonal)


class RequestAssignedEvent(RwEvent):
    pamor_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)
    personal = _personal(NoPersonal)


class RequestStartedEvent(RwEvent):
    personal = _personal(NoPersonal)


class RequestDoneEvent(RwEvent):
    outcome = _choice(REQUEST_OUTCOMES, required=True)
    personal = _personal(_NotePersonal)


class _ReasonPersonal(Strict):
    reason = Text(1, 1000, required=True)


class RequestCancelledEvent(RwEvent):
    personal = _personal(_ReasonPersonal)


EVENT_SCHEMAS = {
    "resident.registered": RegisteredEvent,
    "resident.moved": MovedEvent,
    "resident.moved_out": MovedOutEvent,
    "resident.moved_in": MovedInEvent,
    "resident.died": DiedEvent,
    "resident.missing_reported": MissingReportedEvent,
    "resident.found": FoundEvent,
    "resident.corrected": CorrectedEvent,
    "resident.family_changed": FamilyChangedEvent,
    "resident.disability_recorded": DisabilityRecordedEvent,
    "resident.welfare_recorded": WelfareRecordedEvent,
    "resident.health_recorded": HealthRecordedEvent,
    "resident.pregnancy_recorded": PregnancyRecordedEvent,
    "resident.disability_cleared": ClearedEvent,
    "resident.welfare_cleared": ClearedEvent,
    "resident.health_cleared": ClearedEvent,
    "resident.pregnancy_cleared": PregnancyClearedEvent,
    "resident.erased": ErasedEvent,
    "family.formed": FamilyFormedEvent,
    "family.member_added": MemberAddedEvent,
    "family.member_removed": MemberRemovedEvent,
    "family.relationship_changed": RelationshipChangedEvent,
    "family.head_changed": HeadChangedEvent,
    "family.moved": FamilyMovedEvent,
    "family.split": FamilySplitEvent,
    "family.dissolved": FamilyDissolvedEvent,
    "request.raised": RequestRaisedEvent,
    "request.assigned": RequestAssignedEvent,
    "request.started": RequestStartedEvent,
    "request.done": RequestDoneEvent,
    "request.cancelled": RequestCancelledEvent,
}


# -- views ------------------------------------------------------------------------------


class PlaceView(Schema):
    region = fields.String(allow_none=True)
    address = fields.String(allow_none=True)


class EntryView(Schema):
    kind = fields.String()
    date = fields.String(allow_none=True)
    origin = fields.Nested(PlaceView, allow_none=True)


class DepartureView(Schema):
    date = fields.String()
    destination = fields.Nested(PlaceView)


class DeathView(Schema):
    date = fields.String()
    place = fields.String(allow_none=True)
    cause = fields.String(allow_none=True)
    certificate = fields.String(allow_none=True)


class MissingView(Schema):
    date = fields.String()
    note = fields.String(allow_none=True)


class ResidentPersonalView(Schema):
    """The population record and life-cycle details (node only, never replicated)."""

    nik = fields.String()
    kk = fields.String(allow_none=True)
    relationship = fields.String(allow_none=True)
    name = fields.String()
    sex = fields.String()
    birth_place = fields.String()
    birth_date = fields.String()
    religion = fields.String()
    education = fields.String()
    occupation = fields.String()
    marital_status = fields.String()
    citizenship = fields.String()
    address = fields.String()
    rt = fields.Integer()
    rw = fields.Integer()
    entry = fields.Nested(EntryView)
    departure = fields.Nested(DepartureView, allow_none=True)
    death = fields.Nested(DeathView, allow_none=True)
    missing = fields.Nested(MissingView, allow_none=True)


class PublicView(Schema):
    rw = fields.Integer()
    sex = fields.String()
    age_band = fields.String()
    categories = fields.List(fields.String())


class ConsentView(Schema):
    given_by = fields.String()
    date = fields.String()
    reference = fields.String(allow_none=True)


class _RecordMeta(Schema):
    """Who recorded a vulnerability record, when, from which source. The details
    are None when the personal data is gone."""

    note = fields.String(allow_none=True)
    source = fields.String()
    recorded_by = fields.Nested(ActorRef, allow_none=True)
    recorded_at = fields.String(allow_none=True)


class DisabilityView(_RecordMeta):
    categories = fields.List(fields.String(), allow_none=True)
    consent = fields.Nested(ConsentView, allow_none=True)


class WelfareView(_RecordMeta):
    decile = fields.Integer(allow_none=True)
    as_of = fields.String(allow_none=True)


class HealthView(_RecordMeta):
    chronic_conditions = fields.List(fields.String(), allow_none=True)
    care_needs = fields.List(fields.String(), allow_none=True)


class PregnancyView(_RecordMeta):
    expected_date = fields.String(allow_none=True)


class VulnerabilityView(Schema):
    disability = fields.Nested(DisabilityView, allow_none=True)
    welfare = fields.Nested(WelfareView, allow_none=True)
    health = fields.Nested(HealthView, allow_none=True)
    pregnancy = fields.Nested(PregnancyView, allow_none=True)


class VulnerabilityHistoryEntry(Schema):
    kind = fields.String()
    action = fields.String()  # recorded | cleared
    details = fields.Dict(allow_none=True)
    source = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    actor = fields.Nested(ActorRef, allow_none=True)
    time = fields.String(allow_none=True)


class ErasureView(Schema):
    legal_basis = fields.String()
    request_reference = fields.String()
    actor = fields.Nested(ActorRef, allow_none=True)
    time = fields.String(allow_none=True)


class ResidentView(Schema):
    """Everything about one resident (``Resident.snapshot()``), with full history."""

    id = fields.String()
    version = fields.Integer()
    kelurahan = fields.String()
    status = fields.String(validate=OneOf(RESIDENT_STATUSES))
    family_id = fields.String(allow_none=True)
    personal = fields.Nested(ResidentPersonalView, allow_none=True)
    public = fields.Nested(PublicView, allow_none=True)
    vulnerability = fields.Nested(VulnerabilityView)
    vulnerability_history = fields.List(fields.Nested(VulnerabilityHistoryEntry))
    erasure = fields.Nested(ErasureView, allow_none=True)
    history = fields.List(fields.Nested(HistoryEntry))


class ResidentSummary(Schema):
    """One line of a resident list (node only: carries the name)."""

    id = fields.String()
    kelurahan = fields.String()
    status = fields.String()
    name = fields.String(allow_none=True)
    rw = fields.Integer(allow_none=True)
    rt = fields.Integer(allow_none=True)
    sex = fields.String(allow_none=True)
    age_band = fields.String(allow_none=True)
    categories = fields.List(fields.String())
    family_id = fields.String(allow_none=True)


def resident_summary(view):
    """A ResidentSummary dict from a ``Resident.snapshot()``."""
    personal, public = view.get("personal") or {}, view.get("public") or {}
    return {
        "id": view["id"],
        "kelurahan": view["kelurahan"],
        "status": view["status"],
        "name": personal.get("name"),
        "rw": public.get("rw"),
        "rt": personal.get("rt"),
        "sex": public.get("sex"),
        "age_band": public.get("age_band"),
        "categories": list(public.get("categories", [])),
        "family_id": view.get("family_id"),
    }


class MemberView(Schema):
    resident_id = fields.String()
    relationship = fields.String(allow_none=True)


class AddressView(Schema):
    address = fields.String()
    rt = fields.Integer()
    rw = fields.Integer()


class FamilyView(Schema):
    id = fields.String()
    version = fields.Integer()
    kelurahan = fields.String()
    status = fields.String(validate=OneOf(FAMILY_STATUSES))
    kk = fields.String(allow_none=True)
    address = fields.Nested(AddressView, allow_none=True)
    rw = fields.Integer(allow_none=True)
    head_id = fields.String(allow_none=True)
    members = fields.List(fields.Nested(MemberView))
    split_from = fields.String(allow_none=True)
    history = fields.List(fields.Nested(HistoryEntry))


class RequestPersonalView(Schema):
    rt = fields.Integer(allow_none=True)
    note = fields.String(allow_none=True)
    outcome_note = fields.String(allow_none=True)
    cancel_reason = fields.String(allow_none=True)


class ServiceRequestView(Schema):
    """One request with its 24-hour target (``ServiceRequest.snapshot(now=...)``)."""

    id = fields.String()
    version = fields.Integer()
    kelurahan = fields.String()
    status = fields.String(validate=OneOf(REQUEST_STATUSES))
    kind = fields.String(validate=OneOf(REQUEST_KINDS))
    resident_id = fields.String()
    rw = fields.Integer()
    personal = fields.Nested(RequestPersonalView, allow_none=True)
    raised_by = fields.Nested(ActorRef, allow_none=True)
    raised_at = fields.String()
    due_at = fields.String()
    target_hours = fields.Integer()
    breached = fields.Boolean(allow_none=True)
    assigned_to = fields.String(allow_none=True)
    assigned_at = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True)
    history = fields.List(fields.Nested(HistoryEntry))


ServiceDeskCounts = Schema.from_dict(
    {
        name: fields.Integer(dump_default=0)
        for name in ("total", "breached", "done_within_target", *REQUEST_STATUSES)
    },
    name="ServiceDeskCounts",
)
ServiceDeskCounts.__doc__ = "Requests by status, breaches of the 24-hour target, done on time."


# -- access to personal data (added by the citizens service) ----------------------------

PURPOSE_DEFAULT = "view"


class ViewResident(GetResident):
    """``get_resident`` with why the caller looks (recorded in the access log)."""

    purpose = Text(1, 500, load_default=PURPOSE_DEFAULT)


class FindResident(FindResidentByNik):
    purpose = Text(1, 500, load_default=PURPOSE_DEFAULT)


class Targeting(TargetingQuery):
    """A targeting query; ``living_alone`` keeps residents with no other living member
    in their family (e.g. elderly living alone)."""

    living_alone = fields.Boolean(load_default=False)


class _AccessPersonal(Strict):
    """Sealed: free-text purpose, and who was looked at (a targeting result reveals the
    category of everyone in it)."""

    purpose = Text(1, 500, required=True)
    resident_ids = fields.List(UuidStr(), required=True)


class _AccessPublic(Strict):
    rw = _unit(required=True, allow_none=True)


class AccessEvent(Event):
    """``access.targeting_queried``, ``access.resident_viewed`` or ``access.residents_listed``
    on stream ``access-log``."""

    query = fields.String(required=True)
    filters = fields.Dict(required=True)
    count = Int(required=True)
    personal = _personal(_AccessPersonal)
    public = fields.Nested(_AccessPublic, required=True)


ACCESS_EVENT_SCHEMAS = {
    "access.targeting_queried": AccessEvent,
    "access.resident_viewed": AccessEvent,
    "access.residents_listed": AccessEvent,
}
