"""The notifications table as an outbox: created with their cause, claimed, sent, purged.

Guarantees (``tests/notify``):

1. One cause notifies one person once: :func:`create` inserts with ``ON
   CONFLICT (cause, user_id) DO NOTHING``, in the transaction that moves the
   subscription's position (the event's source + id is the cause), so a
   redelivered or replayed event, or a restarted process, adds nothing.
2. A notification is claimed by one dispatcher at a time (``FOR UPDATE SKIP
   LOCKED``), marked ``sending`` with a lease, and committed before anything
   is sent. A process that dies after the claim leaves it ``sending``; once the
   lease ends, it is claimed again and sent with the same id (the provider's
   idempotency key).
3. SMS is claimed only inside 08:00-20:00 WIB by the injected clock; outside,
   it waits (``held_until`` shows until when).
4. A notification for a channel its person has opted out of since it was
   created is never claimed for it; housekeeping moves it to the in-app
   inbox instead.
5. :func:`purge` removes the address and the content of every notification
   older than the retention period; what remains (who by pseudonymous id, which
   template, channel, states and times) holds no personal data.
"""

import uuid

from psycopg.types.json import Jsonb

from services.notify.domain import FINAL, address_for, sms_window_opens

COLUMNS = (
    "id::text AS id, cause, user_id, event_type, template, template_version, channel, state,"
    " attempts, created_at, next_attempt_at, held_until, provider, sms_segments, read_at,"
    " purged_at, last_error, history"
)


def _step(state, at, **extra):
    return Jsonb([{"state": state, "at": at.isoformat(), **extra}])


def row(cause, event_type, template, contact, channel, rendering, now):
    """One new notification, as a JSON-native dict (see :func:`create`).

    ``rendering`` is ``{"message": <for the channel>, "in_app": <for the inbox>}``.
    An in-app notification is delivered at once; an SMS outside the window is
    held until 08:00 WIB.
    """
    in_app = channel == "in_app"
    state = "delivered" if in_app else "created"
    held = None
    if channel == "sms":
        opens = sms_window_opens(now)
        held = opens if opens > now else None
    step = {"state": state, "at": now.isoformat()}
    if held:
        step["held_until"] = held.isoformat()
    return {
        "id": uuid.uuid4(),
        "cause": cause,
        "user_id": contact["user_id"],
        "event_type": event_type,
        "template": template.key,
        "template_version": template.version,
        "channel": channel,
        "state": state,
        "created_at": now,
        "next_attempt_at": held or now,
        "held_until": held,
        "sms_segments": rendering["message"].get("segments") if channel == "sms" else None,
        "address": address_for(contact, channel),
        "content": rendering,
        "history": [step],
    }


INSERT = """
INSERT INTO notifications (id, cause, user_id, event_type, template, template_version, channel,
    state, created_at, next_attempt_at, held_until, sms_segments, address, content, history)
SELECT * FROM jsonb_to_recordset(%s) AS r (id uuid, cause text, user_id text, event_type text,
    template text, template_version integer, channel text, state text, created_at timestamptz,
    next_attempt_at timestamptz, held_until timestamptz, sms_segments integer, address text,
    content jsonb, history jsonb)
ON CONFLICT (cause, user_id) DO NOTHING
"""
"""The rows travel as one JSON array (encoded by orjson, unpacked by the server): one
parameter and one fixed text, whatever the number of rows, so psycopg parses it once,
the server prepares it once, and no value is adapted one by one in Python."""


def create(conn, rows, count=True):
    """Insert notifications (:func:`row`) in one statement; a (cause, person) already
    notified is skipped. Returns how many were new (None without ``count``: in a
    pipeline, counting would wait for the server)."""
    if not rows:
        return 0
    cursor = conn.execute(INSERT + (" RETURNING 1" if count else ""), [Jsonb(rows)])
    return len(cursor.fetchall()) if count else None


REROUTE_OPTED_OUT = """
UPDATE notifications n SET channel = 'in_app', state = 'delivered', address = NULL,
    last_error = 'opted_out', history = n.history || %(step)s
FROM contacts c
WHERE c.user_id = n.user_id AND n.channel = ANY(c.opted_out)
  AND (n.state IN ('created', 'temporary_failure')
       OR (n.state = 'sending' AND n.lease_until <= %(now)s))
"""

CLAIM = """
UPDATE notifications SET state = 'sending', attempts = attempts + 1, lease_until = %(lease)s,
    held_until = NULL, history = history || %(step)s
WHERE id IN (
    SELECT id FROM notifications
    WHERE ((state IN ('created', 'temporary_failure') AND next_attempt_at <= %(now)s)
           OR (state = 'sending' AND lease_until <= %(now)s))
      AND channel <> 'in_app' AND (channel <> 'sms' OR %(sms_ok)s) AND channel = ANY(%(channels)s)
      AND purged_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM contacts c
                      WHERE c.user_id = notifications.user_id AND notifications.channel = ANY(c.opted_out))
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED)
RETURNING id::text AS id, channel, address, content->'message' AS message, attempts
"""


def reroute_opted_out(db, now):
    """Move waiting notifications on a channel their person opted out of to the inbox."""
    with db.transaction() as conn:
        step = _step("delivered", now, via="in_app")
        return conn.execute(REROUTE_OPTED_OUT, {"now": now, "step": step}).rowcount


def claim(db, now, lease_until, sms_ok, channels, limit):
    """Claim up to ``limit`` due notifications for sending (never one on a channel its
    person opted out of); committed before returning (one statement, its own
    transaction: one round trip)."""
    with db.read() as conn:  # autocommit
        return conn.execute(
            CLAIM,
            {
                "now": now,
                "lease": lease_until,
                "sms_ok": sms_ok,
                "channels": list(channels),
                "limit": limit,
                "step": _step("sending", now),
            },
        ).fetchall()


RECORD = """
UPDATE notifications n SET state = u.state, provider = coalesce(u.provider, n.provider),
    provider_message_id = coalesce(u.pid, n.provider_message_id), last_error = u.error,
    next_attempt_at = coalesce(u.retry, %(now)s), lease_until = NULL,
    history = n.history || jsonb_build_array(
        jsonb_build_object('state', u.state, 'at', %(at)s::text)
        || CASE WHEN u.provider IS NULL THEN '{}'::jsonb
                ELSE jsonb_build_object('provider', u.provider) END)
FROM jsonb_to_recordset(%(outcomes)s)
    AS u (id uuid, state text, provider text, pid text, error text, retry timestamptz)
WHERE n.id = u.id AND n.state = 'sending'
"""
OUTCOME = ("id", "state", "provider", "pid", "error", "retry")


def record(db, outcomes, now):
    """Record each ``(id, state, provider, provider_message_id, error, retry_at)`` of a batch,
    in one statement (its own transaction: one round trip).

    Only a notification still ``sending`` moves: a provider's report that came
    first (delivered, failed) is not overwritten.
    """
    if not outcomes:
        return
    rows = [dict(zip(OUTCOME, outcome, strict=True)) for outcome in outcomes]
    with db.read() as conn:  # autocommit
        conn.execute(RECORD, {"at": now.isoformat(), "now": now, "outcomes": Jsonb(rows)})


REPORTS = {"delivered": "delivered", "failed": "permanent_failure", "rejected": "permanent_failure"}


def find_reported(conn, provider, reference=None, message_id=None):
    """The notification a provider's report names, locked: by the provider's own message id
    (recorded when it accepted the message; unique per provider) or by our id. Both
    given must name the same one. None if there is none (yet: a report can overtake the
    recording of the id the provider answered)."""
    where, params = [], []
    if message_id is not None:
        where.append("provider = %s AND provider_message_id = %s")
        params += [provider, message_id]
    if reference is not None:
        where.append("id = %s")
        params.append(reference)
    return conn.execute(
        "SELECT id::text AS id, state FROM notifications WHERE "
        + " AND ".join(where)
        + " FOR UPDATE",
        params,
    ).fetchone()


def report(conn, provider, status, now, reference=None, message_id=None):
    """A provider's delivery report; returns ``(notification id, state after it)``, or None
    when it names no notification (:func:`find_reported`)."""
    row = find_reported(conn, provider, reference, message_id)
    if row is None:
        return None
    notification_id = row["id"]
    new_state = REPORTS[status]
    if row["state"] in FINAL or row["state"] not in ("sending", "sent"):
        return notification_id, row["state"]
    conn.execute(
        "UPDATE notifications SET state = %s, provider = coalesce(provider, %s), lease_until = NULL,"
        " last_error = %s, history = history || %s WHERE id = %s",
        [
            new_state,
            provider,
            None if new_state == "delivered" else f"{provider}: reported {status}",
            _step(new_state, now, provider=provider, via="report"),
            notification_id,
        ],
    )
    return notification_id, new_state


def purge(db, older_than, now):
    """Remove address and content of notifications created before ``older_than``.

    Those not yet sent by then are given up (``permanent_failure``, expired).
    Returns how many were purged.
    """
    with db.transaction() as conn:
        return conn.execute(
            "UPDATE notifications SET address = NULL, content = NULL, purged_at = %(now)s,"
            " state = CASE WHEN state IN ('created', 'temporary_failure', 'sending')"
            "   THEN 'permanent_failure' ELSE state END,"
            " last_error = CASE WHEN state IN ('created', 'temporary_failure', 'sending')"
            "   THEN 'expired' ELSE last_error END"
            " WHERE purged_at IS NULL AND created_at < %(older_than)s",
            {"now": now, "older_than": older_than},
        ).rowcount


PURGE_PERSON = (
    "UPDATE notifications SET address = NULL, content = NULL, purged_at = %s,"
    " state = CASE WHEN state IN ('created', 'temporary_failure', 'sending')"
    "   THEN 'permanent_failure' ELSE state END"
    " WHERE user_id = %s AND purged_at IS NULL"
)
"""Remove address and content of every notification of an erased contact: ``[now, user_id]``."""


def inbox(db, user_id, page, per_page):
    """A person's notifications, newest first, with their in-app text (until purged)."""
    with db.connection() as conn:
        total = conn.execute(
            "SELECT count(*) AS n FROM notifications WHERE user_id = %s", [user_id]
        ).fetchone()["n"]
        rows = conn.execute(
            "SELECT id::text AS id, event_type, channel, state, created_at, read_at,"
            " content->'in_app' AS message FROM notifications WHERE user_id = %s"
            " ORDER BY created_at DESC, id LIMIT %s OFFSET %s",
            [user_id, per_page, (page - 1) * per_page],
        ).fetchall()
    return {"items": rows, "page": page, "per_page": per_page, "total": total}


def mark_read(db, user_id, notification_id, now):
    with db.transaction() as conn:
        return conn.execute(
            "UPDATE notifications SET read_at = coalesce(read_at, %s) WHERE id = %s AND user_id = %s",
            [now, notification_id, user_id],
        ).rowcount


def history(db, filters, page, per_page):
    """Notifications without personal data (staff): by cause, user, state, channel."""
    where, params = [], []
    for column in ("cause", "user_id", "state", "channel", "event_type"):
        if filters.get(column) is not None:
            where.append(f"{column} = %s")
            params.append(filters[column])
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    with db.connection() as conn:
        total = conn.execute(f"SELECT count(*) AS n FROM notifications {clause}", params).fetchone()
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM notifications {clause} ORDER BY created_at, id LIMIT %s OFFSET %s",
            [*params, per_page, (page - 1) * per_page],
        ).fetchall()
    return {"items": rows, "page": page, "per_page": per_page, "total": total["n"]}
