"""Contacts, channel choice, delivery states and SMS quiet hours: pure domain, no I/O.

A :class:`Contact` lives in stream ``contact-<user id>``: the pseudonymous user
of a token (the same id the other services record as actor, delegate or
pamor), the role and scope they are reached in, their addresses (personal
data: the event's ``personal`` part, sealed per contact) and their
preferences. Events: ``contact.registered``, ``contact.changed``,
``contact.opted_out``, ``contact.opted_in``, ``contact.erased``.

Delivery states (:data:`TRANSITIONS`): ``created`` -> ``sending`` -> ``sent``
-> ``delivered``; ``sending`` -> ``temporary_failure`` (retried after
:func:`backoff`) -> ``sending``; ``sending``/``sent``/``temporary_failure`` ->
``permanent_failure``. A ``sending`` whose process died is claimed again after
its lease (``sending`` -> ``sending``).
"""

import re
from datetime import UTC, datetime, time, timedelta, timezone

from services.notify.templates import CHANNELS
from shared.actor import KELURAHAN_STAFF, ROLES
from shared.domain import Aggregate
from shared.errors import Conflict, Forbidden, ValidationError

WIB = timezone(timedelta(hours=7), "WIB")
SMS_WINDOW = (time(8, 0), time(20, 0))  # SMS only from 08:00 to 20:00 WIB
CONTACT_ROLES = tuple(r for r in ROLES if r != "system")
OPT_OUT_KEYWORD = "BERHENTI"
PHONE = re.compile(r"^\+62[0-9]{8,13}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,63}$")

STATES = ("created", "sending", "sent", "delivered", "temporary_failure", "permanent_failure")
FINAL = ("delivered", "permanent_failure")
TRANSITIONS = {
    "created": ("sending", "permanent_failure"),
    "sending": ("sending", "sent", "delivered", "temporary_failure", "permanent_failure"),
    "temporary_failure": ("sending", "permanent_failure"),
    "sent": ("delivered", "permanent_failure"),
    "delivered": (),
    "permanent_failure": (),
}
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)


def contact_stream(user_id):
    return f"contact-{user_id}"


def can_move(state, new_state):
    """Whether a delivery may go from ``state`` to ``new_state``."""
    return new_state in TRANSITIONS.get(state, ())


def backoff(attempts, first=BACKOFF_FIRST, ceiling=BACKOFF_MAX):
    """The wait before retrying after ``attempts`` failed attempts: doubling, capped."""
    return min(ceiling, first * 2 ** max(0, attempts - 1))


def sms_allowed(now):
    """Whether an SMS may be sent at ``now`` (an aware datetime): 08:00-20:00 WIB."""
    local = now.astimezone(WIB).time()
    return SMS_WINDOW[0] <= local < SMS_WINDOW[1]


def sms_window_opens(now):
    """``now`` if SMS may go now, else the next 08:00 WIB (in UTC)."""
    if sms_allowed(now):
        return now
    local = now.astimezone(WIB)
    day = local.date() if local.time() < SMS_WINDOW[0] else local.date() + timedelta(days=1)
    return datetime.combine(day, SMS_WINDOW[0], WIB).astimezone(UTC)


def normalise_phone(text):
    """An Indonesian mobile number as +62...; ``08xx`` and ``62xx`` are accepted."""
    digits = re.sub(r"[\s\-().]", "", str(text))
    if digits.startswith("0"):
        digits = "+62" + digits[1:]
    elif digits.startswith("62"):
        digits = "+" + digits
    return digits


def is_opt_out(text):
    """Whether an inbound SMS asks to stop (the keyword BERHENTI, any case, alone or first)."""
    words = str(text or "").strip().upper().split()
    return bool(words) and words[0] == OPT_OUT_KEYWORD


def choose_channel(contact, available):
    """The first channel of the contact's preferences it can be reached on now.

    ``contact`` is a contacts row (dict); ``available`` the channels with a
    configured provider. A channel needs an address (SMS and WhatsApp a phone,
    email an email), must not be opted out of, and WhatsApp needs the contact's
    opt-in. In-app needs nothing: it is the last resort, unless opted out too
    (then None: the person is not notified).
    """
    opted_out = set(contact.get("opted_out") or ())
    for channel in [*contact["channels"], "in_app"]:
        if channel in opted_out or channel not in available:
            continue
        if channel in ("sms", "whatsapp") and not contact.get("phone"):
            continue
        if channel == "whatsapp" and not contact.get("whatsapp_opt_in"):
            continue
        if channel == "email" and not contact.get("email"):
            continue
        return channel
    return None


def address_for(contact, channel):
    """The contact's address on ``channel`` (None for in-app)."""
    if channel in ("sms", "whatsapp"):
        return contact.get("phone")
    if channel == "email":
        return contact.get("email")
    return None


# -- the contact registry ------------------------------------------------------------------


class Contact(Aggregate):
    """One person the node can notify, by pseudonymous user id."""

    noun = "contact"

    def __init__(self, id):
        super().__init__(id)
        self.role = None
        self.kelurahan = None
        self.rw = None
        self.rt = None
        self.personal = None  # {"phone", "email"}; None once erased (or unsealable)
        self.channels = []
        self.opted_out = []
        self.whatsapp_opt_in = False

    def snapshot(self):
        personal = self.personal or {}
        return {
            "user_id": self.id,
            "role": self.role,
            "kelurahan": self.kelurahan,
            "rw": self.rw,
            "rt": self.rt,
            "phone": personal.get("phone"),
            "email": personal.get("email"),
            "channels": list(self.channels),
            "opted_out": list(self.opted_out),
            "whatsapp_opt_in": self.whatsapp_opt_in,
            "status": self.status,
            "version": self.version,
        }

    @classmethod
    def register(cls, user_id, actor, data, meta, existing=None):
        """Register (or, if ``existing`` is active, re-register) a contact.

        ``data``: role, kelurahan, rw, rt, phone, email, channels, whatsapp_opt_in.
        Staff register anyone of their kelurahan; anyone registers themselves.
        """
        contact = existing if existing is not None else cls(user_id)
        _require_manager(actor, user_id, data["kelurahan"])
        if actor.user_id == user_id and actor.role not in KELURAHAN_STAFF:
            _require_own_role(actor, data)
        _check_contact(data)
        event = {
            "role": data["role"],
            "kelurahan": data["kelurahan"],
            "rw": data.get("rw"),
            "rt": data.get("rt"),
            "channels": list(data["channels"]),
            "whatsapp_opt_in": bool(data.get("whatsapp_opt_in")),
            "personal": {"phone": data.get("phone"), "email": data.get("email")},
        }
        contact.record(
            "contact.changed" if contact.status == "active" else "contact.registered", event, meta
        )
        return contact

    def opt_out(self, actor, channel, via, meta):
        """Stop ``channel`` for this contact (by themselves, staff, or an inbound BERHENTI)."""
        self._require_exists()
        if actor.role != "system":
            _require_manager(actor, self.id, self.kelurahan)
        if channel not in CHANNELS:
            raise ValidationError({"channel": [f"Must be one of {', '.join(CHANNELS)}."]})
        if channel in self.opted_out:
            return
        self.record("contact.opted_out", {"channel": channel, "via": via}, meta)

    def opt_in(self, actor, channel, meta):
        """Resume ``channel`` (only the person themselves or staff)."""
        self._require_exists()
        _require_manager(actor, self.id, self.kelurahan)
        if channel not in self.opted_out:
            return
        self.record("contact.opted_in", {"channel": channel}, meta)

    def erase(self, actor, meta):
        """Forget the contact: its key is shredded with this event, its row deleted."""
        self._require_exists()
        _require_manager(actor, self.id, self.kelurahan)
        self._require_status(("active",), "erased")
        self.record("contact.erased", {"personal": {}}, meta)

    # folding

    def on_registered(self, data, meta):
        self.status = "active"
        self.on_changed(data, meta)
        self.opted_out = []

    def on_changed(self, data, meta):
        for field in ("role", "kelurahan", "rw", "rt"):
            setattr(self, field, data[field])
        self.channels = list(data["channels"])
        self.whatsapp_opt_in = data["whatsapp_opt_in"]
        self.personal = data.get("personal")

    def on_opted_out(self, data, meta):
        self.opted_out = [*self.opted_out, data["channel"]]

    def on_opted_in(self, data, meta):
        self.opted_out = [c for c in self.opted_out if c != data["channel"]]

    def on_erased(self, data, meta):
        self.status = "erased"
        self.personal = None


def _require_manager(actor, user_id, kelurahan):
    """The person themselves, or staff of the contact's kelurahan."""
    if actor.user_id == user_id:
        return
    if actor.role not in KELURAHAN_STAFF:
        raise Forbidden(
            f"role {actor.role} can only manage its own contact; staff ({', '.join(KELURAHAN_STAFF)}) "
            "manage others"
        )
    if not actor.covers(kelurahan):
        raise Forbidden(f"kelurahan {kelurahan} is outside the scope of role {actor.role}")


def _require_own_role(actor, data):
    """A person registering themselves is reached in the role and scope of their token."""
    place = (data["kelurahan"], data.get("rw"), data.get("rt"))
    if data["role"] != actor.role or not actor.covers(*place):
        raise Forbidden(
            "a contact registered by its own person takes the role and scope of its token"
        )


def _check_contact(data):
    problems = {}
    if data["role"] not in CONTACT_ROLES:
        problems["role"] = [f"Must be one of {', '.join(CONTACT_ROLES)}."]
    if data["role"] in ("ketua_rw", "ketua_rt", "pamor") and data.get("rw") is None:
        problems["rw"] = ["Required for this role."]
    if data["role"] == "ketua_rt" and data.get("rt") is None:
        problems["rt"] = ["Required for this role."]
    phone, email = data.get("phone"), data.get("email")
    if phone is not None and not PHONE.match(phone):
        problems["phone"] = ["Must be an Indonesian mobile number such as +6281234567890."]
    if email is not None and not EMAIL.match(email):
        problems["email"] = ["Must be an email address."]
    channels = data["channels"]
    if (
        not channels
        or any(c not in CHANNELS for c in channels)
        or len(set(channels)) != len(channels)
    ):
        problems["channels"] = [
            f"A preference order of distinct channels of {', '.join(CHANNELS)}."
        ]
    if problems:
        raise ValidationError(problems)


def require_transition(state, new_state):
    """Conflict unless a delivery may move from ``state`` to ``new_state``."""
    if not can_move(state, new_state):
        raise Conflict(f"a notification that is {state} cannot become {new_state}")
