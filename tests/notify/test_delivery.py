"""Delivery: fallback and recovery, retries, quiet hours, opt-out, reports, retention."""

import concurrent.futures
import json
import time
import uuid
from datetime import datetime, timedelta

import requests

from tests import factories as f
from tests.notify.conftest import FakeProvider, wait_until

PHONE = "+6281234500001"


def register(node, user_id, role, rw=None, **contact):
    with node.rpc(f.operator()) as notify:
        return notify.register_contact(user_id=user_id, role=role, rw=rw, **contact)


def expense(budget, n):
    return budget.emit(
        "expense.recorded",
        f"expense-e{n}",
        {
            "expense_id": f"e{n}",
            "line_id": "l1",
            "amount": 1000 * n,
            "description": f"Belanja {n}",
            "status": "awaiting_approval",
        },
    )


def lurah_by_sms(node):
    budget = node.source("budget")
    node.start_notify()
    register(node, "u-lurah", "lurah", phone=PHONE, channels=["sms"])
    return budget


def states(node):
    return [r["state"] for r in node.notifications()]


def copy_of_first_notification(node, cause):
    """Create a notification as another notify process would: a new row, in another
    connection's transaction (a copy of the first, due now)."""
    node.query(
        "INSERT INTO notifications (id, cause, user_id, event_type, template, template_version,"
        " channel, state, created_at, next_attempt_at, sms_segments, address, content, history)"
        " SELECT gen_random_uuid(), %s, user_id, event_type, template, template_version,"
        " channel, 'created', created_at, created_at, sms_segments, address, content, '[]'"
        " FROM notifications ORDER BY created_at LIMIT 1 RETURNING id",
        [cause],
    )


def test_a_notification_is_sent_when_its_transaction_commits_in_any_process(node, caplog):
    """The outbox's trigger NOTIFYs every dispatcher on commit; with a poll of a minute, only
    that wakes them. It still does after the listening connection was cut."""
    node.monkeypatch.setenv("NOTIFY_POLL_SECONDS", "60")
    budget = lurah_by_sms(node)
    time.sleep(0.5)  # the dispatcher's first looks are over: now it waits to be woken
    expense(budget, 1)
    wait_until(lambda: len(node.sms.receipts()) == 1, timeout=5, what="the SMS of the event")

    copy_of_first_notification(node, "another-process#1")
    wait_until(lambda: len(node.sms.receipts()) == 2, timeout=5, what="the one made elsewhere")

    (schema,) = node.query("SELECT current_schema() AS s")
    node.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
        [f'LISTEN "rembug_outbox:{schema["s"]}"'],
    )
    time.sleep(1.5)  # listening again, on a new connection
    copy_of_first_notification(node, "another-process#2")
    wait_until(lambda: len(node.sms.receipts()) == 3, timeout=5, what="the SMS after reconnecting")
    told = [
        r.getMessage() for r in caplog.records if "hearing of new notifications" in r.getMessage()
    ]
    assert len(told) == 2 and "not hearing" in told[0] and "again" in told[1]


def test_a_provider_outage_fails_over_to_the_backup_then_recovers(node):
    budget = lurah_by_sms(node)
    expense(budget, 1)
    wait_until(lambda: len(node.sms.receipts()) == 1, what="the primary to take the first")

    node.sms.kill()  # the primary provider is gone
    for n in (2, 3, 4):
        expense(budget, n)
    wait_until(lambda: len(node.sms_backup.receipts()) == 3, what="the backup to take over")
    assert len(node.sms.receipts()) == 1

    node.sms.start()  # back on the same port
    time.sleep(0.6)  # the cooldown ends: the primary is tried again
    expense(budget, 5)
    wait_until(lambda: len(node.sms.receipts()) == 2, what="the primary to take traffic again")
    providers = [r["provider"] for r in node.notifications()]
    assert providers == ["sms-primary", "sms-backup", "sms-backup", "sms-backup", "sms-primary"]
    assert states(node) == ["sent"] * 5
    assert len(node.sms_backup.receipts()) == 3


def test_when_every_provider_fails_it_is_retried_with_backoff_until_one_answers(node):
    budget = lurah_by_sms(node)
    node.sms.mode("fail")
    node.sms_backup.mode("fail")
    expense(budget, 1)
    wait_until(lambda: [r for r in node.notifications() if r["attempts"] >= 2], what="a retry")
    row = node.notifications()[0]
    assert row["state"] in ("temporary_failure", "sending")
    assert "HTTP 503" in row["last_error"] and PHONE not in row["last_error"]
    node.sms_backup.mode("ok")
    wait_until(lambda: states(node) == ["sent"], what="the retry to get through")
    steps = [s["state"] for s in node.notifications()[0]["history"]]
    assert steps[0] == "created" and "temporary_failure" in steps and steps[-1] == "sent"
    assert len(node.sms_backup.receipts()) == 1


def test_a_refused_message_fails_permanently_without_retry(node):
    budget = lurah_by_sms(node)
    node.sms.mode("reject")
    expense(budget, 1)
    wait_until(lambda: states(node) == ["permanent_failure"], what="the permanent failure")
    time.sleep(0.5)
    row = node.notifications()[0]
    assert row["attempts"] == 1 and row["last_error"] == "sms-primary: HTTP 400"
    assert node.sms_backup.receipts() == []


def test_sms_is_held_outside_eight_to_twenty_wib_and_released_at_eight(node):
    budget = node.source("budget")
    node.set_clock("2026-03-02T21:00:00+07:00")
    node.start_notify()
    register(node, "u-lurah", "lurah", phone=PHONE, channels=["sms"])
    register(node, "u-bendahara", "bendahara", email="bendahara@example.org", channels=["email"])
    expense(budget, 1)
    wait_until(lambda: len(node.smtp.messages()) == 1, what="the email (no quiet hours)")
    time.sleep(0.5)
    [sms] = node.notifications(channel="sms")
    assert sms["state"] == "created" and node.sms.receipts() == []
    assert sms["held_until"] == datetime.fromisoformat("2026-03-03T08:00:00+07:00")

    node.set_clock("2026-03-03T07:59:00+07:00")
    time.sleep(0.5)
    assert node.sms.receipts() == []
    node.set_clock("2026-03-03T08:00:00+07:00")
    wait_until(lambda: len(node.sms.receipts()) == 1, what="the held SMS")
    wait_until(lambda: node.notifications(channel="sms")[0]["state"] == "sent", what="sent")


def test_berhenti_stops_sms_for_good_even_for_messages_already_waiting(node):
    budget = node.source("budget")
    node.set_clock("2026-03-02T21:00:00+07:00")
    node.start_notify()
    register(node, "u-lurah", "lurah", phone=PHONE, channels=["sms"])
    expense(budget, 1)  # held until 08:00
    wait_until(lambda: node.notifications(), what="the held SMS")

    with node.rpc(f.system()) as notify:
        assert notify.inbound_sms(provider="sms-primary", sender="0812 3450 0001", text="berhenti")
        assert notify.inbound_sms(
            provider="sms-primary", sender="081299999999", text="BERHENTI"
        ) == {"opted_out": False}
    with node.rpc(f.lurah()) as notify:
        assert notify.get_contact()["opted_out"] == ["sms"]

    node.set_clock("2026-03-03T09:00:00+07:00")
    expense(budget, 2)
    wait_until(
        lambda: (
            [(r["channel"], r["state"]) for r in node.notifications()]
            == [("in_app", "delivered")] * 2
        ),
        what="both in the inbox",
    )
    time.sleep(0.6)
    assert node.sms.receipts() == [] and node.sms_backup.receipts() == []
    rows = node.notifications()
    assert rows[0]["last_error"] == "opted_out"
    with node.rpc(f.lurah()) as notify:
        assert notify.inbox()["total"] == 2


def test_provider_reports_move_sent_messages_on(node):
    budget = lurah_by_sms(node)
    expense(budget, 1)
    expense(budget, 2)
    wait_until(lambda: states(node) == ["sent", "sent"], what="both sent")
    first, second = (r["body"]["reference"] for r in node.sms.receipts())
    with node.rpc(f.system()) as notify:
        assert (
            notify.delivery_report(provider="sms-primary", reference=first, status="delivered")[
                "state"
            ]
            == "delivered"
        )
        notify.delivery_report(provider="sms-primary", reference=second, status="failed")
        # a late report cannot undo a final state
        assert (
            notify.delivery_report(provider="sms-primary", reference=first, status="failed")[
                "state"
            ]
            == "delivered"
        )
    assert sorted(states(node)) == ["delivered", "permanent_failure"]


def test_content_and_addresses_are_purged_after_the_retention_period(node):
    budget = lurah_by_sms(node)
    expense(budget, 1)
    wait_until(lambda: states(node) == ["sent"], what="sent")
    row = node.notifications()[0]
    assert row["address"] == PHONE and row["content"]["message"]["text"]

    node.set_clock((row["created_at"] + timedelta(days=7, minutes=1)).isoformat())
    wait_until(lambda: node.notifications()[0]["purged_at"] is not None, what="the purge")
    row = node.notifications()[0]
    assert row["address"] is None and row["content"] is None
    assert (row["state"], row["template"], row["channel"], row["user_id"]) == (
        "sent",
        "expense.recorded",
        "sms",
        "u-lurah",
    )
    assert PHONE not in str(row) and "Belanja" not in str(row)
    with node.rpc(f.lurah()) as notify:
        [item] = notify.inbox()["items"]
    assert item["message"] is None


def test_addresses_never_leave_notify_and_erasure_purges_them(node):
    budget = lurah_by_sms(node)
    reply = register(node, "u-bendahara", "bendahara", email="b@example.org", channels=["email"])
    assert reply["has_email"] and "b@example.org" not in str(reply)
    expense(budget, 1)
    wait_until(lambda: states(node) == ["sent", "sent"], what="sent")
    with node.rpc(f.system()) as notify:
        published = str(notify.replay(after=0))
    assert "contact.registered" in published
    assert PHONE not in published and "b@example.org" not in published

    with node.rpc(f.lurah()) as notify:
        notify.erase_contact(user_id="u-bendahara")
    assert node.query("SELECT * FROM contacts WHERE user_id = 'u-bendahara'") == []
    [row] = node.notifications(user_id="u-bendahara")
    assert row["address"] is None and row["content"] is None and row["purged_at"] is not None


def test_providers_call_back_over_http_with_their_token(node):
    budget = lurah_by_sms(node)
    expense(budget, 1)
    wait_until(lambda: states(node) == ["sent"], what="sent")
    reference = node.sms.receipts()[0]["body"]["reference"]
    hook = f"{node.web_url}/notify/providers/sms-primary"
    good = {"Authorization": "Bearer callback-sms-primary"}

    refused = requests.post(
        f"{hook}/reports",
        json={"reference": reference, "status": "delivered"},
        headers={"Authorization": "Bearer callback-sms-backup"},
        timeout=5,
    )
    assert refused.status_code == 401, (refused.text, refused.headers)
    assert states(node) == ["sent"]
    bad = requests.post(
        f"{hook}/reports", json={"reference": reference, "status": "read"}, headers=good, timeout=5
    )
    assert bad.status_code == 400, bad.text
    done = requests.post(
        f"{hook}/reports",
        json={"reference": reference, "status": "delivered"},
        headers=good,
        timeout=5,
    )
    assert done.status_code == 200 and done.json()["state"] == "delivered"
    assert states(node) == ["delivered"]

    stop = requests.post(
        f"{hook}/inbound", json={"sender": PHONE, "text": "BERHENTI"}, headers=good, timeout=5
    )
    assert stop.json() == {"opted_out": True} and PHONE not in stop.text
    expense(budget, 2)
    wait_until(lambda: len(node.notifications()) == 2, what="the second notice")
    assert node.notifications()[1]["channel"] == "in_app"


def test_whatsapp_goes_as_the_approved_template_with_its_parameters_after_opt_in(node):
    budget = node.source("budget")
    node.start_notify()
    register(
        node, "u-lurah", "lurah", phone=PHONE, channels=["whatsapp", "sms"], whatsapp_opt_in=True
    )
    register(node, "u-bendahara", "bendahara", phone="+6281234500002", channels=["whatsapp", "sms"])
    expense(budget, 3)
    wait_until(lambda: node.whatsapp.receipts() and node.sms.receipts(), what="both messages")
    [message] = node.whatsapp.receipts()
    assert message["body"]["to"] == PHONE
    assert message["body"]["template"] == "rembug_belanja_persetujuan_v1"
    assert message["body"]["parameters"] == ["Rp 3.000", "Belanja 3"]
    assert node.sms.receipts()[0]["body"]["to"] == "+6281234500002"  # no opt-in: SMS instead


def test_a_provider_is_never_sent_more_than_its_rate(node, monkeypatch):
    budget = node.source("budget")
    settings = [node.sms.settings(priority=1, rate=4)]  # 4 a second, one provider
    monkeypatch.setenv("NOTIFY_PROVIDERS", json.dumps(settings))
    node.start_notify()
    register(node, "u-lurah", "lurah", phone=PHONE, channels=["sms"])
    for n in range(12):
        expense(budget, n)
    wait_until(lambda: len(node.sms.receipts()) == 12, what="all twelve", timeout=20)
    times = sorted(r["at"] for r in node.sms.receipts())
    # a token bucket of 4 per second, bursts of 4: any window of one second holds at most 8
    for i, start in enumerate(times):
        assert len([t for t in times[i:] if t < start + 1.0]) <= 8
    assert times[-1] - times[0] >= (12 - 4) / 4 - 0.2  # the rest had to wait for tokens


def test_a_provider_reports_delivery_by_its_own_message_id(node, monkeypatch):
    """The fake gateway reports each message it accepted by the id it answered (never by
    ours), possibly before notify has recorded that id: notify finds the message by it."""
    budget = node.source("budget")
    reporting = FakeProvider("sms-reporting", "sms", node.tmp_path)
    monkeypatch.setenv("NOTIFY_PROVIDERS", json.dumps([reporting.settings()]))
    node.start_notify()
    hook = f"{node.web_url}/notify/providers/sms-reporting/reports"
    node.servers.append(reporting)
    monkeypatch.setenv("FAKE_PROVIDER_REPORT_TOKEN", "callback-sms-reporting")  # not in ps
    reporting.start("--report-to", hook)
    register(node, "u-lurah", "lurah", phone=PHONE, channels=["sms"])
    for n in range(1, 6):
        expense(budget, n)
    wait_until(lambda: states(node) == ["delivered"] * 5, what="five delivery reports")
    ids = {r["id"]: r["provider_message_id"] for r in node.notifications()}
    accepted = {r["key"]: r["id"] for r in reporting.receipts()}  # our id -> its id
    assert ids == {uuid.UUID(k): v for k, v in accepted.items()}
    assert reporting.stats()["reported"] == 5
    step = node.notifications()[0]["history"][-1]
    assert step["via"] == "report" and step["provider"] == "sms-reporting"

    good = {"Authorization": "Bearer callback-sms-reporting"}
    unknown = requests.post(
        hook, json={"message_id": "fp-999", "status": "delivered"}, headers=good, timeout=5
    )
    assert unknown.status_code == 404 and "fp-999" not in unknown.text
    other = node.notifications()[0]
    mismatched = requests.post(  # our id and another message's provider id: no such message
        hook,
        json={
            "reference": str(other["id"]),
            "message_id": ids[node.notifications()[1]["id"]],
            "status": "failed",
        },
        headers=good,
        timeout=5,
    )
    assert mismatched.status_code == 404
    nameless = requests.post(hook, json={"status": "delivered"}, headers=good, timeout=5)
    assert nameless.status_code == 400 and "message_id" in nameless.json()["message"]
    assert states(node) == ["delivered"] * 5


def test_the_fake_provider_answers_its_count_once_it_is_reached(tmp_path):
    """``GET /_stats?received=N`` (the benchmark's end of a round) answers once N messages
    are in, or with what is in after ``timeout`` seconds."""
    provider = FakeProvider("sms-counted", "sms", tmp_path).start()
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(requests.get, f"{provider.url}/_stats?received=2", timeout=10)
            time.sleep(0.3)
            assert not waiting.done()
            for n in (1, 2):
                message = {"to": "+6281234500001", "text": f"pesan {n}"}
                headers = {"Idempotency-Key": f"k{n}"}
                requests.post(f"{provider.url}/messages", json=message, headers=headers, timeout=5)
            assert waiting.result().json()["received"] == 2
        short = requests.get(f"{provider.url}/_stats?received=3&timeout=0.2", timeout=5)
        assert short.json()["received"] == 2
    finally:
        provider.stop()
