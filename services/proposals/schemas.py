"""Marshmallow schemas of the proposals service: the single source of its contract.

Three families:

- command and query schemas (RPC input), all ``unknown = RAISE``: loading one
  returns JSON-native data ready for :mod:`services.proposals.domain`;
- event payload schemas (``data`` of stored events), registered in
  :data:`EVENT_SCHEMAS` by event type, each with a class attribute ``version``;
- view schemas (RPC output): ``ProposalView``, ``ProposalSummary``, ``ForumView``,
  ``RankingEntry``, ``CityRankingEntry``, ``StatusCounts``.

:func:`load` (from :mod:`shared.schema`) is the one entry point for untrusted
input.
"""

import re

import marshmallow
from marshmallow import Schema, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from services.proposals.domain import (
    DECISION_LEVELS,
    DECISIONS,
    FORUM_STATUSES,
    FUNDING_SOURCES,
    MAX_CRITERIA,
    PROPOSER_LEVELS,
    REJECTION_CODES,
    REVISABLE_FIELDS,
    SECTORS,
    STATUSES,
)
from shared.schema import (
    Command,
    Int,
    IsoDate,
    Pattern,
    Real,
    Ref,
    Strict,
    Text,
    UuidStr,
)
from shared.schema import load as load  # re-exported: the service's one entry point
from shared.schema import schema_instance as schema_instance

MIN_YEAR, MAX_YEAR = 2020, 2100
MAX_COST = 10**13  # whole rupiah
MAX_VOLUME = 1e9
MAX_PHOTOS, MAX_DOCUMENTS = 3, 10
# Kota Bekasi, roughly, with a margin
LATITUDE_RANGE = (-6.45, -6.15)
LONGITUDE_RANGE = (106.88, 107.08)

KELURAHAN_CODE = re.compile(r"^32\.75\.[0-9]{2}\.[0-9]{4}$")
KECAMATAN_CODE = re.compile(r"^32\.75\.[0-9]{2}$")
FORUM_ID = re.compile(r"^32\.75\.[0-9]{2}\.[0-9]{4}-[0-9]{4}$")
CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CATALOGUE_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _year(**kwargs):
    return Int(validate=Range(MIN_YEAR, MAX_YEAR), **kwargs)


def _rw(**kwargs):
    return Int(validate=Range(1, 99), **kwargs)


def _reason(**kwargs):
    return Text(1, 1000, **kwargs)


class ProposalCommand(Command):
    """A command on one existing proposal."""

    proposal_id = UuidStr(required=True)


# -- nested parts -----------------------------------------------------------------------


class Proposer(Strict):
    """Who proposes: a level, an optional unit name (e.g. "Posyandu Melati"), RW and RT.
    Level ``rt`` needs rw and rt, level ``rw`` needs rw; an rt always needs its rw."""

    level = fields.String(required=True, validate=OneOf(PROPOSER_LEVELS))
    unit = Text(1, 100, multiline=False, load_default=None)
    rw = _rw(load_default=None)
    rt = Int(validate=Range(1, 99), load_default=None)

    @validates_schema
    def _unit_matches_level(self, data, **kwargs):
        if data["level"] in ("rt", "rw") and data.get("rw") is None:
            raise marshmallow.ValidationError("Required for this proposer level.", "rw")
        if data["level"] == "rt" and data.get("rt") is None:
            raise marshmallow.ValidationError("Required for proposer level rt.", "rt")
        if data.get("rt") is not None and data.get("rw") is None:
            raise marshmallow.ValidationError("An RT needs its RW.", "rw")


class Location(Strict):
    """Where: RW (and RT) inside the kelurahan, an address line, and optionally a point
    inside Kota Bekasi (latitude and longitude come together)."""

    rw = _rw(required=True)
    rt = Int(validate=Range(1, 99), load_default=None)
    address = Text(0, 300, multiline=False, load_default=None)
    latitude = Real(validate=Range(*LATITUDE_RANGE), load_default=None)
    longitude = Real(validate=Range(*LONGITUDE_RANGE), load_default=None)

    @validates_schema
    def _point_is_complete(self, data, **kwargs):
        if (data.get("latitude") is None) != (data.get("longitude") is None):
            raise marshmallow.ValidationError("Give latitude and longitude together.", "_schema")


class Criterion(Strict):
    """One scoring criterion."""

    code = Pattern(CODE, "criterion code", required=True)
    name = Text(1, 100, multiline=False, required=True)
    weight = Real(required=True, validate=Range(0, 100, min_inclusive=False))


class Delegate(Strict):
    """A forum delegate, by pseudonymous id only."""

    delegate_id = Pattern(PSEUDONYM, "pseudonymous id", required=True)
    rw = _rw(load_default=None)
    role = Text(1, 50, multiline=False, required=True)


class RankedProposal(Strict):
    """One entry of a forum's ranking, in order."""

    proposal_id = UuidStr(required=True)
    total = Real(required=True, validate=Range(0, 5))


def _unique(items, key, message):
    values = [item[key] for item in items]
    if len(values) != len(set(values)):
        raise marshmallow.ValidationError(message)


# -- proposal commands ------------------------------------------------------------------


class _ProposalBody(Strict):
    """The fields a proposer fills in (shared by submit, revise and their events)."""

    title = Text(5, 200, multiline=False, required=True)
    problem = Text(1, 4000, required=True)
    idea = Text(1, 4000, required=True)
    sector = fields.String(required=True, validate=OneOf(SECTORS))
    target_agency = Text(2, 100, multiline=False, required=True)
    location = fields.Nested(Location, required=True)
    volume = Real(required=True, validate=Range(0, MAX_VOLUME, min_inclusive=False))
    unit = Text(1, 30, multiline=False, required=True)
    estimated_cost = Int(required=True, validate=Range(0, MAX_COST))
    photos = fields.List(Ref(), validate=Length(max=MAX_PHOTOS), load_default=list)
    documents = fields.List(Ref(), validate=Length(max=MAX_DOCUMENTS), load_default=list)
    catalogue_code = Pattern(CATALOGUE_CODE, "catalogue code", load_default=None)


class SubmitProposal(_ProposalBody, Command):
    """A new proposal; the service adds ``kelurahan`` (its node's code) before
    passing the rest (without ``command_id``) to ``Proposal.submit``."""

    year = _year(required=True)
    proposer = fields.Nested(Proposer, required=True)


class ReviseProposal(_ProposalBody, ProposalCommand):
    """Changes to a returned proposal: any non-empty subset of REVISABLE_FIELDS."""

    def __init__(self, **kwargs):
        kwargs.setdefault("partial", REVISABLE_FIELDS)
        super().__init__(**kwargs)

    @validates_schema
    def _changes_something(self, data, **kwargs):
        if not any(field in data for field in REVISABLE_FIELDS):
            raise marshmallow.ValidationError("Give at least one field to change.")


def revision_changes(loaded):
    """The ``changes`` argument of ``Proposal.revise`` from a loaded ReviseProposal."""
    return {field: loaded[field] for field in REVISABLE_FIELDS if field in loaded}


class VerifyProposal(ProposalCommand):
    note = Text(0, 1000, load_default="")


class ReturnProposal(ProposalCommand):
    reason = _reason(required=True)


class RejectProposal(ProposalCommand):
    """A rejection: a reason code, with text required for ``other``."""

    code = fields.String(required=True, validate=OneOf(REJECTION_CODES))
    text = Text(0, 1000, load_default="")

    @validates_schema
    def _other_is_explained(self, data, **kwargs):
        if data["code"] == "other" and not data.get("text"):
            raise marshmallow.ValidationError("Explain the reason when the code is other.", "text")


class CancelProposal(ProposalCommand):
    reason = _reason(required=True)


class MergeProposal(ProposalCommand):
    """Merge ``proposal_id`` (the duplicate) into ``survivor_id``."""

    survivor_id = UuidStr(required=True)
    reason = _reason(required=True)

    @validates_schema
    def _not_itself(self, data, **kwargs):
        if data["proposal_id"] == data["survivor_id"]:
            raise marshmallow.ValidationError("Cannot merge a proposal into itself.", "survivor_id")


class ScoreProposal(ProposalCommand):
    """Scores 1-5 by criterion code; the criteria come from the proposal's forum."""

    scores = fields.Dict(
        keys=Pattern(CODE, "criterion code"),
        values=Int(validate=Range(1, 5)),
        required=True,
        validate=Length(1, MAX_CRITERIA),
    )


class ForwardProposal(ProposalCommand):
    rank = Int(required=True, validate=Range(1, 100_000))
    forum_id = Pattern(FORUM_ID, "forum id", required=True)


class DecideProposal(ProposalCommand):
    """A kecamatan or city decision; funded needs source and amount (city only),
    deferred and rejected need a reason, other decisions carry no funding."""

    level = fields.String(required=True, validate=OneOf(DECISION_LEVELS))
    decision = fields.String(required=True, validate=OneOf(DECISIONS))
    reason = Text(1, 1000, load_default=None)
    funding_source = fields.String(validate=OneOf(FUNDING_SOURCES), load_default=None)
    amount = Int(validate=Range(1, MAX_COST), load_default=None)

    @validates_schema
    def _consistent(self, data, **kwargs):
        if data["decision"] == "funded":
            if data["level"] != "city":
                raise marshmallow.ValidationError("Funding is decided at city level.", "level")
            for field in ("funding_source", "amount"):
                if data.get(field) is None:
                    raise marshmallow.ValidationError("Required when funded.", field)
        else:
            for field in ("funding_source", "amount"):
                if data.get(field) is not None:
                    raise marshmallow.ValidationError("Only for a funded decision.", field)
        if data["decision"] in ("deferred", "rejected") and not data.get("reason"):
            raise marshmallow.ValidationError("Required for this decision.", "reason")


class ReportProgress(ProposalCommand):
    percent = Int(required=True, validate=Range(0, 100))
    milestone = Text(1, 300, required=True)


# -- forum commands ---------------------------------------------------------------------


class ScheduleForum(Command):
    """A forum for a plan year; the service derives the id from its kelurahan and year."""

    year = _year(required=True)
    date = IsoDate(required=True)
    theme = Text(1, 200, multiline=False, required=True)
    place = Text(1, 200, multiline=False, required=True)


class ForumCommand(Command):
    forum_id = Pattern(FORUM_ID, "forum id", required=True)


class SetCriteria(ForumCommand):
    """The forum's criteria; omitted or null adopts DEFAULT_CRITERIA."""

    criteria = fields.List(
        fields.Nested(Criterion), validate=Length(1, MAX_CRITERIA), load_default=None
    )

    @validates_schema
    def _unique_codes(self, data, **kwargs):
        if data.get("criteria"):
            _unique(data["criteria"], "code", "Criterion codes must be unique.")


class RecordForum(ForumCommand):
    """That the forum took place; passed (without ids) to ``Forum.hold``."""

    held_on = IsoDate(required=True)
    attendance = Int(required=True, validate=Range(0, 100_000))
    berita_acara = Ref(required=True)
    delegates = fields.List(fields.Nested(Delegate), validate=Length(max=100), load_default=list)

    @validates_schema
    def _unique_delegates(self, data, **kwargs):
        _unique(data.get("delegates", []), "delegate_id", "A delegate is listed twice.")


class RankForum(ForumCommand):
    ranking = fields.List(fields.Nested(RankedProposal), required=True, validate=Length(1, 2000))

    @validates_schema
    def _unique_proposals(self, data, **kwargs):
        _unique(data["ranking"], "proposal_id", "A proposal is ranked twice.")


# -- queries ----------------------------------------------------------------------------


class GetProposal(Strict):
    proposal_id = UuidStr(required=True)


def _target_agency(**kwargs):
    return Text(2, 100, multiline=False, **kwargs)


class CountByStatus(Strict):
    """Where and when to count: a kecamatan, a kelurahan, a plan year (each optional)."""

    kecamatan = Pattern(KECAMATAN_CODE, "kecamatan code", load_default=None)
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", load_default=None)
    year = _year(load_default=None)


class ListProposals(CountByStatus):
    """Filters and paging for a list of proposals."""

    rw = _rw(load_default=None)
    status = fields.String(validate=OneOf(STATUSES), load_default=None)
    sector = fields.String(validate=OneOf(SECTORS), load_default=None)
    target_agency = _target_agency(load_default=None)
    page = Int(validate=Range(1, 1_000_000), load_default=1)
    per_page = Int(validate=Range(1, 200), load_default=50)


#: Statuses a proposal can have once its kelurahan forum forwarded it.
FORWARDED_STATUSES = (
    "forwarded",
    "accepted_kecamatan",
    "accepted_city",
    "funded",
    "deferred",
    "rejected",
    "in_progress",
    "realised",
)
#: What a city ranking can be grouped by; each entry has its position in each of them.
RANKING_GROUPS = ("kecamatan", "sector", "target_agency")


class CityRanking(Strict):
    """The city ranking of one plan year: filters, an optional grouping, and a page
    (``limit`` entries from ``offset``)."""

    year = _year(required=True)
    kecamatan = Pattern(KECAMATAN_CODE, "kecamatan code", load_default=None)
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", load_default=None)
    sector = fields.String(validate=OneOf(SECTORS), load_default=None)
    target_agency = _target_agency(load_default=None)
    status = fields.String(validate=OneOf(FORWARDED_STATUSES), load_default=None)
    group_by = fields.String(validate=OneOf(RANKING_GROUPS), load_default=None)
    limit = Int(validate=Range(1, 500), load_default=100)
    offset = Int(validate=Range(0, 1_000_000), load_default=0)


# -- event payloads (``data`` of stored events) -----------------------------------------


class Event(Strict):
    """Base of event payload schemas; bump ``version`` and add an upcaster on change."""

    version = 1


class SubmittedEvent(_ProposalBody, Event):
    """Every submission field; absent optionals are stored as null or []."""

    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    year = _year(required=True)
    proposer = fields.Nested(Proposer, required=True)


class _Changes(_ProposalBody):
    """The changed fields of a revision (any subset)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("partial", True)
        super().__init__(**kwargs)


class RevisedEvent(Event):
    changes = fields.Nested(_Changes, required=True)


class VerifiedEvent(Event):
    note = Text(0, 1000, required=True)


class ReturnedEvent(Event):
    reason = _reason(required=True)


class RejectedEvent(Event):
    code = fields.String(required=True, validate=OneOf(REJECTION_CODES))
    text = Text(0, 1000, required=True)


class CancelledEvent(Event):
    reason = _reason(required=True)


class MergedEvent(Event):
    survivor_id = UuidStr(required=True)
    reason = _reason(required=True)


class CoProposer(Strict):
    proposal_id = UuidStr(required=True)
    proposer = fields.Nested(Proposer, required=True)


class AbsorbedEvent(Event):
    merged_id = UuidStr(required=True)
    proposer = fields.Nested(Proposer, required=True)
    co_proposers = fields.List(fields.Nested(CoProposer), required=True)


class ScoredEvent(Event):
    scores = fields.Dict(keys=Pattern(CODE, "criterion code"), values=Int(), required=True)
    criteria = fields.List(fields.Nested(Criterion), required=True)
    total = Real(required=True, validate=Range(1, 5))


class ForwardedEvent(Event):
    rank = Int(required=True, validate=Range(min=1))
    forum_id = Pattern(FORUM_ID, "forum id", required=True)


class DecidedEvent(Event):
    """Carries the proposal id and kelurahan so it can live in the decider's stream."""

    proposal_id = UuidStr(required=True)
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    level = fields.String(required=True, validate=OneOf(DECISION_LEVELS))
    decision = fields.String(required=True, validate=OneOf(DECISIONS))
    reason = Text(1, 1000, required=True, allow_none=True)
    funding_source = fields.String(required=True, allow_none=True, validate=OneOf(FUNDING_SOURCES))
    amount = Int(required=True, allow_none=True, validate=Range(1, MAX_COST))


class ProgressedEvent(Event):
    proposal_id = UuidStr(required=True)
    percent = Int(required=True, validate=Range(0, 100))
    milestone = Text(1, 300, required=True)


class RealisedEvent(Event):
    proposal_id = UuidStr(required=True)


class ForumScheduledEvent(Event):
    kelurahan = Pattern(KELURAHAN_CODE, "kelurahan code", required=True)
    year = _year(required=True)
    date = IsoDate(required=True)
    theme = Text(1, 200, multiline=False, required=True)
    place = Text(1, 200, multiline=False, required=True)


class ForumCriteriaSetEvent(Event):
    criteria = fields.List(
        fields.Nested(Criterion), required=True, validate=Length(1, MAX_CRITERIA)
    )


class ForumHeldEvent(Event):
    held_on = IsoDate(required=True)
    attendance = Int(required=True, validate=Range(min=0))
    berita_acara = Ref(required=True)
    delegates = fields.List(fields.Nested(Delegate), required=True)


class ForumRankedEvent(Event):
    ranking = fields.List(fields.Nested(RankedProposal), required=True)


EVENT_SCHEMAS = {
    "proposal.submitted": SubmittedEvent,
    "proposal.revised": RevisedEvent,
    "proposal.verified": VerifiedEvent,
    "proposal.returned": ReturnedEvent,
    "proposal.rejected": RejectedEvent,
    "proposal.cancelled": CancelledEvent,
    "proposal.merged": MergedEvent,
    "proposal.absorbed": AbsorbedEvent,
    "proposal.scored": ScoredEvent,
    "proposal.forwarded": ForwardedEvent,
    "proposal.decided": DecidedEvent,
    "proposal.progressed": ProgressedEvent,
    "proposal.realised": RealisedEvent,
    "forum.scheduled": ForumScheduledEvent,
    "forum.criteria_set": ForumCriteriaSetEvent,
    "forum.held": ForumHeldEvent,
    "forum.ranked": ForumRankedEvent,
}

# -- views (RPC output; dumped from ``snapshot()`` or projection rows) ------------------


class ActorRef(Schema):
    id = fields.String()
    role = fields.String()


class HistoryEntry(Schema):
    type = fields.String()
    actor = fields.Nested(ActorRef, allow_none=True)
    time = fields.String(allow_none=True)
    summary = fields.String()
    reason = fields.String(allow_none=True)


class ReasonEntry(Schema):
    status = fields.String()
    code = fields.String(allow_none=True)
    text = fields.String()
    time = fields.String(allow_none=True)


class DecisionEntry(Schema):
    level = fields.String()
    decision = fields.String()
    funding_source = fields.String(allow_none=True)
    amount = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    actor = fields.Nested(ActorRef, allow_none=True)
    time = fields.String(allow_none=True)


class Milestone(Schema):
    percent = fields.Integer()
    milestone = fields.String()
    time = fields.String(allow_none=True)


class ProposalView(Schema):
    """Everything about one proposal, including what happened to it and why."""

    id = fields.String()
    version = fields.Integer()
    kelurahan = fields.String()
    year = fields.Integer()
    title = fields.String()
    problem = fields.String()
    idea = fields.String()
    sector = fields.String()
    target_agency = fields.String()
    proposer = fields.Nested(Proposer)
    location = fields.Nested(Location)
    volume = fields.Float()
    unit = fields.String()
    estimated_cost = fields.Integer()
    photos = fields.List(fields.String())
    documents = fields.List(fields.String())
    catalogue_code = fields.String(allow_none=True)
    status = fields.String()
    verification_note = fields.String(allow_none=True)
    reasons = fields.List(fields.Nested(ReasonEntry))
    criteria = fields.List(fields.Nested(Criterion), allow_none=True)
    scores = fields.Dict(keys=fields.String(), values=fields.Integer(), allow_none=True)
    score_total = fields.Float(allow_none=True)
    rank = fields.Integer(allow_none=True)
    forum_id = fields.String(allow_none=True)
    decisions = fields.List(fields.Nested(DecisionEntry))
    progress = fields.Integer(allow_none=True)
    milestones = fields.List(fields.Nested(Milestone))
    merged_into = fields.String(allow_none=True)
    co_proposers = fields.List(fields.Nested(CoProposer))
    history = fields.List(fields.Nested(HistoryEntry))


class ProposalSummary(Schema):
    """One line of a proposal list."""

    id = fields.String()
    kelurahan = fields.String()
    year = fields.Integer()
    title = fields.String()
    sector = fields.String()
    target_agency = fields.String()
    proposer_level = fields.String()
    rw = fields.Integer(allow_none=True)
    estimated_cost = fields.Integer()
    status = fields.String()
    score_total = fields.Float(allow_none=True)
    rank = fields.Integer(allow_none=True)


def proposal_summary(view):
    """A ProposalSummary dict from a ``Proposal.snapshot()`` (or a ProposalView dict)."""
    return {
        "id": view["id"],
        "kelurahan": view["kelurahan"],
        "year": view["year"],
        "title": view["title"],
        "sector": view["sector"],
        "target_agency": view["target_agency"],
        "proposer_level": view["proposer"]["level"],
        "rw": view["location"]["rw"],
        "estimated_cost": view["estimated_cost"],
        "status": view["status"],
        "score_total": view.get("score_total"),
        "rank": view.get("rank"),
    }


class RankingEntry(Schema):
    """A ranked proposal; the proposal's title, RW, sector and cost when known."""

    rank = fields.Integer()
    proposal_id = fields.String()
    total = fields.Float()
    title = fields.String()
    rw = fields.Integer(allow_none=True)
    sector = fields.String()
    estimated_cost = fields.Integer()


class RankingPosition(Schema):
    """Where a proposal stands among the year's forwarded proposals: in the whole city,
    in its kecamatan, in its sector and among those for its target agency (each from 1)."""

    city = fields.Integer()
    kecamatan = fields.Integer()
    sector = fields.Integer()
    target_agency = fields.Integer()


class CityRankingEntry(Schema):
    """One forwarded proposal in the city ranking."""

    id = fields.String()
    kecamatan = fields.String()
    kelurahan = fields.String()
    year = fields.Integer()
    title = fields.String()
    sector = fields.String()
    target_agency = fields.String()
    rw = fields.Integer(allow_none=True)
    estimated_cost = fields.Integer()
    status = fields.String()
    score_total = fields.Float(allow_none=True)
    forum_id = fields.String(allow_none=True)
    forum_rank = fields.Integer()
    submitted_at = fields.String()
    position = fields.Nested(RankingPosition)


class HeldForum(Schema):
    held_on = fields.String()
    attendance = fields.Integer()
    berita_acara = fields.String()
    delegates = fields.List(fields.Nested(Delegate))


class ForumView(Schema):
    id = fields.String()
    version = fields.Integer()
    kelurahan = fields.String()
    year = fields.Integer()
    status = fields.String(validate=OneOf(FORUM_STATUSES))
    date = fields.String()
    theme = fields.String()
    place = fields.String()
    criteria = fields.List(fields.Nested(Criterion), allow_none=True)
    held = fields.Nested(HeldForum, allow_none=True)
    ranking = fields.List(fields.Nested(RankingEntry))
    history = fields.List(fields.Nested(HistoryEntry))


StatusCounts = Schema.from_dict(
    {"total": fields.Integer(dump_default=0)}
    | {status: fields.Integer(dump_default=0) for status in STATUSES},
    name="StatusCounts",
)
StatusCounts.__doc__ = "Number of proposals in each status, and their total."
