"""Musrenbang proposals (usulan) and kelurahan forums: pure domain, no I/O.

A :class:`Proposal` lives in stream ``proposal-<uuid>``; a :class:`Forum` in
``forum-<kelurahan>-<year>``. Every command checks, in this order, that the
entity exists (:class:`NotFound`), that the actor's role and scope allow it
(:class:`Forbidden`), that its arguments are sound (:class:`ValidationError`)
and that the current status allows it (:class:`Conflict`); only then does it
record its events, so a refused command never leaves a pending event behind.
(The creating commands check their data first: the scope depends on it.)
Error messages name roles, scopes, statuses and fields, never personal data.

Event data is JSON-native (str, int, float, bool, None, list, dict) and never
shares mutable objects with the aggregate's state.
"""

import math
import numbers
import re

from shared.actor import KELURAHAN_STAFF
from shared.domain import Aggregate, json_copy
from shared.errors import Conflict, Forbidden, ValidationError

PROPOSER_LEVELS = ("rt", "rw", "kelurahan", "pkk", "posyandu", "lpm", "karang_taruna")
SECTORS = (  # bidang urusan
    "pekerjaan_umum",
    "kesehatan",
    "pendidikan",
    "sosial",
    "lingkungan_hidup",
    "perhubungan",
    "ekonomi",
    "kependudukan",
    "ketertiban",
    "lainnya",
)
REJECTION_CODES = ("duplicate", "wrong_address", "already_proposed", "wrong_agency", "other")
DECISION_LEVELS = ("kecamatan", "city")
DECISIONS = ("accepted", "funded", "deferred", "rejected")
FUNDING_SOURCES = ("apbd", "dana_kelurahan", "hibah_rw")
STATUSES = (
    "submitted",
    "returned",
    "verified",
    "rejected",
    "cancelled",
    "merged",
    "forwarded",
    "accepted_kecamatan",
    "accepted_city",
    "funded",
    "deferred",
    "in_progress",
    "realised",
)
FORUM_STATUSES = ("scheduled", "held", "ranked")

#: Fields of a submission, in event order; ``kelurahan`` is set by the service.
SUBMISSION_FIELDS = (
    "kelurahan",
    "year",
    "title",
    "problem",
    "idea",
    "sector",
    "target_agency",
    "proposer",
    "location",
    "volume",
    "unit",
    "estimated_cost",
    "photos",
    "documents",
    "catalogue_code",
)
#: Fields a proposer may change while the proposal is returned for revision.
REVISABLE_FIELDS = (
    "title",
    "problem",
    "idea",
    "sector",
    "target_agency",
    "location",
    "volume",
    "unit",
    "estimated_cost",
    "photos",
    "documents",
    "catalogue_code",
)
_OPTIONAL_DEFAULTS = {"photos": [], "documents": [], "catalogue_code": None}
_PROPOSER_DEFAULTS = {"unit": None, "rw": None, "rt": None}
_LOCATION_DEFAULTS = {"rt": None, "address": None, "latitude": None, "longitude": None}

MAX_CRITERIA = 10
#: Criteria a kelurahan can adopt as they are: ``set_criteria(actor, None, meta)``.
#: Weights sum to 10, so a weight reads as a share of the total. Copy before changing.
DEFAULT_CRITERIA = (
    {"code": "urgency", "name": "Urgensi masalah", "weight": 3},
    {"code": "reach", "name": "Jangkauan penerima manfaat", "weight": 3},
    {"code": "cost_effectiveness", "name": "Efektivitas biaya", "weight": 2},
    {"code": "readiness", "name": "Kesiapan lahan dan teknis", "weight": 1},
    {"code": "rpjmd_alignment", "name": "Keselarasan dengan RPJMD", "weight": 1},
)

_STAFF_NAMES = ", ".join(KELURAHAN_STAFF)
_KELURAHAN_CODE = re.compile(r"^32\.75\.[0-9]{2}\.[0-9]{4}$")
_FORUM_ID = re.compile(r"^(32\.75\.[0-9]{2}\.[0-9]{4})-([0-9]{4})$")


def proposal_stream(proposal_id):
    """The stream name of a proposal."""
    return f"proposal-{proposal_id}"


def make_forum_id(kelurahan, year):
    """The id of a kelurahan's forum for a plan year, e.g. ``32.75.05.1002-2027``."""
    return f"{kelurahan}-{year}"


def forum_stream(forum_id):
    """The stream name of a forum."""
    return f"forum-{forum_id}"


def weighted_total(scores, criteria):
    """``sum(weight * score) / sum(weight)`` rounded to 3 decimals; inputs must be valid."""
    total_weight = sum(c["weight"] for c in criteria)
    weighted = sum(c["weight"] * scores[c["code"]] for c in criteria)
    return round(weighted / total_weight, 3)


# -- argument checks: each raises ValidationError naming the field -------------------------


def _invalid(field, message):
    return ValidationError({field: [message]})


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_positive_number(value):
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _require_text(field, value):
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "A non-empty text is required.")
    return value


def _optional_text(field, value):
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(field, "Must be a text.")
    return value


def validate_criteria(criteria):
    """Return a JSON-native copy of ``criteria`` or raise ValidationError.

    Guarantees 1 to 10 criteria, each ``{"code", "name", "weight"}`` with a unique
    non-empty code and a finite weight > 0.
    """
    if not isinstance(criteria, list | tuple) or not 1 <= len(criteria) <= MAX_CRITERIA:
        raise _invalid("criteria", f"Give between 1 and {MAX_CRITERIA} criteria.")
    seen, cleaned = set(), []
    for i, criterion in enumerate(criteria):
        if not isinstance(criterion, dict):
            raise _invalid("criteria", f"Criterion {i} must be an object.")
        code, name, weight = (criterion.get(k) for k in ("code", "name", "weight"))
        if not isinstance(code, str) or not code:
            raise _invalid("criteria", f"Criterion {i} needs a code.")
        if code in seen:
            raise _invalid("criteria", f"Criterion code {code!r} is given twice.")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("criteria", f"Criterion {code!r} needs a name.")
        if not _is_positive_number(weight):
            raise _invalid("criteria", f"Criterion {code!r} needs a weight greater than 0.")
        seen.add(code)
        cleaned.append({"code": code, "name": name, "weight": weight})
    return cleaned


def _validate_scores(scores, criteria):
    if not isinstance(scores, dict):
        raise _invalid("scores", "Must map each criterion code to a score.")
    codes = [c["code"] for c in criteria]
    problems = {}
    for code in scores:
        if code not in codes:
            problems[str(code)] = ["Unknown criterion."]
    for code in codes:
        if code not in scores:
            problems[code] = ["Every criterion must be scored."]
        elif not _is_int(scores[code]) or not 1 <= scores[code] <= 5:
            problems[code] = ["Score must be a whole number from 1 to 5."]
    if problems:
        raise ValidationError({"scores": problems})
    return {code: int(scores[code]) for code in codes}


# -- role and scope checks: each raises Forbidden naming the role/scope problem -------------


def _require_scope(actor, kelurahan):
    if not actor.covers(kelurahan):
        raise Forbidden(
            f"the scope of role {actor.role} ({actor.kelurahan}) does not cover kelurahan "
            f"{kelurahan}"
        )


def _require_staff(actor, kelurahan, action):
    if actor.role not in KELURAHAN_STAFF:
        raise Forbidden(f"role {actor.role} cannot {action}; only kelurahan staff ({_STAFF_NAMES})")
    _require_scope(actor, kelurahan)


def _require_proposer_unit(actor, kelurahan, proposer, location, action):
    """Allow kelurahan staff of ``kelurahan``, or the RT/RW chair the proposal belongs to.

    A ketua RT acts for proposer level ``rt`` of its own RW and RT, a ketua RW for
    level ``rw`` of its own RW; for both, the location must lie in that RW.
    """
    if actor.role in KELURAHAN_STAFF:
        _require_scope(actor, kelurahan)
        return
    chair_levels = {"ketua_rt": "rt", "ketua_rw": "rw"}
    if actor.role not in chair_levels:
        raise Forbidden(
            f"role {actor.role} cannot {action}; only RT/RW chairs and kelurahan staff "
            f"({_STAFF_NAMES})"
        )
    level = chair_levels[actor.role]
    if proposer.get("level") != level:
        raise Forbidden(
            f"role {actor.role} can only {action} for proposer level {level!r}, "
            f"not {proposer.get('level')!r}"
        )
    rw, rt = proposer.get("rw"), proposer.get("rt")
    if not actor.covers(kelurahan, rw, rt):
        raise Forbidden(
            f"the scope of role {actor.role} (kelurahan {actor.kelurahan}, RW {actor.rw}, "
            f"RT {actor.rt}) does not cover RW {rw}, RT {rt} of kelurahan {kelurahan}"
        )
    if location.get("rw") != rw:
        raise Forbidden(
            f"role {actor.role} can only {action} for a location inside its own RW {actor.rw}"
        )


def _history_entry(type_, meta, summary, reason=None):
    return {
        "type": type_,
        "actor": json_copy(meta.get("actor")),
        "time": meta.get("time"),
        "summary": summary,
        "reason": reason,
    }


def _with_defaults(values, defaults):
    """A copy of ``values`` with ``defaults`` (scalars) for the keys it lacks."""
    return {**defaults, **json_copy(values)}


class Proposal(Aggregate):
    """A Musrenbang proposal (usulan) from an RT, RW or kelurahan body.

    Lifecycle: submitted -> (returned -> submitted)* -> verified -> [scored] ->
    forwarded -> accepted_kecamatan -> accepted_city -> funded -> in_progress ->
    realised; side exits: rejected, cancelled, merged, deferred (all final).
    """

    noun = "proposal"

    def __init__(self, id):
        super().__init__(id)
        self.details = {}  # the submitted fields, as revised
        self.status = None
        self.verification_note = None
        self.reasons = []  # {"status", "code", "text", "time"}
        self.criteria = None
        self.scores = None
        self.score_total = None
        self.rank = None
        self.forum_id = None
        self.decisions = []
        self.progress = None
        self.milestones = []
        self.merged_into = None
        self.co_proposers = []  # {"proposal_id", "proposer"} of absorbed duplicates
        self.history = []

    # -- read helpers ------------------------------------------------------------------

    @property
    def kelurahan(self):
        return self.details.get("kelurahan")

    @property
    def year(self):
        return self.details.get("year")

    @property
    def proposer(self):
        return self.details.get("proposer")

    @property
    def location(self):
        return self.details.get("location")

    def snapshot(self, copy=True):
        """The whole state as a JSON-native dict (the shape of ``ProposalView``).

        ``copy=False`` shares the aggregate's own lists and dicts: for a caller
        that serialises the snapshot at once and keeps nothing of it.
        """
        state = {
            "id": self.id,
            "version": self.version,
            **self.details,
            "status": self.status,
            "verification_note": self.verification_note,
            "reasons": self.reasons,
            "criteria": self.criteria,
            "scores": self.scores,
            "score_total": self.score_total,
            "rank": self.rank,
            "forum_id": self.forum_id,
            "decisions": self.decisions,
            "progress": self.progress,
            "milestones": self.milestones,
            "merged_into": self.merged_into,
            "co_proposers": self.co_proposers,
            "history": self.history,
        }
        return json_copy(state) if copy else state

    # -- commands ----------------------------------------------------------------------

    @classmethod
    def submit(cls, id, actor, data, meta):
        """Create a proposal from SubmitProposal data plus ``kelurahan``; records
        ``proposal.submitted`` with every submission field (absent optionals as
        None or [])."""
        data = cls._submission(data)
        _require_proposer_unit(
            actor, data["kelurahan"], data["proposer"], data["location"], "submit proposals"
        )
        proposal = cls(id)
        proposal.record("proposal.submitted", data, meta)
        return proposal

    @staticmethod
    def _submission(data):
        if not isinstance(data, dict):
            raise _invalid("_schema", "Proposal data must be an object.")
        missing = [f for f in SUBMISSION_FIELDS if f not in data and f not in _OPTIONAL_DEFAULTS]
        if missing:
            raise ValidationError({f: ["Missing data for required field."] for f in missing})
        if not isinstance(data["kelurahan"], str) or not _KELURAHAN_CODE.match(data["kelurahan"]):
            raise _invalid("kelurahan", "Not a kelurahan code of Kota Bekasi.")
        proposer, location = data["proposer"], data["location"]
        if not isinstance(proposer, dict) or proposer.get("level") not in PROPOSER_LEVELS:
            raise _invalid("proposer", f"level must be one of {', '.join(PROPOSER_LEVELS)}.")
        if not isinstance(location, dict) or not _is_int(location.get("rw")):
            raise _invalid("location", "An RW number is required.")
        submission = {}
        for f in SUBMISSION_FIELDS:  # each value copied once
            if f == "proposer":
                submission[f] = _with_defaults(proposer, _PROPOSER_DEFAULTS)
            elif f == "location":
                submission[f] = _with_defaults(location, _LOCATION_DEFAULTS)
            else:
                submission[f] = json_copy(data.get(f, _OPTIONAL_DEFAULTS.get(f)))
        return submission

    def revise(self, actor, changes, meta):
        """Change fields of a returned proposal; records ``proposal.revised`` with
        only the fields whose value differs, and the proposal is submitted again."""
        self._require_exists()
        _require_proposer_unit(
            actor, self.kelurahan, self.proposer, self.location, "revise proposals"
        )
        if not isinstance(changes, dict):
            raise _invalid("_schema", "Changes must be an object.")
        unknown = sorted(str(f) for f in changes if f not in REVISABLE_FIELDS)
        if unknown:
            raise ValidationError({f: ["This field cannot be revised."] for f in unknown})
        changed = {f: json_copy(v) for f, v in changes.items() if self.details.get(f) != v}
        if "location" in changed:
            changed["location"] = _with_defaults(changed["location"], _LOCATION_DEFAULTS)
            _require_proposer_unit(
                actor, self.kelurahan, self.proposer, changed["location"], "revise proposals"
            )
        if not changed:
            raise _invalid("_schema", "The revision changes nothing.")
        self._require_status(("returned",), "revised")
        self.record("proposal.revised", {"changes": changed}, meta)

    def verify(self, actor, note, meta):
        """Staff confirm a submitted proposal; records ``proposal.verified``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "verify proposals")
        note = _optional_text("note", note) or ""
        self._require_status(("submitted",), "verified")
        self.record("proposal.verified", {"note": note}, meta)

    def return_for_revision(self, actor, reason, meta):
        """Staff send a submitted proposal back to its proposer; records ``proposal.returned``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "return proposals for revision")
        _require_text("reason", reason)
        self._require_status(("submitted",), "returned for revision")
        self.record("proposal.returned", {"reason": reason}, meta)

    def reject(self, actor, reason, meta):
        """Staff reject a submitted or verified proposal; ``reason`` is
        ``{"code": one of REJECTION_CODES, "text": str}`` (text required for "other").
        Records ``proposal.rejected``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "reject proposals")
        code, text = self._rejection(reason)
        self._require_status(("submitted", "verified"), "rejected")
        self.record("proposal.rejected", {"code": code, "text": text}, meta)

    @staticmethod
    def _rejection(reason):
        if not isinstance(reason, dict):
            raise _invalid("reason", "Give a reason code and text.")
        code, text = reason.get("code"), _optional_text("text", reason.get("text")) or ""
        if code not in REJECTION_CODES:
            raise _invalid("code", f"Must be one of: {', '.join(REJECTION_CODES)}.")
        if code == "other" and not text.strip():
            raise _invalid("text", "Explain the reason when the code is 'other'.")
        return code, text

    def cancel(self, actor, reason, meta):
        """The proposer unit or staff withdraw a proposal not yet forwarded;
        records ``proposal.cancelled``."""
        self._require_exists()
        _require_proposer_unit(
            actor, self.kelurahan, self.proposer, self.location, "cancel proposals"
        )
        _require_text("reason", reason)
        self._require_status(("submitted", "returned", "verified"), "cancelled")
        self.record("proposal.cancelled", {"reason": reason}, meta)

    def _check_mergeable(self, actor, other_id, field, *reason):
        """Checks common to both sides of a merge; ``reason`` (the duplicate's) if given."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "merge proposals")
        if other_id == self.id:
            raise _invalid(field, "A proposal cannot be merged with itself.")
        if reason:
            _require_text("reason", reason[0])
        self._require_status(("submitted", "verified"), "merged")

    def merge_into(self, actor, survivor_id, reason, meta):
        """Mark this proposal a duplicate of ``survivor_id``; records ``proposal.merged``.

        Prefer :func:`merge`, which also checks the survivor and records both sides.
        """
        self._check_mergeable(actor, survivor_id, "survivor_id", reason)
        self.record("proposal.merged", {"survivor_id": survivor_id, "reason": reason}, meta)

    def absorb(self, actor, merged_id, merged_proposer, meta, co_proposers=()):
        """Take in a merged duplicate, keeping its proposer (and the co-proposers it
        had absorbed) as co-proposers; records ``proposal.absorbed``."""
        self._check_mergeable(actor, merged_id, "merged_id")
        if any(c["proposal_id"] == merged_id for c in self.co_proposers):
            raise Conflict(f"proposal {merged_id} was already merged into this proposal")
        data = {
            "merged_id": merged_id,
            "proposer": json_copy(merged_proposer),
            "co_proposers": json_copy(list(co_proposers)),
        }
        self.record("proposal.absorbed", data, meta)

    def score(self, actor, scores, criteria, meta):
        """Staff score a verified proposal 1-5 on every criterion; records
        ``proposal.scored`` with the scores, the criteria and the weighted total.
        Scoring again replaces the previous scores."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "score proposals")
        criteria = validate_criteria(criteria)
        scores = _validate_scores(scores, criteria)
        self._require_status(("verified",), "scored")
        data = {"scores": scores, "criteria": criteria, "total": weighted_total(scores, criteria)}
        self.record("proposal.scored", data, meta)

    def forward(self, actor, rank, forum_id, meta):
        """Staff send a verified, scored proposal to the kecamatan with its forum rank;
        records ``proposal.forwarded``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "forward proposals")
        if not _is_int(rank) or rank < 1:
            raise _invalid("rank", "Must be a whole number from 1.")
        expected = make_forum_id(self.kelurahan, self.year)
        if forum_id != expected:
            raise _invalid("forum_id", f"This proposal belongs to forum {expected}.")
        self._require_status(("verified",), "forwarded")
        if self.scores is None:
            raise Conflict("proposal has not been scored; only a scored proposal can be forwarded")
        self.record("proposal.forwarded", {"rank": int(rank), "forum_id": forum_id}, meta)

    def decide(
        self, actor, level, decision, reason=None, funding_source=None, amount=None, meta=None
    ):
        """Record a kecamatan (camat) or city (bappeda) decision; records ``proposal.decided``.

        kecamatan: from forwarded; accepted/deferred/rejected (funding is a city decision).
        city: from accepted_kecamatan (any decision) or accepted_city (not accepted again).
        funded needs funding_source and a whole-rupiah amount > 0; deferred and rejected
        need a reason.
        """
        self._require_exists()
        self._require_decider(actor, level)
        reason = _optional_text("reason", reason)
        _validate_decision(level, decision, reason, funding_source, amount)
        if level == "kecamatan":
            self._require_status(("forwarded",), "decided by the kecamatan")
        elif decision == "accepted":
            self._require_status(("accepted_kecamatan",), "accepted by the city")
        else:
            self._require_status(("accepted_kecamatan", "accepted_city"), "decided by the city")
        data = {
            "proposal_id": self.id,
            "kelurahan": self.kelurahan,
            "level": level,
            "decision": decision,
            "reason": reason,
            "funding_source": funding_source,
            "amount": int(amount) if amount is not None else None,
        }
        self.record("proposal.decided", data, meta)

    def _require_decider(self, actor, level):
        if level not in DECISION_LEVELS:
            raise _invalid("level", f"Must be one of: {', '.join(DECISION_LEVELS)}.")
        role = {"kecamatan": "camat", "city": "bappeda"}[level]
        if actor.role != role:
            raise Forbidden(f"role {actor.role} cannot decide at {level} level; only {role}")
        _require_scope(actor, self.kelurahan)

    def report_progress(self, actor, percent, milestone, meta):
        """Staff or bappeda report realisation of a funded proposal; records
        ``proposal.progressed`` and, at 100 percent, ``proposal.realised``."""
        self._require_exists()
        if actor.role not in (*KELURAHAN_STAFF, "bappeda"):
            raise Forbidden(
                f"role {actor.role} cannot report progress; only kelurahan staff "
                f"({_STAFF_NAMES}) or bappeda"
            )
        _require_scope(actor, self.kelurahan)
        if not _is_int(percent) or not 0 <= percent <= 100:
            raise _invalid("percent", "Must be a whole number from 0 to 100.")
        _require_text("milestone", milestone)
        self._require_status(("funded", "in_progress"), "reported on")
        if self.progress is not None and percent < self.progress:
            raise Conflict(
                f"progress is already {self.progress}%; a report cannot lower it to {percent}%"
            )
        data = {"proposal_id": self.id, "percent": int(percent), "milestone": milestone}
        self.record("proposal.progressed", data, meta)
        if percent == 100:
            self.record("proposal.realised", {"proposal_id": self.id}, meta)

    # -- folding events into state -----------------------------------------------------

    def _note(self, type_, meta, summary, reason=None):
        self.history.append(_history_entry(type_, meta, summary, reason))

    def _add_reason(self, meta, code, text):
        self.reasons.append(
            {"status": self.status, "code": code, "text": text, "time": meta.get("time")}
        )

    def on_submitted(self, data, meta):
        self.details = json_copy(data)
        self.status = "submitted"
        self._note("proposal.submitted", meta, "submitted")

    def on_revised(self, data, meta):
        changes = json_copy(data["changes"])
        self.details.update(changes)
        self.status = "submitted"
        self._note("proposal.revised", meta, "revised: " + ", ".join(sorted(changes)))

    def on_verified(self, data, meta):
        self.status = "verified"
        self.verification_note = data.get("note") or ""
        self._note("proposal.verified", meta, "verified", data.get("note") or None)

    def on_returned(self, data, meta):
        self.status = "returned"
        self._add_reason(meta, None, data["reason"])
        self._note("proposal.returned", meta, "returned for revision", data["reason"])

    def on_rejected(self, data, meta):
        self.status = "rejected"
        self._add_reason(meta, data["code"], data.get("text") or "")
        self._note("proposal.rejected", meta, f"rejected ({data['code']})", data.get("text"))

    def on_cancelled(self, data, meta):
        self.status = "cancelled"
        self._add_reason(meta, None, data["reason"])
        self._note("proposal.cancelled", meta, "cancelled", data["reason"])

    def on_merged(self, data, meta):
        self.status = "merged"
        self.merged_into = data["survivor_id"]
        self._add_reason(meta, "duplicate", data["reason"])
        summary = f"merged into proposal {data['survivor_id']}"
        self._note("proposal.merged", meta, summary, data["reason"])

    def on_absorbed(self, data, meta):
        self.co_proposers.append(
            {"proposal_id": data["merged_id"], "proposer": json_copy(data["proposer"])}
        )
        self.co_proposers.extend(json_copy(data.get("co_proposers") or []))
        self._note("proposal.absorbed", meta, f"absorbed duplicate proposal {data['merged_id']}")

    def on_scored(self, data, meta):
        self.scores = dict(data["scores"])
        self.criteria = json_copy(data["criteria"])
        self.score_total = data["total"]
        self._note("proposal.scored", meta, f"scored {data['total']}")

    def on_forwarded(self, data, meta):
        self.status = "forwarded"
        self.rank = data["rank"]
        self.forum_id = data["forum_id"]
        self._note("proposal.forwarded", meta, f"forwarded to the kecamatan at rank {data['rank']}")

    def on_decided(self, data, meta):
        self.status = _decided_status(data["level"], data["decision"])
        self.decisions.append(
            {
                "level": data["level"],
                "decision": data["decision"],
                "funding_source": data.get("funding_source"),
                "amount": data.get("amount"),
                "reason": data.get("reason"),
                "actor": json_copy(meta.get("actor")),
                "time": meta.get("time"),
            }
        )
        if data.get("reason") and data["decision"] in ("deferred", "rejected"):
            self._add_reason(meta, data["level"], data["reason"])
        summary = f"{data['level']}: {data['decision']}"
        self._note("proposal.decided", meta, summary, data.get("reason"))

    def on_progressed(self, data, meta):
        self.status = "in_progress"
        self.progress = data["percent"]
        self.milestones.append(
            {"percent": data["percent"], "milestone": data["milestone"], "time": meta.get("time")}
        )
        self._note("proposal.progressed", meta, f"progress {data['percent']}%", data["milestone"])

    def on_realised(self, data, meta):
        self.status = "realised"
        self._note("proposal.realised", meta, "realised")


def _validate_decision(level, decision, reason, funding_source, amount):
    if decision not in DECISIONS:
        raise _invalid("decision", f"Must be one of: {', '.join(DECISIONS)}.")
    if decision == "funded":
        if level != "city":
            raise _invalid("decision", "Funding is decided at city level.")
        if funding_source not in FUNDING_SOURCES:
            raise _invalid("funding_source", f"Must be one of: {', '.join(FUNDING_SOURCES)}.")
        if not _is_int(amount) or amount <= 0:
            raise _invalid("amount", "Must be a whole number of rupiah greater than 0.")
    elif funding_source is not None or amount is not None:
        raise _invalid("decision", "Only a funded decision carries a funding source and amount.")
    if decision in ("deferred", "rejected") and not (reason and reason.strip()):
        raise _invalid("reason", f"A {decision} decision needs a reason.")


def _decided_status(level, decision):
    if decision == "accepted":
        return "accepted_kecamatan" if level == "kecamatan" else "accepted_city"
    return decision


def merge(actor, duplicate, survivor, reason, meta):
    """Merge ``duplicate`` into ``survivor``: both must be submitted or verified, of the
    same kelurahan and plan year, and distinct. Checks both before recording anything,
    then records ``proposal.merged`` on the duplicate and ``proposal.absorbed`` on the
    survivor (which keeps the duplicate's proposer and co-proposers)."""
    duplicate._check_mergeable(actor, survivor.id, "survivor_id", reason)
    survivor._check_mergeable(actor, duplicate.id, "proposal_id")
    if duplicate.kelurahan != survivor.kelurahan:
        raise Conflict("proposals of different kelurahan cannot be merged")
    if duplicate.year != survivor.year:
        raise Conflict("proposals of different plan years cannot be merged")
    if any(c["proposal_id"] == duplicate.id for c in survivor.co_proposers):
        raise Conflict(f"proposal {duplicate.id} was already merged into this proposal")
    duplicate.merge_into(actor, survivor.id, reason, meta)
    survivor.absorb(actor, duplicate.id, duplicate.proposer, meta, duplicate.co_proposers)
    return duplicate, survivor


class Decision(Aggregate):
    """A kecamatan or city decision made on the city node, in the city's own stream
    ``decision-<uuid>`` (one writer per stream): the proposal it names belongs to its
    kelurahan, which folds the decision into the proposal when it arrives."""

    noun = "decision"

    @classmethod
    def taken_on(cls, decision_id, proposal):
        """The decision a replica of ``proposal`` just recorded (``Proposal.decide``)."""
        decision = cls(decision_id)
        for type_, data, meta in proposal.pending:
            decision.record(type_, data, meta)
        return decision

    def on_decided(self, data, meta):
        self.status = "recorded"
        self.data = dict(data)


class Forum(Aggregate):
    """A kelurahan's Musrenbang forum for one plan year (id ``<kelurahan>-<year>``).

    Order: scheduled -> criteria set (any time before ranking) -> held -> ranked.
    """

    noun = "forum"

    def __init__(self, id):
        super().__init__(id)
        self.status = None
        self.kelurahan = None
        self.year = None
        self.date = None
        self.theme = None
        self.place = None
        self.criteria = None
        self.held = None  # {"held_on", "attendance", "berita_acara", "delegates"}
        self.ranking = []  # {"rank", "proposal_id", "total"}
        self.history = []

    def criteria_in_effect(self):
        """The forum's criteria, or DEFAULT_CRITERIA until it sets its own (a copy)."""
        return json_copy(list(self.criteria or DEFAULT_CRITERIA))

    def snapshot(self, copy=True):
        """The whole state as a JSON-native dict (the shape of ``ForumView``).

        ``copy=False`` shares the aggregate's own lists and dicts: for a caller
        that serialises the snapshot at once and keeps nothing of it.
        """
        state = {
            "id": self.id,
            "version": self.version,
            "kelurahan": self.kelurahan,
            "year": self.year,
            "status": self.status,
            "date": self.date,
            "theme": self.theme,
            "place": self.place,
            "criteria": self.criteria,
            "held": self.held,
            "ranking": self.ranking,
            "history": self.history,
        }
        return json_copy(state) if copy else state

    @classmethod
    def schedule(cls, id, actor, data, meta):
        """Create the forum ``<kelurahan>-<year>`` with date, theme and place;
        records ``forum.scheduled`` (with kelurahan and year taken from the id)."""
        match = _FORUM_ID.match(id) if isinstance(id, str) else None
        if match is None:
            raise _invalid("forum_id", "Must look like <kelurahan code>-<plan year>.")
        kelurahan, year = match.group(1), int(match.group(2))
        _require_staff(actor, kelurahan, "schedule forums")
        if not isinstance(data, dict):
            raise _invalid("_schema", "Forum data must be an object.")
        for field in ("date", "theme", "place"):
            _require_text(field, data.get(field))
        if data.get("year", year) != year or data.get("kelurahan", kelurahan) != kelurahan:
            raise _invalid("forum_id", "The forum id does not match the kelurahan and year.")
        forum = cls(id)
        event = {"kelurahan": kelurahan, "year": year}
        event.update({f: data[f] for f in ("date", "theme", "place")})
        forum.record("forum.scheduled", event, meta)
        return forum

    def set_criteria(self, actor, criteria, meta):
        """Set the scoring criteria (``None`` adopts DEFAULT_CRITERIA) until the forum
        ranks; records ``forum.criteria_set``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "set forum criteria")
        criteria = validate_criteria(list(DEFAULT_CRITERIA) if criteria is None else criteria)
        if self.status == "ranked":
            raise Conflict("forum is ranked; criteria can only change before ranking")
        self.record("forum.criteria_set", {"criteria": json_copy(criteria)}, meta)

    def hold(self, actor, data, meta):
        """Record that the scheduled forum took place (date held, attendance, berita
        acara reference, elected delegates); records ``forum.held``.

        Named ``hold`` because ``record`` is the base class's event recorder.
        """
        self._require_exists()
        _require_staff(actor, self.kelurahan, "record forums")
        held = self._held_data(data)
        if self.status != "scheduled":
            raise Conflict(
                f"forum is {self.status}; only a scheduled forum can be recorded as held"
            )
        self.record("forum.held", held, meta)

    @staticmethod
    def _held_data(data):
        if not isinstance(data, dict):
            raise _invalid("_schema", "Forum record must be an object.")
        _require_text("held_on", data.get("held_on"))
        _require_text("berita_acara", data.get("berita_acara"))
        attendance = data.get("attendance")
        if not _is_int(attendance) or attendance < 0:
            raise _invalid("attendance", "Must be a whole number from 0.")
        delegates = data.get("delegates", [])
        if not isinstance(delegates, list) or not all(
            isinstance(d, dict) and isinstance(d.get("delegate_id"), str) for d in delegates
        ):
            raise _invalid("delegates", "Each delegate needs a pseudonymous delegate_id.")
        return {
            "held_on": data["held_on"],
            "attendance": int(attendance),
            "berita_acara": data["berita_acara"],
            "delegates": [
                {"delegate_id": d["delegate_id"], "rw": d.get("rw"), "role": d.get("role")}
                for d in delegates
            ],
        }

    def rank(self, actor, ranking, meta):
        """Record the forum's agreed order of proposals (first = highest priority);
        needs criteria set and the forum held, once only; records ``forum.ranked``."""
        self._require_exists()
        _require_staff(actor, self.kelurahan, "rank forum proposals")
        entries = _ranking_entries(ranking)
        if self.criteria is None:
            raise Conflict("forum has no criteria; set the criteria before ranking")
        if self.status != "held":
            raise Conflict(f"forum is {self.status}; only a held forum can rank its proposals")
        self.record("forum.ranked", {"ranking": entries}, meta)

    # -- folding events into state -----------------------------------------------------

    def _note(self, type_, meta, summary):
        self.history.append(_history_entry(type_, meta, summary))

    def on_scheduled(self, data, meta):
        self.status = "scheduled"
        self.kelurahan, self.year = data["kelurahan"], data["year"]
        self.date, self.theme, self.place = data["date"], data["theme"], data["place"]
        self._note("forum.scheduled", meta, f"scheduled on {data['date']}")

    def on_criteria_set(self, data, meta):
        self.criteria = json_copy(data["criteria"])
        codes = ", ".join(c["code"] for c in data["criteria"])
        self._note("forum.criteria_set", meta, f"criteria set: {codes}")

    def on_held(self, data, meta):
        self.status = "held"
        self.held = json_copy(data)
        self._note("forum.held", meta, f"held on {data['held_on']}")

    def on_ranked(self, data, meta):
        self.status = "ranked"
        self.ranking = [
            {"rank": i, "proposal_id": e["proposal_id"], "total": e["total"]}
            for i, e in enumerate(data["ranking"], start=1)
        ]
        self._note("forum.ranked", meta, f"ranked {len(data['ranking'])} proposals")


def _ranking_entries(ranking):
    if not isinstance(ranking, list) or not ranking:
        raise _invalid("ranking", "Give the ranked proposals in order.")
    seen, entries = set(), []
    for entry in ranking:
        if not isinstance(entry, dict) or not isinstance(entry.get("proposal_id"), str):
            raise _invalid("ranking", "Each entry needs a proposal_id and a total.")
        total = entry.get("total")
        if (
            isinstance(total, bool)
            or not isinstance(total, numbers.Real)
            or not math.isfinite(total)
        ):
            raise _invalid("ranking", "Each entry needs a numeric total.")
        if entry["proposal_id"] in seen:
            raise _invalid("ranking", f"Proposal {entry['proposal_id']} is ranked twice.")
        seen.add(entry["proposal_id"])
        entries.append({"proposal_id": entry["proposal_id"], "total": total})
    return entries
