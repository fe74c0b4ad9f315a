"""Marshmallow schemas of the notify service: commands, queries and its events.

- commands: :class:`RegisterContact`, :class:`ChannelCommand` (opt out / in),
  :class:`ContactCommand`, :class:`InboundSms`, :class:`DeliveryReport`;
- queries: :class:`Inbox`, :class:`MarkRead`, :class:`ListNotifications`;
- events: :data:`EVENT_SCHEMAS` (``contact.*``); the ``personal`` part (phone
  and email) is sealed in the store and never published.

:func:`load` (from :mod:`shared.schema`) is the one entry point for untrusted
input; error messages never echo the input.
"""

import re

from marshmallow import ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from services.notify.domain import CONTACT_ROLES, STATES
from services.notify.outbox import REPORTS
from services.notify.templates import CHANNELS
from shared.schema import Command, Int, Pattern, Strict, Text, UuidStr
from shared.schema import load as load  # re-exported: the service's one entry point

#: where a contact holds its role: a kelurahan, or on the city node the city or a kecamatan
AREA_CODE = re.compile(r"^32\.75(\.[0-9]{2}(\.[0-9]{4})?)?$")
PSEUDONYM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{7,20}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}$")
PROVIDER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
PROVIDER_MESSAGE_ID = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,200}$")


def _unit(**kwargs):
    return Int(validate=Range(1, 99), **kwargs)


class RegisterContact(Command):
    """A contact by pseudonymous user id; without ``user_id``, the caller themselves."""

    user_id = Pattern(PSEUDONYM, "pseudonymous id", load_default=None)
    role = fields.String(validate=OneOf(CONTACT_ROLES), load_default=None)
    rw = _unit(load_default=None)
    rt = _unit(load_default=None)
    phone = Pattern(PHONE, "phone number", load_default=None)
    email = Pattern(EMAIL, "email address", load_default=None)
    channels = fields.List(
        fields.String(validate=OneOf(CHANNELS)), validate=Length(1, 4), load_default=None
    )
    whatsapp_opt_in = fields.Boolean(load_default=False)
    area = Pattern(AREA_CODE, "city or kecamatan code", load_default=None)


class ContactCommand(Command):
    user_id = Pattern(PSEUDONYM, "pseudonymous id", load_default=None)


class ChannelCommand(ContactCommand):
    channel = fields.String(required=True, validate=OneOf(CHANNELS))


class InboundSms(Strict):
    """An SMS a provider received for the node (``sender`` is personal data: never echoed)."""

    provider = Pattern(PROVIDER, "provider name", required=True)
    sender = Pattern(PHONE, "phone number", required=True)
    text = Text(0, 1600, required=True)


class DeliveryReport(Strict):
    """A provider's report on a message, naming it by the provider's own id (``message_id``,
    the id it answered when it accepted the message) or by ours (``reference``, the
    notification id), or both."""

    provider = Pattern(PROVIDER, "provider name", required=True)
    reference = UuidStr(load_default=None)
    message_id = Pattern(PROVIDER_MESSAGE_ID, "provider message id", load_default=None)
    status = fields.String(required=True, validate=OneOf(tuple(REPORTS)))

    @validates_schema
    def _names_a_message(self, data, **kwargs):
        if data.get("reference") is None and data.get("message_id") is None:
            raise ValidationError("Give the provider's message_id or our reference.", "message_id")


class Paging(Strict):
    page = Int(validate=Range(1, 1_000_000), load_default=1)
    per_page = Int(validate=Range(1, 200), load_default=50)


class Inbox(Paging):
    pass


class MarkRead(Strict):
    notification_id = UuidStr(required=True)


class ListNotifications(Paging):
    cause = Text(1, 300, multiline=False, load_default=None)
    user_id = Pattern(PSEUDONYM, "pseudonymous id", load_default=None)
    state = fields.String(validate=OneOf(STATES), load_default=None)
    channel = fields.String(validate=OneOf(CHANNELS), load_default=None)
    event_type = Text(1, 100, multiline=False, load_default=None)


# -- event payloads ----------------------------------------------------------------------


class Event(Strict):
    version = 1


class _Addresses(Strict):
    phone = fields.String(required=True, allow_none=True)
    email = fields.String(required=True, allow_none=True)


class Empty(Strict):
    pass


class ContactRegisteredEvent(Event):
    role = fields.String(required=True, validate=OneOf(CONTACT_ROLES))
    kelurahan = Pattern(AREA_CODE, "kelurahan, kecamatan or city code", required=True)
    rw = _unit(required=True, allow_none=True)
    rt = _unit(required=True, allow_none=True)
    channels = fields.List(fields.String(validate=OneOf(CHANNELS)), required=True)
    whatsapp_opt_in = fields.Boolean(required=True)
    personal = fields.Nested(_Addresses, required=True, allow_none=True)


class ContactOptedOutEvent(Event):
    channel = fields.String(required=True, validate=OneOf(CHANNELS))
    via = fields.String(required=True, validate=OneOf(("request", "sms_keyword")))


class ContactOptedInEvent(Event):
    channel = fields.String(required=True, validate=OneOf(CHANNELS))


class ContactErasedEvent(Event):
    personal = fields.Nested(Empty, required=True, allow_none=True)


EVENT_SCHEMAS = {
    "contact.registered": ContactRegisteredEvent,
    "contact.changed": ContactRegisteredEvent,
    "contact.opted_out": ContactOptedOutEvent,
    "contact.opted_in": ContactOptedInEvent,
    "contact.erased": ContactErasedEvent,
}
