"""The citizens service: residents, families and the Pamor service desk, over RPC.

Commands are thin, as in the proposals service: authenticate the caller,
validate the payload with its schema, load the aggregate(s), let the domain
decide, append the events with the projection in one transaction, and return
the view. Commands take keyword arguments; an optional ``command_id`` (UUID)
makes a retried command take effect once.

Personal data is sealed per resident in the store (``personal=True``); the
read models hold it in clear on this node only. NIK and No. KK uniqueness is
checked on pseudonyms (:meth:`shared.pii.Protector.pseudonym`), never on the
numbers. Every targeting query and every look at a resident's full record is
appended to the ``access-log`` stream: who, when, why, which filters and which
resident ids (sealed: a targeting result tells the category of everyone in it).
"""

import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import psycopg

from services.citizens import city, schemas, views
from services.citizens.domain import (
    Family,
    Resident,
    ServiceRequest,
    family_stream,
    request_stream,
    resident_stream,
    split,
)
from services.citizens.quick_load import quick_load
from shared.actor import KELURAHAN_STAFF
from shared.auth import Auth
from shared.domain import meta_for
from shared.envelope import Event
from shared.errors import Conflict, Forbidden, NotFound, ValidationError
from shared.repository import EventStoreProvider
from shared.rpc import rpc
from shared.service import EventSourcedService

SERVICE = "citizens"
MIGRATIONS = Path(__file__).with_name("migrations")
EVENT_SCHEMAS = {**schemas.EVENT_SCHEMAS, **schemas.ACCESS_EVENT_SCHEMAS}
ACCESS_STREAM = "access-log"
NIK_TAKEN = "a resident with this NIK is already registered; find and correct that record instead"
KK_TAKEN = "a family with this KK number is already registered"
VIEWERS = (*KELURAHAN_STAFF, "pamor")  # who may see residents' records
DESK_READERS = (*VIEWERS, "ketua_rw")
TARGETERS = VIEWERS
MONOGRAPH_READERS = (*DESK_READERS, "ketua_rt", "camat", "bappeda")
NO_FAMILY = {"family_id": None, "kk": None, "relationship": None}


class CitizensStore(EventStoreProvider):
    """The event store, with the projection bound to this node's pseudonyms."""

    def setup(self):
        super().setup()
        self.project = partial(views.project, pseudonym=self.protector.pseudonym)


class CitizensService(EventSourcedService):
    name = SERVICE
    repo = CitizensStore(SERVICE, MIGRATIONS, EVENT_SCHEMAS, personal=True)
    auth = Auth(SERVICE)

    # -- residents: commands ---------------------------------------------------------------

    @rpc
    def register(self, **payload):
        """A new resident (existing, newborn or newcomer); returns its id and record."""
        actor = self.auth.actor
        data = schemas.load(schemas.RegisterResident, payload)
        command_id = data.pop("command_id")
        done = self._already_done(command_id)
        if done:
            return self._resident_snapshot(_id_of(done[0].stream))
        data["kelurahan"] = self._kelurahan
        taken = self._nik_owner(data["nik"]) is not None
        resident = Resident.register(_new_id(), actor, data, meta_for(actor), nik_taken=taken)
        stored = self._save((resident, resident_stream(resident.id)), command_id=command_id)
        if stored[0].stream != resident_stream(resident.id):  # a concurrent retry won
            return self._resident_snapshot(_id_of(stored[0].stream))
        return resident.snapshot(copy=False)

    @rpc
    def import_residents(self, import_id, rows):
        """Register a batch of residents from an import (operator, lurah, admin).

        ``rows`` is ``[{"line": n, "payload": {...}}]``, each payload a ``register``
        payload with optional ``disability`` / ``welfare`` (the data of
        ``record_disability`` / ``record_welfare`` without ``resident_id``; see
        :mod:`services.citizens.importer`). Every good row stores the same events as
        ``register`` (and ``record_*``); all of them go in one transaction under the
        command id ``<import_id>:<first line>``, so a batch sent again stores nothing
        twice. A row is rejected for invalid data, a NIK already registered or given
        twice in the batch. Returns ``{"accepted", "rejected": [{"line", "reason"}],
        "duplicate_batch"}``; a reason names fields and problems, never a value.
        """
        actor = self.auth.require(*KELURAHAN_STAFF)
        rows = _import_rows(import_id, rows)
        command_id = f"{import_id}:{rows[0]['line']}"
        for attempt in range(3):
            try:
                return self._import_batch(actor, command_id, rows)
            except _NikRace:  # a NIK registered meanwhile: look again, it is rejected now
                if attempt == 2:
                    raise Conflict(NIK_TAKEN) from None
        raise AssertionError("unreachable")

    def _import_batch(self, actor, command_id, rows):
        done = self._already_done(command_id)
        done_ids = {_id_of(e.stream) for e in done or ()}
        meta = meta_for(actor)
        pseudonym = self.repo.provider.protector.pseudonym
        loaded, rejected = [], []
        for row in rows:
            try:
                loaded.append((row["line"], *_import_load(row["payload"])))
            except ValidationError as error:
                rejected.append({"line": row["line"], "reason": _reason(error, row["payload"])})
        tokens = [pseudonym(data["nik"]) for _, data, _ in loaded]
        owners = views.residents_of_tokens(self.repo.db, tokens)
        changes, seen, accepted = [], {}, 0
        for (line, data, extras), token in zip(loaded, tokens, strict=True):
            reason = None
            if token in seen:
                reason = f"nik: given twice in this import (first on line {seen[token]})"
            elif owners.get(token) in done_ids:  # stored by this very batch, sent before
                seen[token] = line
                accepted += 1
                continue
            elif token in owners:
                reason = f"nik: {NIK_TAKEN}"
            else:
                seen[token] = line
                try:
                    resident = self._import_one(actor, meta, data, extras)
                except (ValidationError, Conflict, Forbidden) as error:
                    reason = _reason(error, data)
            if reason is None:
                changes.append((resident, resident_stream(resident.id)))
            else:
                rejected.append({"line": line, "reason": reason})
        rejected.sort(key=lambda r: r["line"])
        if done or not changes:
            return {"accepted": accepted, "rejected": rejected, "duplicate_batch": bool(done)}
        try:
            stored = self.repo.save(*changes, command_id=command_id)
        except psycopg.errors.UniqueViolation as error:
            if error.diag.constraint_name == "nik_index_pkey":
                raise _NikRace from None
            raise
        if stored[0].stream != changes[0][1]:  # a concurrent send of this batch won
            return self._import_batch(actor, command_id, rows)
        return {"accepted": len(changes), "rejected": rejected, "duplicate_batch": False}

    def _import_one(self, actor, meta, data, extras):
        data["kelurahan"] = self._kelurahan
        resident = Resident.register(_new_id(), actor, data, meta)
        if extras.get("disability"):
            resident.record_disability(actor, extras["disability"], meta)
        if extras.get("welfare"):
            resident.record_welfare(actor, extras["welfare"], meta)
        return resident

    @rpc
    def move_within(self, **payload):
        return self._resident(schemas.MoveWithin, payload, Resident.move_within)

    @rpc
    def move_out(self, **payload):
        return self._resident(schemas.MoveOut, payload, Resident.move_out)

    @rpc
    def move_in(self, **payload):
        return self._resident(schemas.MoveIn, payload, Resident.move_in)

    @rpc
    def record_death(self, **payload):
        return self._resident(schemas.RecordDeath, payload, Resident.record_death)

    @rpc
    def report_missing(self, **payload):
        return self._resident(schemas.ReportMissing, payload, Resident.report_missing)

    @rpc
    def report_found(self, **payload):
        return self._resident(schemas.ReportFound, payload, Resident.report_found)

    @rpc
    def correct(self, **payload):
        """Correct population-record fields with a reason; a new NIK must be free."""

        def correct(resident, actor, data, meta):
            owner = data["changes"].get("nik") and self._nik_owner(data["changes"]["nik"])
            resident.correct(actor, data, meta, nik_taken=owner not in (None, resident.id))

        return self._resident(schemas.CorrectResident, payload, correct)

    @rpc
    def record_disability(self, **payload):
        """UU 8/2016 categories, with the resident's or a guardian's consent."""
        return self._resident(schemas.RecordDisability, payload, Resident.record_disability)

    @rpc
    def record_welfare(self, **payload):
        return self._resident(schemas.RecordWelfare, payload, Resident.record_welfare)

    @rpc
    def record_health(self, **payload):
        return self._resident(schemas.RecordHealth, payload, Resident.record_health)

    @rpc
    def record_pregnancy(self, **payload):
        return self._resident(schemas.RecordPregnancy, payload, Resident.record_pregnancy)

    @rpc
    def clear_vulnerability(self, **payload):
        return self._resident(
            schemas.ClearVulnerability, payload, lambda r, a, d, m: r.clear(a, d.pop("kind"), d, m)
        )

    @rpc
    def erase(self, **payload):
        """Erase a resident (lurah, admin): the event, the read models and the resident's
        key go in one transaction; no stored event yields its personal data after."""
        actor = self.auth.actor
        data = schemas.load(schemas.EraseResident, payload)
        command_id, resident_id = data.pop("command_id"), data.pop("resident_id")
        if not self._already_done(command_id):
            resident = self._load_resident(resident_id)
            meta = meta_for(actor)
            resident.erase(actor, data, meta)
            changes = [(resident, resident_stream(resident_id))]
            if resident.family_id is not None:  # the card drops them in the same transaction
                family = self._load_family(resident.family_id)
                family.forget(resident_id, meta)
                changes.append((family, family_stream(family.id)))
            self._save(*changes, command_id=command_id)
        view = self._resident_snapshot(resident_id)
        # The key was destroyed with the event (a projection statement); erasing again
        # is a no-op in the database that evicts the key from this process's cache.
        protector = self.repo.provider.protector
        with self.repo.db.transaction() as conn:
            subjects = [view["id"]] + [
                r["id"]
                for r in conn.execute(
                    "SELECT id::text AS id FROM request_view WHERE resident_id = %s", [view["id"]]
                )
            ]
            for subject in subjects:
                protector.erase(conn, subject)
        return view

    # -- residents: queries ----------------------------------------------------------------

    @rpc
    def get_resident(self, **payload):
        """A resident's full record (staff; a pamor in its RW); the look is logged."""
        actor = self._reader(VIEWERS)
        data = schemas.load(schemas.ViewResident, payload)
        row = views.resident_row(self.repo.db, data["resident_id"])
        self._rw_of(actor, row["rw"])
        self._log_access("access.resident_viewed", actor, data["purpose"], {}, [row["view"]["id"]])
        return schemas.ResidentView().dump(row["view"])

    @rpc
    def find_resident_by_nik(self, **payload):
        """The resident with this NIK (staff only; looked up by pseudonym, logged)."""
        actor = self._reader(KELURAHAN_STAFF)
        data = schemas.load(schemas.FindResident, payload)
        resident_id = self._nik_owner(data["nik"])
        if resident_id is None:
            raise NotFound("no resident with this NIK is registered")
        self._log_access("access.resident_viewed", actor, data["purpose"], {}, [resident_id])
        return views.get_resident(self.repo.db, resident_id)

    @rpc
    def list_residents(self, **payload):
        """Residents by RW, RT, status, sex, category, age band, family or name, paged;
        each page is recorded in the access log (a page carries names and categories)."""
        actor = self._reader(VIEWERS)
        filters = schemas.load(schemas.ListResidents, payload)
        purpose = filters.pop("purpose")
        filters["rw"] = self._rw_of(actor, filters["rw"])
        page = views.list_residents(self.repo.db, filters, views.today())
        logged = {
            key: value
            for key, value in filters.items()
            if value is not None and key not in ("name", "page", "per_page")
        }
        logged["name_search"] = filters["name"] is not None  # the searched name is personal
        ids = [item["id"] for item in page["items"]]
        self._log_access("access.residents_listed", actor, purpose, logged, ids, filters["rw"])
        return page

    @rpc
    def targeting(self, **payload):
        """Living residents of a category (in an RW), for a stated purpose: logged with
        who asked, why, the filters and the resident ids returned."""
        actor = self._reader(TARGETERS)
        data = schemas.load(schemas.Targeting, payload)
        rw = self._rw_of(actor, data["rw"])
        items = views.targeting(
            self.repo.db, rw, data["category"], data["living_alone"], views.today()
        )
        filters = {"rw": rw, "category": data["category"], "living_alone": data["living_alone"]}
        ids = [item["id"] for item in items]
        self._log_access("access.targeting_queried", actor, data["purpose"], filters, ids, rw)
        return {"filters": filters, "count": len(items), "items": items}

    @rpc
    def monograph(self, **payload):
        """The kelurahan monograph now, or ``as_of`` a date; ``format`` json or csv."""
        self._reader(MONOGRAPH_READERS)
        data = schemas.load(schemas.MonographQuery, payload)
        current = data["as_of"] is None
        on = views.today() if current else views.as_date(data["as_of"])
        tables = views.monograph(self.repo.db, on, current)
        return views.monograph_csv(tables) if data["format"] == "csv" else tables

    @rpc
    def city_monograph(self, kecamatan=None):
        """On the city node: residents per kecamatan and kelurahan, by sex and vulnerable
        group, from the pseudonymous parts the kelurahan replicate (camat: their own
        kecamatan; bappeda, admin: any)."""
        actor = self.auth.require("camat", "bappeda", "admin")
        data = schemas.load(schemas.CityMonographQuery, {"kecamatan": kecamatan})
        if actor.role == "camat":
            if data["kecamatan"] not in (None, actor.kelurahan):
                raise Forbidden("a camat reads the monograph of their own kecamatan")
            data["kecamatan"] = actor.kelurahan
        return city.monograph(self.repo.db, data["kecamatan"])

    # -- families --------------------------------------------------------------------------

    @rpc
    def form_family(self, **payload):
        """A family card and its members; each member's record follows."""
        actor = self.auth.actor
        data = schemas.load(schemas.FormFamily, payload)
        command_id = data.pop("command_id")
        done = self._already_done(command_id)
        if done:
            return views.get_family(self.repo.db, _id_of(_formed(done)))
        data["kelurahan"] = self._kelurahan
        meta = meta_for(actor)
        family = Family.form(_new_id(), actor, data, meta, kk_taken=self._kk_taken(data["kk"]))
        members = [m["resident_id"] for m in data["members"]]
        self._save(
            (family, family_stream(family.id)),
            *self._linked(actor, meta, family, members),
            command_id=command_id,
        )
        return family.snapshot(copy=False)

    @rpc
    def add_family_member(self, **payload):
        return self._family(schemas.AddFamilyMember, payload, Family.add_member)

    @rpc
    def remove_family_member(self, **payload):
        return self._family(schemas.RemoveFamilyMember, payload, Family.remove_member)

    @rpc
    def change_relationship(self, **payload):
        return self._family(schemas.ChangeRelationship, payload, Family.change_relationship)

    @rpc
    def change_family_head(self, **payload):
        return self._family(
            schemas.ChangeFamilyHead, payload, Family.change_head, lambda f, d: f.members
        )

    @rpc
    def move_family(self, **payload):
        """The family's address; each living member moves with it."""
        return self._family(
            schemas.MoveFamily, payload, Family.move, lambda f, d: [], self._move_members
        )

    @rpc
    def split_family(self, **payload):
        """Members of a family form a new one with its own KK; returns the new family."""
        actor = self.auth.actor
        data = schemas.load(schemas.SplitFamily, payload)
        command_id, family_id = data.pop("command_id"), data.pop("family_id")
        new_id = data.pop("new_family_id") or _new_id()
        done = self._already_done(command_id)
        if done:
            return views.get_family(self.repo.db, _id_of(_formed(done)))
        meta = meta_for(actor)
        source = self._load_family(family_id)
        kk_taken = self._kk_taken(data["kk"])
        source, new = split(actor, source, new_id, data, meta, kk_taken=kk_taken)
        leaving = [m["resident_id"] for m in data["members"]]
        self._save(
            (source, family_stream(source.id)),
            (new, family_stream(new.id)),
            *self._linked(actor, meta, new, leaving, coming_from=source.id),
            command_id=command_id,
        )
        return new.snapshot(copy=False)

    @rpc
    def get_family(self, **payload):
        actor = self._reader(VIEWERS)
        data = schemas.load(schemas.GetFamily, payload)
        family = views.get_family(self.repo.db, data["family_id"])
        self._rw_of(actor, family["rw"])
        return family

    # -- the Pamor service desk ------------------------------------------------------------

    @rpc
    def raise_request(self, **payload):
        """A request for help for a resident, against the 24-hour target."""
        actor = self.auth.actor
        data = schemas.load(schemas.RaiseServiceRequest, payload)
        command_id = data.pop("command_id")
        done = self._already_done(command_id)
        if done:
            return views.get_request(self.repo.db, _id_of(done[0].stream), _now())
        data["kelurahan"] = self._kelurahan
        request = ServiceRequest.raise_request(_new_id(), actor, data, meta_for(actor))
        views.resident_row(self.repo.db, data["resident_id"])  # NotFound: no such resident
        stored = self._save((request, request_stream(request.id)), command_id=command_id)
        return views.get_request(self.repo.db, _id_of(stored[0].stream), _now())

    @rpc
    def assign_request(self, **payload):
        return self._request(schemas.AssignServiceRequest, payload, ServiceRequest.assign)

    @rpc
    def start_request(self, **payload):
        return self._request(schemas.StartServiceRequest, payload, lambda r, a, d, m: r.start(a, m))

    @rpc
    def complete_request(self, **payload):
        return self._request(schemas.CompleteServiceRequest, payload, ServiceRequest.done)

    @rpc
    def cancel_request(self, **payload):
        return self._request(schemas.CancelServiceRequest, payload, ServiceRequest.cancel)

    @rpc
    def get_request(self, **payload):
        actor = self._reader(DESK_READERS)
        data = schemas.load(schemas.GetServiceRequest, payload)
        request = views.get_request(self.repo.db, data["request_id"], _now())
        self._rw_of(actor, request["rw"])
        return request

    @rpc
    def list_requests(self, **payload):
        """Requests (a pamor or ketua RW: its own RW) with the desk counts: each status,
        breaches of the 24-hour target, done within it."""
        actor = self._reader(DESK_READERS)
        filters = schemas.load(schemas.ListServiceRequests, payload)
        filters["rw"] = self._rw_of(actor, filters["rw"])
        return views.list_requests(self.repo.db, filters, _now())

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _kelurahan(self):
        return self.repo.config.kelurahan_code

    def _resident(self, schema, payload, act):
        """Run ``act(resident, actor, data, meta)`` on the resident a command names."""
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        command_id, resident_id = data.pop("command_id"), data.pop("resident_id")
        if self._already_done(command_id):
            return self._resident_snapshot(resident_id)
        resident = self._load_resident(resident_id)
        act(resident, actor, data, meta_for(actor))
        self._save((resident, resident_stream(resident_id)), command_id=command_id)
        return resident.snapshot(copy=False)  # serialised into the reply at once

    def _family(self, schema, payload, act, touched=None, more=None):
        """Run ``act(family, actor, data, meta)``; the records of ``touched(family, data)``
        (default: the member named) follow the family, and ``more(...)`` adds changes."""
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        command_id, family_id = data.pop("command_id"), data.pop("family_id")
        if not self._already_done(command_id):
            family = self._load_family(family_id)
            meta = meta_for(actor)
            act(family, actor, data, meta)
            ids = (touched or (lambda f, d: [d["resident_id"]]))(family, data)
            changes = self._linked(actor, meta, family, ids)
            changes += more(actor, meta, family, data) if more else []
            self._save((family, family_stream(family.id)), *changes, command_id=command_id)
        return views.get_family(self.repo.db, family_id)

    def _linked(self, actor, meta, family, resident_ids, coming_from=None):
        """The residents' records brought in step with ``family``: joined (with its KK and
        their relationship) or, if no longer members, left."""
        relationships = {m["resident_id"]: m["relationship"] for m in family.member_list()}
        changes = []
        for resident_id in resident_ids:
            resident = self._load_resident(resident_id)
            personal = resident.personal or {}
            if resident_id in relationships:
                if resident.family_id not in (None, family.id, coming_from):
                    raise Conflict(
                        f"resident {resident_id} belongs to family {resident.family_id}; "
                        "remove them there first"
                    )
                link = {
                    "family_id": family.id,
                    "kk": family.kk,
                    "relationship": relationships[resident_id],
                }
            elif resident.family_id == family.id:
                link = NO_FAMILY
            else:
                continue
            current = {
                "family_id": resident.family_id,
                **{k: personal.get(k) for k in ("kk", "relationship")},
            }
            if current != link:
                resident.set_family(actor, link, meta)
                changes.append((resident, resident_stream(resident_id)))
        return changes

    def _move_members(self, actor, meta, family, data):
        """Each living member of a family that moved goes to its new address."""
        changes = []
        address = {k: data[k] for k in ("address", "rt", "rw")}
        for resident_id in family.members:
            resident = self._load_resident(resident_id)
            personal = resident.personal or {}
            if resident.status == "alive" and any(personal.get(k) != v for k, v in address.items()):
                resident.move_within(actor, address, meta)
                changes.append((resident, resident_stream(resident_id)))
        return changes

    def _request(self, schema, payload, act):
        actor = self.auth.actor
        data = schemas.load(schema, payload)
        command_id, request_id = data.pop("command_id"), data.pop("request_id")
        if not self._already_done(command_id):
            request = self._load(ServiceRequest, request_stream(request_id), request_id)
            act(request, actor, data, meta_for(actor))
            self._save((request, request_stream(request_id)), command_id=command_id)
        return views.get_request(self.repo.db, request_id, _now())

    def _save(self, *changes, command_id=None):
        """Save; a NIK or KK taken meanwhile by a concurrent command fails the append on
        the index's primary key: the same Conflict as when it was seen taken."""
        try:
            return self.repo.save(*changes, command_id=command_id)
        except psycopg.errors.UniqueViolation as error:
            constraint = error.diag.constraint_name
            if constraint == "nik_index_pkey":
                raise Conflict(NIK_TAKEN) from None
            if constraint == "kk_index_pkey":
                raise Conflict(KK_TAKEN) from None
            raise

    def _reader(self, roles):
        """The caller, if its role is one of ``roles`` and its scope is this kelurahan."""
        actor = self.auth.require(*roles)
        if not actor.covers(self._kelurahan, actor.rw, actor.rt):
            raise Forbidden(f"the scope of role {actor.role} does not cover this kelurahan")
        return actor

    def _rw_of(self, actor, rw):
        """The RW a read is limited to: any for kelurahan staff (and city roles), the
        caller's own for a pamor or RW/RT chair, who may not read another RW."""
        if actor.role not in ("pamor", "ketua_rw", "ketua_rt"):
            return rw
        if actor.rw is None or (rw is not None and rw != actor.rw):
            raise Forbidden(f"the scope of role {actor.role} covers its own RW only")
        return actor.rw

    def _log_access(self, type_, actor, purpose, filters, resident_ids, rw=None):
        """Append who looked at whom, when and why to the access log (sealed)."""
        data = {
            "query": type_.removeprefix("access."),
            "filters": filters,
            "count": len(resident_ids),
            "personal": {"purpose": purpose, "resident_ids": resident_ids},
            "public": {"rw": rw},
        }
        with self.repo.db.transaction() as conn:
            data = self.repo.provider.protector.seal(conn, ACCESS_STREAM, data)
        calls = self.repo.worker_ctx.call_id_stack
        event = Event(
            type=type_,
            stream=ACCESS_STREAM,
            data=data,
            data_version=EVENT_SCHEMAS[type_].version,
            actor=actor.as_dict(),
            correlation_id=calls[0] if calls else None,
            causation_id=self.repo.worker_ctx.call_id,
        )
        self.repo.store.append(ACCESS_STREAM, None, [event])

    def _nik_owner(self, nik):
        token = self.repo.provider.protector.pseudonym(nik)
        return views.resident_of_token(self.repo.db, token)

    def _kk_taken(self, kk):
        token = self.repo.provider.protector.pseudonym(kk)
        return views.family_of_token(self.repo.db, token) is not None

    def _already_done(self, command_id):
        return command_id is not None and self.repo.store.events_of_command(command_id)

    def _load(self, cls, stream, id):
        what = {Resident: "resident", Family: "family"}.get(cls, "service request")
        return self.repo.load(cls, stream, id, what)

    def _load_resident(self, resident_id):
        return self._load(Resident, resident_stream(resident_id), resident_id)

    def _load_family(self, family_id):
        return self._load(Family, family_stream(family_id), family_id)

    def _resident_snapshot(self, resident_id):
        return self._load_resident(resident_id).snapshot(copy=False)


class _NikRace(Exception):
    """A NIK of the batch was registered by another command meanwhile."""


IMPORT_BATCH_MAX = 2000
_EXTRAS = {"disability": schemas.RecordDisability, "welfare": schemas.RecordWelfare}
_PLAIN_VALUES = ("nik", "kk", "name", "address", "birth_place")


def _import_rows(import_id, rows):
    """The batch's rows, checked for shape (not content): ValidationError otherwise."""
    if not isinstance(import_id, str) or not 1 <= len(import_id) <= 100:
        raise ValidationError({"import_id": ["Give a text of 1 to 100 characters."]})
    if not isinstance(rows, list) or not 1 <= len(rows) <= IMPORT_BATCH_MAX:
        raise ValidationError({"rows": [f"Give a list of 1 to {IMPORT_BATCH_MAX} rows."]})
    for row in rows:
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("line"), int)
            or isinstance(row.get("line"), bool)
            or not isinstance(row.get("payload"), dict)
        ):
            raise ValidationError({"rows": ['Each row is {"line": int, "payload": {...}}.']})
    return rows


def _import_load(payload):
    """``(register data, {kind: record data})`` of one row, or ValidationError."""
    payload = dict(payload)
    payload.pop("command_id", None)
    raw = {kind: payload.pop(kind, None) for kind in _EXTRAS}
    errors, extras = {}, {}
    try:
        data = _load_row(schemas.RegisterResident, payload)
    except ValidationError as error:
        errors.update(error.fields)
    for kind, schema in _EXTRAS.items():
        if raw[kind] is None:
            continue
        try:
            record = _load_row(schema, {**_as_dict(raw[kind]), "resident_id": _PLACEHOLDER})
        except ValidationError as error:
            errors[kind] = error.fields
            continue
        record.pop("command_id"), record.pop("resident_id")
        extras[kind] = record
    if errors:
        raise ValidationError(errors)
    data.pop("command_id")
    return data, extras


_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"


def _load_row(schema_cls, payload):
    """``schemas.load`` of one import row: the same data, or the same ValidationError,
    by the quick path when the row is valid (most rows of an import)."""
    loaded = quick_load(schema_cls, payload)
    return schemas.load(schema_cls, payload) if loaded is None else loaded


def _as_dict(value):
    return value if isinstance(value, dict) else {"_": value}


def _reason(error, payload):
    """What is wrong with a row, by field: ``field: message; ...`` without any value."""
    if isinstance(error, ValidationError):
        parts = []

        def walk(prefix, messages):
            if isinstance(messages, dict):
                for key, value in sorted(messages.items(), key=lambda kv: str(kv[0])):
                    walk(f"{prefix}.{key}" if prefix else str(key), value)
            elif isinstance(messages, list | tuple):
                for message in messages:
                    walk(prefix, message)
            else:
                parts.append(f"{prefix}: {messages}" if prefix else str(messages))

        walk("", error.fields)
        reason = "; ".join(parts)
    else:
        reason = str(error)
    for name in _PLAIN_VALUES:  # belt and braces: no message should echo these
        value = payload.get(name) if isinstance(payload, dict) else None
        if isinstance(value, str) and len(value) >= 3 and value in reason:
            reason = reason.replace(value, "(value)")
    return reason[:1000]


def _formed(events):
    return next(e.stream for e in events if e.type == "family.formed")


def _id_of(stream):
    return stream.split("-", 1)[1]


def _new_id():
    return str(uuid.uuid4())


def _now():
    return datetime.now(UTC)
