"""The proposals service: Musrenbang proposals from RT/RW to realisation, over RPC.

Every command is thin: authenticate the caller, validate the payload with its
schema, load the aggregate, let the domain decide, append the events with the
projection in one transaction, and return the view. Commands take keyword
arguments (``rpc.proposals.submit(title=..., ...)``); an optional
``command_id`` (UUID) makes a retried command take effect once.
"""

import uuid
from pathlib import Path

from services.proposals import city, schemas, views
from services.proposals.domain import (
    Decision,
    Forum,
    Proposal,
    forum_stream,
    make_forum_id,
    merge,
    proposal_stream,
)
from shared.actor import Actor
from shared.auth import Auth
from shared.config import CITY_CODE
from shared.domain import meta_for
from shared.errors import Conflict, NotFound, ValidationError
from shared.repository import EventStoreProvider
from shared.rpc import rpc
from shared.service import EventSourcedService

SERVICE = "proposals"
CITY_SOURCE = f"/city/{CITY_CODE}/{SERVICE}"
MIGRATIONS = Path(__file__).with_name("migrations")


class ProposalsService(EventSourcedService):
    name = SERVICE
    repo = EventStoreProvider(SERVICE, MIGRATIONS, schemas.EVENT_SCHEMAS, project=views.project)
    auth = Auth(SERVICE)

    # -- proposals: commands ---------------------------------------------------------------

    @rpc
    def submit(self, **payload):
        """A new proposal from an RT, RW or kelurahan body; returns its id and view."""
        actor = self.auth.actor
        data = schemas.load(schemas.SubmitProposal, payload)
        command_id = data.pop("command_id")
        done = self._already_done(command_id)
        if done:
            return views.get_proposal(self.repo.db, done[0].stream.removeprefix("proposal-"))
        data["kelurahan"] = self.repo.config.kelurahan_code
        proposal = Proposal.submit(_new_id(), actor, data, meta_for(actor))
        stored = self.repo.save((proposal, proposal_stream(proposal.id)), command_id=command_id)
        if stored[0].stream != proposal_stream(proposal.id):  # a concurrent retry won
            return views.get_proposal(self.repo.db, stored[0].stream.removeprefix("proposal-"))
        return proposal.snapshot(copy=False)  # serialised into the reply at once

    @rpc
    def revise(self, **payload):
        """Change a proposal that was returned for revision; it is submitted again."""
        return self._change(
            schemas.ReviseProposal,
            payload,
            lambda p, actor, data, meta: p.revise(actor, schemas.revision_changes(data), meta),
        )

    @rpc
    def verify(self, **payload):
        return self._change(
            schemas.VerifyProposal, payload, lambda p, a, d, m: p.verify(a, d["note"], m)
        )

    @rpc
    def return_for_revision(self, **payload):
        return self._change(
            schemas.ReturnProposal,
            payload,
            lambda p, a, d, m: p.return_for_revision(a, d["reason"], m),
        )

    @rpc
    def reject(self, **payload):
        return self._change(
            schemas.RejectProposal,
            payload,
            lambda p, a, d, m: p.reject(a, {"code": d["code"], "text": d["text"]}, m),
        )

    @rpc
    def cancel(self, **payload):
        return self._change(
            schemas.CancelProposal, payload, lambda p, a, d, m: p.cancel(a, d["reason"], m)
        )

    @rpc
    def merge(self, **payload):
        """Merge a duplicate (``proposal_id``) into ``survivor_id``; both proposers are kept."""
        actor = self.auth.actor
        data = schemas.load(schemas.MergeProposal, payload)
        if not self._already_done(data["command_id"]):
            duplicate = self._load_proposal(data["proposal_id"])
            survivor = self._load_proposal(data["survivor_id"])
            merge(actor, duplicate, survivor, data["reason"], meta_for(actor))
            self.repo.save(
                (duplicate, proposal_stream(duplicate.id)),
                (survivor, proposal_stream(survivor.id)),
                command_id=data["command_id"],
            )
        return views.get_proposal(self.repo.db, data["survivor_id"])

    @rpc
    def score(self, **payload):
        """Score a verified proposal against its forum's criteria (1-5 each, weighted)."""

        def score(proposal, actor, data, meta):
            criteria = self._forum_of(proposal).criteria_in_effect()
            proposal.score(actor, data["scores"], criteria, meta)

        return self._change(schemas.ScoreProposal, payload, score)

    @rpc
    def forward(self, **payload):
        """Send a ranked proposal on to the kecamatan Musrenbang."""
        return self._change(
            schemas.ForwardProposal,
            payload,
            lambda p, a, d, m: p.forward(a, d["rank"], d["forum_id"], m),
        )

    @rpc
    def decide(self, **payload):
        """Record a kecamatan (camat) or city (bappeda) decision, with its reason.

        On the city node the decision goes in the city's own stream and down to the
        kelurahan that owns the proposal (:meth:`receive_from_city` there); the
        reply is the proposal as the decision leaves it."""
        if self.repo.config.node_role == "city":
            return self._decide_at_city(payload)
        return self._change(schemas.DecideProposal, payload, _decide)

    @rpc
    def receive_from_city(self, event):
        """A decision the city made about one of this kelurahan's proposals (a CloudEvent
        from the city's log, brought by the replication downlink, system only): folded
        into the proposal's stream once, by the decider's name and time."""
        self.auth.require("system")
        if event.get("type") != "proposal.decided" or event.get("source") != CITY_SOURCE:
            raise ValidationError({"event": ["Only the city's proposal.decided is received."]})
        data = schemas.load(schemas.DecideProposal, _decision_command(event))
        if not self._already_done(data["command_id"]):
            proposal = self._load_proposal(data["proposal_id"])
            decider = Actor(event["actorid"], event["actorrole"], CITY_CODE)
            meta = {"actor": decider.as_dict(), "time": event["time"]}
            _decide(proposal, decider, data, meta)
            self.repo.save(
                (proposal, proposal_stream(proposal.id)),
                command_id=data["command_id"],
                causation_id=event["id"],
            )
        return views.get_proposal(self.repo.db, data["proposal_id"])

    @rpc
    def report_progress(self, **payload):
        """Record realisation progress (0-100 %) with a milestone; 100 % realises it."""
        return self._change(
            schemas.ReportProgress,
            payload,
            lambda p, a, d, m: p.report_progress(a, d["percent"], d["milestone"], m),
        )

    # -- proposals: queries ----------------------------------------------------------------

    @rpc
    def get_proposal(self, **payload):
        """One proposal with its full history: who did what, when, and why."""
        self.auth.authenticate()
        data = schemas.load(schemas.GetProposal, payload)
        return views.get_proposal(self.repo.db, data["proposal_id"])

    @rpc
    def list_proposals(self, **payload):
        """Proposals by kecamatan, kelurahan, RW, status, sector, target agency and year, a
        page at a time. A kelurahan node lists its own unless a kecamatan or kelurahan is
        named; the city node lists every kelurahan's."""
        self.auth.authenticate()
        filters = self._in_scope(schemas.load(schemas.ListProposals, payload))
        return views.list_proposals(self.repo.db, filters)

    @rpc
    def count_by_status(self, **payload):
        """How many proposals are in each status, and their total, by kecamatan, kelurahan
        and year. A kelurahan node counts its own unless a kecamatan or kelurahan is named;
        the city node counts every kelurahan's."""
        self.auth.authenticate()
        filters = self._in_scope(schemas.load(schemas.CountByStatus, payload))
        return views.count_by_status(self.repo.db, filters)

    @rpc
    def city_ranking(self, **payload):
        """The city ranking of a plan year: every proposal a kelurahan forum forwarded,
        with whatever became of it since, best first by the kelurahan scoring's weighted
        score, then the forum's rank, then submission time, then id (deterministic).
        Filters: ``kecamatan``, ``kelurahan``, ``sector``, ``target_agency``,
        ``status``; ``group_by`` one of kecamatan, sector, target_agency; a page of
        ``limit`` (1-500, default 100) from ``offset``. Each entry carries its position
        in the city, its kecamatan, its sector and its target agency, counted before
        filtering. On a kelurahan node it ranks that node's own proposals."""
        self.auth.authenticate()
        return views.city_ranking(self.repo.db, schemas.load(schemas.CityRanking, payload))

    # -- the kelurahan forum ---------------------------------------------------------------

    @rpc
    def schedule_forum(self, **payload):
        """Schedule the Musrenbang Kelurahan of a plan year; its id is ``<kelurahan>-<year>``."""
        actor = self.auth.actor
        data = schemas.load(schemas.ScheduleForum, payload)
        command_id = data.pop("command_id")
        forum_id = make_forum_id(self.repo.config.kelurahan_code, data["year"])
        if not self._already_done(command_id):
            data["kelurahan"] = self.repo.config.kelurahan_code
            forum = Forum.schedule(forum_id, actor, data, meta_for(actor))
            self.repo.save((forum, forum_stream(forum_id)), command_id=command_id)
        return views.get_forum(self.repo.db, forum_id)

    @rpc
    def set_criteria(self, **payload):
        """The forum's scoring criteria (weighted, 1-5 each); none given adopts the defaults."""
        return self._change_forum(
            schemas.SetCriteria, payload, lambda f, a, d, m: f.set_criteria(a, d["criteria"], m)
        )

    @rpc
    def record_forum(self, **payload):
        """That the forum was held: date, attendance, berita acara, elected delegates."""
        fields = ("held_on", "attendance", "berita_acara", "delegates")
        return self._change_forum(
            schemas.RecordForum,
            payload,
            lambda f, a, d, m: f.hold(a, {k: d[k] for k in fields}, m),
        )

    @rpc
    def rank_forum(self, **payload):
        """Record the forum's ranking; without one, the scored proposals by total."""
        if isinstance(payload, dict) and "ranking" not in payload:
            self.auth.authenticate()
            forum = self._load_forum(schemas.load(schemas.ForumCommand, payload)["forum_id"])
            ranking = views.scored_candidates(self.repo.db, forum.kelurahan, forum.year)
            if not ranking:
                raise Conflict("no verified, scored proposal to rank; score proposals first")
            payload = {**payload, "ranking": ranking}
        return self._change_forum(
            schemas.RankForum, payload, lambda f, a, d, m: f.rank(a, d["ranking"], m)
        )

    @rpc
    def get_forum(self, forum_id):
        """A forum with its criteria, record and ranking."""
        self.auth.authenticate()
        data = schemas.load(schemas.ForumCommand, {"forum_id": forum_id})
        return views.get_forum(self.repo.db, data["forum_id"])

    # -- plumbing --------------------------------------------------------------------------

    def _change(self, schema, payload, act):
        """Run ``act(proposal, actor, data, meta)`` on the proposal a command names."""
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        if self._already_done(data["command_id"]):
            return views.get_proposal(self.repo.db, data["proposal_id"])
        proposal = self._load_proposal(data["proposal_id"])
        act(proposal, actor, data, meta_for(actor))
        self.repo.save((proposal, proposal_stream(proposal.id)), command_id=data["command_id"])
        return proposal.snapshot(copy=False)  # serialised into the reply at once

    def _change_forum(self, schema, payload, act):
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        if not self._already_done(data["command_id"]):
            forum = self._load_forum(data["forum_id"])
            act(forum, actor, data, meta_for(actor))
            self.repo.save((forum, forum_stream(forum.id)), command_id=data["command_id"])
        return views.get_forum(self.repo.db, data["forum_id"])

    def _decide_at_city(self, payload):
        actor = self.auth.actor
        data = schemas.load(schemas.DecideProposal, payload)
        with self.repo.db.read() as conn:
            source = city.find_source(conn, data["proposal_id"])
            if source is None:
                raise NotFound(f"proposal {data['proposal_id']} has not reached the city")
            proposal, _ = city.replicated(conn, source, proposal_stream(data["proposal_id"]))
        if not self._already_done(data["command_id"]):
            _decide(proposal, actor, data, meta_for(actor))
            decision = Decision.taken_on(_new_id(), proposal)
            self.repo.save((decision, f"decision-{decision.id}"), command_id=data["command_id"])
        return proposal.snapshot(copy=False)

    def _in_scope(self, filters):
        """``filters`` limited to this kelurahan when they name no place, on a kelurahan
        node; the city node holds every kelurahan's proposals and keeps them as given."""
        city_node = self.repo.config.node_role == "city"
        if not city_node and filters["kecamatan"] is None and filters["kelurahan"] is None:
            filters["kelurahan"] = self.repo.config.kelurahan_code
        return filters

    def _already_done(self, command_id):
        return command_id is not None and self.repo.store.events_of_command(command_id)

    def _load_proposal(self, proposal_id):
        return self.repo.load(Proposal, proposal_stream(proposal_id), proposal_id, "proposal")

    def _load_forum(self, forum_id):
        return self.repo.load(Forum, forum_stream(forum_id), forum_id, "forum")

    def _forum_of(self, proposal):
        forum_id = make_forum_id(proposal.kelurahan, proposal.year)
        try:
            return self._load_forum(forum_id)
        except NotFound:
            raise Conflict(
                f"forum {forum_id} is not scheduled; schedule it before scoring"
            ) from None


def _new_id():
    return str(uuid.uuid4())


def _decide(proposal, actor, data, meta):
    proposal.decide(
        actor,
        data["level"],
        data["decision"],
        reason=data["reason"],
        funding_source=data["funding_source"],
        amount=data["amount"],
        meta=meta,
    )


def _decision_command(event):
    """The decide command a city ``proposal.decided`` event stands for; its id (a UUID)
    makes a redelivered event take effect once."""
    fields = ("proposal_id", "level", "decision", "reason", "funding_source", "amount")
    data = event.get("data") or {}
    return {**{f: data.get(f) for f in fields}, "command_id": event.get("id")}
