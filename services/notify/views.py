"""The contact registry's read model, written in the transaction of its events.

``contacts`` holds each active contact's role, scope, preferences and
addresses (in clear, on this node only, for sending); ``phone_token`` is the
node's keyed hash of the phone number, to find who sent an inbound SMS.
Erasing a contact deletes its row and purges the address and content of its
notifications in the same transaction.
"""

from services.notify import outbox
from services.notify.domain import Contact
from shared.errors import NotFound


def project(changes, pseudonym):
    """The statements that upsert (or delete) the row of every contact a command changed."""
    statements = []
    for aggregate, events in changes:
        if not isinstance(aggregate, Contact):
            continue
        if aggregate.status == "erased":
            statements.append(("DELETE FROM contacts WHERE user_id = %s", [aggregate.id]))
            statements.append((outbox.PURGE_PERSON, [events[-1].time, aggregate.id]))
            continue
        view = aggregate.snapshot()
        token = pseudonym(view["phone"]) if view["phone"] else None
        statements.append(
            (
                "INSERT INTO contacts (user_id, role, kelurahan, rw, rt, phone, email, phone_token,"
                " channels, opted_out, whatsapp_opt_in, version)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (user_id) DO UPDATE SET role = excluded.role,"
                " kelurahan = excluded.kelurahan, rw = excluded.rw, rt = excluded.rt,"
                " phone = excluded.phone, email = excluded.email,"
                " phone_token = excluded.phone_token, channels = excluded.channels,"
                " opted_out = excluded.opted_out, whatsapp_opt_in = excluded.whatsapp_opt_in,"
                " version = excluded.version",
                [
                    view["user_id"],
                    view["role"],
                    view["kelurahan"],
                    view["rw"],
                    view["rt"],
                    view["phone"],
                    view["email"],
                    token,
                    view["channels"],
                    view["opted_out"],
                    view["whatsapp_opt_in"],
                    view["version"],
                ],
            )
        )
    return statements


def contact_by_phone_token(db, token):
    with db.connection() as conn:
        row = conn.execute(
            "SELECT user_id FROM contacts WHERE phone_token = %s", [token]
        ).fetchone()
    return row["user_id"] if row else None


def get_contact(db, user_id):
    """A contact's preferences and scope; addresses shown only as whether they are set."""
    with db.connection() as conn:
        row = conn.execute("SELECT * FROM contacts WHERE user_id = %s", [user_id]).fetchone()
    if row is None:
        raise NotFound(f"contact {user_id} is not registered")
    return public_view(row)


def public_view(row):
    return {
        "user_id": row["user_id"],
        "role": row["role"],
        "kelurahan": row["kelurahan"],
        "rw": row["rw"],
        "rt": row["rt"],
        "has_phone": row["phone"] is not None,
        "has_email": row["email"] is not None,
        "channels": list(row["channels"]),
        "opted_out": list(row["opted_out"]),
        "whatsapp_opt_in": row["whatsapp_opt_in"],
        "version": row["version"],
    }


RECIPIENTS = """
SELECT c.* FROM contacts c
WHERE c.user_id = ANY(%(users)s)
   OR EXISTS (
        SELECT 1 FROM unnest(%(roles)s::text[], %(rws)s::integer[], %(areas)s::text[])
            AS a(role, rw, area)
        WHERE c.kelurahan = coalesce(a.area, %(kelurahan)s) AND a.role = c.role
          AND (a.rw IS NULL OR a.rw = c.rw))
ORDER BY c.user_id
"""


def recipients(conn, kelurahan, audiences):
    """The contacts rows the audiences name, each person once, in a stable order (one query).

    A role is looked up in the node's own area (``kelurahan``) unless the audience
    names another (on the city node: a camat's kecamatan)."""
    users = sorted({a.user for a in audiences if a.user})
    roles = [a for a in audiences if a.role is not None]
    if not users and not roles:
        return []
    return conn.execute(
        RECIPIENTS,
        {
            "users": users,
            "kelurahan": kelurahan,
            "roles": [a.role for a in roles],
            "rws": [a.rw for a in roles],
            "areas": [a.area for a in roles],
        },
    ).fetchall()
