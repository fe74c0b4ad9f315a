"""Recipient addresses never appear in a log line, an error reply or a published event."""

import logging
import time

from nameko.exceptions import RemoteError

from tests import factories as f
from tests.notify.conftest import wait_until

PHONE = "+6281298765432"
EMAIL = "bendahara.rw07@example.org"


def test_addresses_stay_out_of_logs_errors_and_events(node, caplog):
    caplog.set_level(logging.DEBUG)
    budget = node.source("budget")
    node.start_notify()
    with node.rpc(f.operator()) as notify:
        notify.register_contact(
            user_id="u-lurah", role="lurah", phone="0812 9876 5432", channels=["sms"]
        )
        notify.register_contact(
            user_id="u-bendahara", role="bendahara", email=EMAIL, channels=["email"]
        )
        try:  # a bad address is refused without repeating it
            notify.register_contact(user_id="u-x", role="operator", phone="+62 not a number")
        except RemoteError as error:
            assert "not a number" not in str(error.value)
    node.sms.mode("fail")  # failures and retries are logged too
    node.sms_backup.mode("fail")
    budget.emit(
        "expense.recorded",
        "expense-e1",
        {
            "expense_id": "e1",
            "line_id": "l1",
            "amount": 5000,
            "description": "Alat tulis",
            "status": "awaiting_approval",
        },
    )
    wait_until(lambda: len(node.smtp.messages()) == 1, what="the email")
    wait_until(lambda: node.notifications(channel="sms")[0]["attempts"] >= 2, what="a retry")
    node.sms.mode("ok")
    node.sms_backup.mode("ok")
    wait_until(lambda: len(node.sms_backup.receipts()) + len(node.sms.receipts()) == 1, what="sms")
    with node.rpc(f.system()) as notify:
        published = str(notify.replay(after=0))
        notify.inbound_sms(provider="sms-primary", sender=PHONE, text="BERHENTI")
    with node.rpc(f.lurah()) as notify:
        contact = notify.get_contact()
    time.sleep(0.3)

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for address in (PHONE, "6281298765432", "0812 9876 5432", EMAIL):
        assert address not in logged
        assert address not in published
        assert address not in str(contact)
    assert contact["has_phone"] and contact["opted_out"] == ["sms"]
