"""Who hears of which event, with which template: pure functions, no I/O.

:func:`notices` turns one event of another service into :class:`Notice` s:
a template, its parameters, and the audiences to resolve against the contact
registry (a user by pseudonymous id, or a role in this kelurahan, optionally
in one RW). What an event does not carry (a proposal's title and proposer, a
forum's delegates, a request's kind) comes from ``memory``, notify's record
of the entities it has seen (:mod:`services.notify.memory`).

The texts carry no personal data: titles, reasons, amounts, RW numbers,
categories. A vulnerable resident's record reaches the RW's pamor as the RW
and the kind of record only: the pamor looks the resident up in the citizens
service, where that look is recorded.
"""

from dataclasses import dataclass, field

from services.notify.templates import rupiah
from shared import wilayah


@dataclass(frozen=True)
class Audience:
    """A user (``user``), or everyone holding ``role`` in this kelurahan (and ``rw``), or
    in another ``area`` (on the city node: the kecamatan a camat serves)."""

    user: str | None = None
    role: str | None = None
    rw: int | None = None
    area: str | None = None


@dataclass(frozen=True)
class Notice:
    template: str
    params: dict
    audiences: tuple = field(default_factory=tuple)


PROPOSAL_STATUS = (
    "proposal.submitted",
    "proposal.returned",
    "proposal.verified",
    "proposal.rejected",
    "proposal.cancelled",
    "proposal.merged",
    "proposal.absorbed",
    "proposal.forwarded",
    "proposal.decided",
    "proposal.progressed",
    "proposal.realised",
)
FORUM_TYPES = ("forum.scheduled", "forum.held", "forum.ranked")
BUDGET_TYPES = ("expense.recorded", "line.threshold_crossed", "advance.overdue")
VULNERABILITY_TYPES = {
    "resident.disability_recorded": "disabilitas",
    "resident.welfare_recorded": "kesejahteraan/DTSEN",
    "resident.health_recorded": "kesehatan/perawatan",
    "resident.pregnancy_recorded": "kehamilan",
}
REQUEST_TYPES = ("request.raised", "request.assigned", "request.done", "request.cancelled")

#: What notify follows of each source (the subscriptions' ``event_types``).
FOLLOWED = {
    "proposals": ("proposal.revised", *PROPOSAL_STATUS, *FORUM_TYPES),
    "citizens": (*VULNERABILITY_TYPES, *REQUEST_TYPES),
    "budget": BUDGET_TYPES,
}

REJECTION_TEXT = {
    "duplicate": "usulan ganda",
    "wrong_address": "alamat salah",
    "already_proposed": "sudah pernah diusulkan",
    "wrong_agency": "perangkat daerah tujuan salah",
    "other": "lainnya",
}
DECISION_LEVEL = {"kecamatan": "Musrenbang Kecamatan", "city": "Musrenbang Kota"}
DECISION_TEXT = {
    "accepted": "diterima",
    "funded": "didanai",
    "deferred": "ditunda",
    "rejected": "ditolak",
}
FUNDING_TEXT = {"apbd": "APBD", "dana_kelurahan": "dana kelurahan", "hibah_rw": "hibah RW"}
REQUEST_KIND = {
    "ktp": "KTP",
    "kk": "KK",
    "akta_kelahiran": "akta kelahiran",
    "bantuan": "bantuan sosial",
    "lainnya": "lainnya",
}
THRESHOLD_STATE = {"near": "mendekati batas", "over": "melampaui batas"}
TREASURY = (Audience(role="lurah"), Audience(role="bendahara"))


def proposal_id_of(event):
    """The proposal an event is about: its data's ``proposal_id``, else its stream's id."""
    return event.data.get("proposal_id") or event.stream.removeprefix("proposal-")


def notices(event, memory):
    """The notices ``event`` gives rise to (empty for events that only feed memory)."""
    type_, data = event.type, event.data
    if type_ in PROPOSAL_STATUS:
        return _proposal_notices(event, memory)
    if type_ in FORUM_TYPES:
        return _forum_notices(event, memory)
    if type_ == "expense.recorded":
        if data.get("status", "awaiting_approval") != "awaiting_approval":
            return []
        params = {"amount": rupiah(data["amount"]), "description": data["description"]}
        return [Notice(type_, params, TREASURY)]
    if type_ == "line.threshold_crossed":
        params = {
            "activity": data["activity"],
            "fiscal_year": data["fiscal_year"],
            "state": THRESHOLD_STATE.get(data["level"], data["level"]),
            "realised": rupiah(data["realised"]),
            "allocated": rupiah(data["allocated"]),
            "percent": _percent(data["percent"]),
        }
        return [Notice(type_, params, TREASURY)]
    if type_ == "advance.overdue":
        params = {
            "advance_id": str(data["advance_id"])[:8],
            "outstanding": rupiah(data["outstanding"]),
            "age_days": data["age_days"],
        }
        return [Notice(type_, params, TREASURY)]
    if type_ == "request.assigned":
        request = memory.request(event.stream.removeprefix("request-"))
        kind = REQUEST_KIND.get(request["kind"], request["kind"]) if request else "layanan"
        rw = data.get("public", {}).get("rw")
        return [Notice(type_, {"kind": kind, "rw": rw}, (Audience(user=data["pamor_id"]),))]
    if type_ in VULNERABILITY_TYPES:
        rw = data["public"]["rw"]
        params = {"category": VULNERABILITY_TYPES[type_], "rw": rw}
        return [Notice("resident.vulnerability_recorded", params, (Audience(role="pamor", rw=rw),))]
    return []


def breach_notice(request):
    """The notice of a service request past its 24-hour target, to the kelurahan operators."""
    kind = REQUEST_KIND.get(request["kind"], request["kind"])
    return Notice(
        "request.breached", {"kind": kind, "rw": request["rw"]}, (Audience(role="operator"),)
    )


def awaiting_kecamatan_notice(kelurahan, year, new, waiting):
    """City node: ``new`` proposals of a kelurahan forwarded (``waiting`` in all), to the camat
    of its kecamatan."""
    kecamatan = kelurahan.rsplit(".", 1)[0]
    params = {
        "count": new,
        "kelurahan": wilayah.name_of(kelurahan),
        "kecamatan": wilayah.name_of(kecamatan),
        "year": year,
        "waiting": waiting,
    }
    return Notice("city.awaiting_kecamatan", params, (Audience(role="camat", area=kecamatan),))


def awaiting_city_notice(kecamatan, year, new, waiting):
    """City node: ``new`` proposals of a kecamatan accepted there (``waiting`` in all for the
    city's decision), to bappeda."""
    params = {"count": new, "kecamatan": wilayah.name_of(kecamatan), "year": year}
    params["waiting"] = waiting
    return Notice("city.awaiting_city", params, (Audience(role="bappeda"),))


def _proposal_notices(event, memory):
    """A proposal's news: to its proposer and co-proposers (of merged duplicates) and the
    chairs of their RWs; a submission is acknowledged to the proposer alone."""
    type_, data = event.type, event.data
    proposal = memory.proposal(proposal_id_of(event))
    if proposal is None:  # submitted before this node's history began: no one to tell
        return []
    title = proposal["title"]
    if type_ == "proposal.submitted":
        params = {"title": title, "reference": proposal_id_of(event)[:8]}
        return [Notice(type_, params, (Audience(user=proposal["proposer"]),))]
    if type_ == "proposal.progressed" and data["percent"] == 100:
        return []  # the proposal.realised recorded with it says so
    if type_ in ("proposal.returned", "proposal.cancelled"):
        params = {"title": title, "reason": data["reason"]}
    elif type_ == "proposal.rejected":
        reason = data.get("text") or REJECTION_TEXT.get(data["code"], data["code"])
        params = {"title": title, "reason": reason}
    elif type_ == "proposal.merged":
        survivor = memory.proposal(data["survivor_id"])
        params = {
            "title": title,
            "survivor": survivor["title"] if survivor else "lain",
            "reason": data["reason"],
        }
    elif type_ == "proposal.absorbed":  # news for the survivor's own people; the merged
        merged = memory.proposal(data["merged_id"])  # proposal's hear of proposal.merged
        params = {"title": title, "merged": merged["title"] if merged else "lain"}
        own = {**proposal, "co_proposers": (), "co_rws": ()}
        return [Notice(type_, params, proposal_audiences(own))]
    elif type_ == "proposal.forwarded":
        params = {"title": title, "rank": data["rank"]}
    elif type_ == "proposal.progressed":
        params = {"title": title, "percent": data["percent"], "milestone": data["milestone"]}
    elif type_ == "proposal.decided":
        decision = DECISION_TEXT[data["decision"]]
        if data["decision"] == "funded":
            source = FUNDING_TEXT.get(data["funding_source"], data["funding_source"])
            decision += f" dari {source} sebesar {rupiah(data['amount'])}"
        params = {
            "title": title,
            "level": DECISION_LEVEL[data["level"]],
            "decision": decision,
            "reason": f"Alasan: {data['reason']}" if data.get("reason") else "",
        }
    else:  # verified, realised
        params = {"title": title}
    return [Notice(type_, params, proposal_audiences(proposal))]


def proposal_audiences(proposal):
    """The proposer, the co-proposers, and the ketua RW of each of their RWs."""
    users = [proposal["proposer"], *proposal.get("co_proposers", ())]
    rws = [proposal["rw"], *proposal.get("co_rws", ())]
    return (
        *(Audience(user=u) for u in dict.fromkeys(users)),
        *(Audience(role="ketua_rw", rw=rw) for rw in dict.fromkeys(rws) if rw is not None),
    )


def _forum_notices(event, memory):
    type_, data = event.type, event.data
    chairs = Audience(role="ketua_rw")
    if type_ == "forum.scheduled":
        params = {k: data[k] for k in ("year", "date", "place", "theme")}
        return [Notice(type_, params, (chairs,))]
    forum = memory.forum(event.stream.removeprefix("forum-"))
    if forum is None:
        return []
    delegates = tuple(Audience(user=d) for d in forum["delegates"])
    if type_ == "forum.held":
        params = {
            "year": forum["year"],
            "held_on": data["held_on"],
            "attendance": data["attendance"],
            "delegates": len(data["delegates"]),
        }
    else:
        params = {"year": forum["year"], "count": len(data["ranking"])}
    return [Notice(type_, params, (*delegates, chairs))]


def _percent(value):
    number = float(value)
    return str(int(number)) if number.is_integer() else f"{number:.1f}".replace(".", ",")
