"""The notify service: every person concerned hears what happened, once.

Subscriptions (catch-up through each source's ``replay``, then live; the
events waiting, up to ``BATCH``, handed to one call whose effects commit with
the consumer's position, see :mod:`shared.subscriber`) turn the proposals,
citizens and budget services' events into notifications
(:mod:`services.notify.notifier`); the
:mod:`~services.notify.dispatcher` sends them. The contact registry (who is
reached where, in which role) is event-sourced here: ``contact-<user id>``
streams whose addresses are sealed per contact (``personal=True``).

RPC commands are thin, as in the other services: authenticate, validate,
load, decide, append with the projection, return the view. Replies and
errors never carry a phone number or an email address: a contact's view says
only whether each is set.
"""

import json
from functools import partial
from pathlib import Path

from services.notify import awaiting, notifier, outbox, schemas, views
from services.notify.dispatcher import Dispatcher
from services.notify.domain import Contact, contact_stream, is_opt_out, normalise_phone
from services.notify.rules import FOLLOWED
from shared.actor import KELURAHAN_STAFF, SYSTEM
from shared.auth import Auth
from shared.domain import meta_for
from shared.errors import NotFound, RembugError, ValidationError
from shared.health import http  # the service's one web server (health, readiness, metrics)
from shared.repository import EventStoreProvider
from shared.rpc import rpc
from shared.service import EventSourcedService
from shared.subscriber import subscribe

SERVICE = "notify"
MIGRATIONS = Path(__file__).with_name("migrations")
BATCH = 100  # events applied per tracking transaction when they queue up
GATEWAYS = ("system", "admin")  # who may pass on provider reports and inbound SMS


class NotifyStore(EventStoreProvider):
    """The event store, with the projection bound to this node's pseudonyms."""

    def setup(self):
        super().setup()
        self.project = partial(views.project, pseudonym=self.protector.pseudonym)


class NotifyService(EventSourcedService):
    name = SERVICE
    repo = NotifyStore(SERVICE, MIGRATIONS, schemas.EVENT_SCHEMAS, personal=True)
    auth = Auth(SERVICE)
    dispatch = Dispatcher()

    # -- subscriptions -----------------------------------------------------------------

    @subscribe("proposals", event_types=FOLLOWED["proposals"], batch_size=BATCH, many=True)
    def on_proposals(self, events, conn):
        self._notify(events, conn)

    @subscribe("citizens", event_types=FOLLOWED["citizens"], batch_size=BATCH, many=True)
    def on_citizens(self, events, conn):
        self._notify(events, conn)

    @subscribe("budget", event_types=FOLLOWED["budget"], batch_size=BATCH, many=True)
    def on_budget(self, events, conn):
        self._notify(events, conn)

    def _notify(self, events, conn):
        dispatch = self.dispatch
        if dispatch.city:  # the city's own decisions: what awaits bappeda
            awaiting.fold(conn, events)
            return
        notifier.on_events(
            conn, events, dispatch.kelurahan, dispatch.channels, dispatch.clock.now()
        )

    # -- the contact registry ----------------------------------------------------------

    @rpc
    def register_contact(self, **payload):
        """Register or update a contact: the caller themselves, or (staff) anyone by user id.

        ``role``, ``rw``, ``rt`` default to the caller's token for their own contact;
        ``channels`` is the preference order (default: in-app only).
        """
        actor = self.auth.authenticate()
        data = schemas.load(schemas.RegisterContact, payload)
        user_id = data["user_id"] or actor.user_id
        own = user_id == actor.user_id
        if data["role"] is None:
            if not own:
                raise ValidationError({"role": ["Required when registering someone else."]})
            data["role"], data["rw"], data["rt"] = actor.role, actor.rw, actor.rt
        data["kelurahan"] = self._area(actor, own, data.pop("area"))
        data["channels"] = data["channels"] or ["in_app"]
        if data["phone"] is not None:
            data["phone"] = normalise_phone(data["phone"])
        if self._already_done(data["command_id"]):
            return views.get_contact(self.repo.db, user_id)
        existing = self._contact(user_id, required=False)
        contact = Contact.register(user_id, actor, data, meta_for(actor), existing)
        self.repo.save((contact, contact_stream(user_id)), command_id=data["command_id"])
        return views.get_contact(self.repo.db, user_id)

    @rpc
    def get_contact(self, **payload):
        """A contact's role, scope and preferences (the person, or staff)."""
        actor = self.auth.authenticate()
        user_id = schemas.load(schemas.ContactCommand, payload)["user_id"] or actor.user_id
        if user_id != actor.user_id:
            self.auth.require(*KELURAHAN_STAFF)
        return views.get_contact(self.repo.db, user_id)

    @rpc
    def opt_out(self, **payload):
        """Stop a channel for a contact (the person, or staff)."""
        return self._channel(payload, lambda c, a, ch, m: c.opt_out(a, ch, "request", m))

    @rpc
    def opt_in(self, **payload):
        """Resume a channel the contact had stopped (the person, or staff)."""
        return self._channel(payload, lambda c, a, ch, m: c.opt_in(a, ch, m))

    @rpc
    def erase_contact(self, **payload):
        """Forget a contact: its addresses are shredded and its notifications purged."""
        actor = self.auth.authenticate()
        data = schemas.load(schemas.ContactCommand, payload)
        user_id = data["user_id"] or actor.user_id
        if not self._already_done(data["command_id"]):
            contact = self._contact(user_id)
            contact.erase(actor, meta_for(actor))
            self.repo.save((contact, contact_stream(user_id)), command_id=data["command_id"])
            with self.repo.db.transaction() as conn:
                self.repo.provider.protector.erase(conn, user_id)
        return {"user_id": user_id, "status": "erased"}

    # -- from the providers ------------------------------------------------------------

    @rpc
    def inbound_sms(self, **payload):
        """An SMS sent to the node's number, passed on by the SMS gateway (system).

        ``BERHENTI`` stops SMS for the contact with that number. Returns whether
        it did; the number is never echoed.
        """
        actor = self.auth.require(*GATEWAYS)
        return self._inbound(actor, schemas.load(schemas.InboundSms, payload))

    @rpc
    def delivery_report(self, **payload):
        """A provider's report that a message was delivered or failed (system)."""
        self.auth.require(*GATEWAYS)
        return self._report(schemas.load(schemas.DeliveryReport, payload))

    @http("POST", "/notify/providers/<provider>/reports")
    def provider_report_hook(self, request, provider):
        """The same as :meth:`delivery_report`, for a provider that calls back over HTTP with
        its ``callback_token`` as bearer token: ``{"message_id" or "reference", "status"}``."""
        return self._hook(
            request, provider, schemas.DeliveryReport, lambda data: self._report(data)
        )

    @http("POST", "/notify/providers/<provider>/inbound")
    def provider_inbound_hook(self, request, provider):
        """The same as :meth:`inbound_sms` over HTTP: ``{"sender", "text"}``."""
        return self._hook(
            request, provider, schemas.InboundSms, lambda data: self._inbound(SYSTEM, data)
        )

    def _inbound(self, actor, data):
        if not is_opt_out(data["text"]):
            return {"opted_out": False}
        token = self.repo.provider.protector.pseudonym(normalise_phone(data["sender"]))
        user_id = views.contact_by_phone_token(self.repo.db, token)
        if user_id is None:
            return {"opted_out": False}
        contact = self._contact(user_id)
        contact.opt_out(actor, "sms", "sms_keyword", meta_for(actor))
        if contact.pending:
            self.repo.save((contact, contact_stream(user_id)))
        return {"opted_out": True}

    def _report(self, data):
        with self.repo.db.transaction() as conn:
            found = outbox.report(
                conn,
                data["provider"],
                data["status"],
                self.dispatch.clock.now(),
                reference=data["reference"],
                message_id=data["message_id"],
            )
        if found is None:  # a provider's id is not echoed: it is the provider's data
            raise NotFound(f"no notification matches this report from {data['provider']}")
        notification_id, state = found
        return {"notification_id": notification_id, "state": state}

    def _hook(self, request, provider, schema, act):
        """A provider's HTTP call: its bearer token checked, its JSON body loaded, the
        result or a typed error as JSON; nothing of the body is ever echoed."""
        if not self.dispatch.callback_allowed(provider, request.headers.get("Authorization")):
            return _json(401, {"error": "Unauthenticated"})
        try:
            body = json.loads(request.get_data() or b"{}")
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return _json(
                400, {"error": "ValidationError", "message": "the body must be a JSON object"}
            )
        try:
            return _json(200, act(schemas.load(schema, {**body, "provider": provider})))
        except RembugError as error:
            status = 404 if isinstance(error, NotFound) else 400
            return _json(status, {"error": type(error).__name__, "message": error.message})

    # -- reading -----------------------------------------------------------------------

    @rpc
    def inbox(self, **payload):
        """The caller's notifications, newest first, with their in-app text until purged."""
        actor = self.auth.authenticate()
        data = schemas.load(schemas.Inbox, payload)
        return _jsonable(outbox.inbox(self.repo.db, actor.user_id, data["page"], data["per_page"]))

    @rpc
    def mark_read(self, **payload):
        actor = self.auth.authenticate()
        data = schemas.load(schemas.MarkRead, payload)
        now = self.dispatch.clock.now()
        if not outbox.mark_read(self.repo.db, actor.user_id, data["notification_id"], now):
            raise NotFound(f"notification {data['notification_id']} is not in your inbox")
        return {"notification_id": data["notification_id"], "read": True}

    @rpc
    def list_notifications(self, **payload):
        """The delivery history (staff): states, channels, providers; no address, no content."""
        self.auth.require(*KELURAHAN_STAFF)
        data = schemas.load(schemas.ListNotifications, payload)
        page, per_page = data.pop("page"), data.pop("per_page")
        return _jsonable(outbox.history(self.repo.db, data, page, per_page))

    # -- plumbing ----------------------------------------------------------------------

    def _channel(self, payload, act):
        actor = self.auth.authenticate()
        data = schemas.load(schemas.ChannelCommand, payload)
        user_id = data["user_id"] or actor.user_id
        if not self._already_done(data["command_id"]):
            contact = self._contact(user_id)
            act(contact, actor, data["channel"], meta_for(actor))
            if contact.pending:
                self.repo.save((contact, contact_stream(user_id)), command_id=data["command_id"])
        return views.get_contact(self.repo.db, user_id)

    def _area(self, actor, own, area):
        """Where a contact holds its role: this kelurahan; on the city node, the place
        of the person's own token (a camat's kecamatan), or the ``area`` staff name."""
        node = self.repo.config.kelurahan_code
        if self.repo.config.node_role != "city":
            if area is not None and area != node:
                raise ValidationError({"area": ["Only the city node holds other areas."]})
            return node
        return area or (actor.kelurahan if own else node)

    def _contact(self, user_id, required=True):
        try:
            return self.repo.load(Contact, contact_stream(user_id), user_id, "contact")
        except NotFound:
            if required:
                raise
            return None

    def _already_done(self, command_id):
        return command_id is not None and self.repo.store.events_of_command(command_id)


def _json(status, payload):
    return status, {"Content-Type": "application/json"}, json.dumps(payload)


def _jsonable(page):
    """Timestamps as ISO strings (the RPC reply is JSON)."""
    page["items"] = [
        {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}
        for row in page["items"]
    ]
    return page
