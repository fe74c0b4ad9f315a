"""From an event to notifications: remember, decide who hears, choose a channel, render.

:func:`on_events` runs inside the subscription's tracking transaction (on its
``conn``): everything it writes commits with the consumer's new position, so
an event takes effect exactly once however often it arrives. Each person is
notified once per cause (see :mod:`services.notify.outbox`), on the first
channel of their preferences they can be reached on (:func:`choose_channel`).
"""

import logging

from services.notify import memory, outbox, rules, views
from services.notify.domain import choose_channel
from services.notify.templates import template as template_for

log = logging.getLogger(__name__)


def cause_of(event):
    """The dedup key of an event's notifications: its source and id."""
    return f"{event.source}#{event.id}"


def on_events(conn, events, kelurahan, channels, now):
    """Fold ``events`` (in order) into memory and create their notifications in one
    statement (a cause already notified adds nothing). Recipients are looked up once
    per set of audiences."""
    found, rows = {}, []
    for event in events:
        memory.remember(conn, event)
        for notice in rules.notices(event, memory.Memory(conn)):
            if notice.audiences not in found:
                found[notice.audiences] = views.recipients(conn, kelurahan, notice.audiences)
            rows += notification_rows(
                cause_of(event), event.type, notice, found[notice.audiences], channels, now
            )
    outbox.create(conn, rows, count=False)


def send_notice(conn, cause, event_type, notice, kelurahan, channels, now):
    """Create the notifications of one notice for every person it reaches."""
    contacts = views.recipients(conn, kelurahan, notice.audiences)
    return outbox.create(
        conn, notification_rows(cause, event_type, notice, contacts, channels, now)
    )


def notification_rows(cause, event_type, notice, contacts, channels, now):
    """The notifications of one notice: one per contact reachable on some channel."""
    template = template_for(notice.template)
    rows, unreachable = [], 0
    in_app = template.render("in_app", notice.params)
    for contact in contacts:
        channel = choose_channel(contact, channels)
        if channel is None:
            unreachable += 1
            continue
        message = in_app if channel == "in_app" else template.render(channel, notice.params)
        rendering = {"message": message, "in_app": in_app}
        rows.append(outbox.row(cause, event_type, template, contact, channel, rendering, now))
    if unreachable:
        log.info("%s: %d recipients opted out of every channel", event_type, unreachable)
    return rows


def notice_breaches(db, kelurahan, channels, now):
    """Notify the operators of every open request past its 24-hour target, once each."""
    total = 0
    with db.transaction() as conn:
        for request in memory.due_breaches(conn, now):
            notice = rules.breach_notice(request)
            total += send_notice(
                conn,
                f"breach#{request['id']}",
                "request.breached",
                notice,
                kelurahan,
                channels,
                now,
            )
            memory.breach_noticed(conn, request["id"])
    return total
