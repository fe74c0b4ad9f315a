"""Notify killed mid-batch (a real process, ``kill -9``): nothing sent twice, nothing lost."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests import factories as f
from tests.notify.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
COUNT = 200


def start_notify_process(node, log_path):
    env = {
        **os.environ,
        **node.env,
        **node.notify_env,
        "DATABASE_URL": node.notify_url,
        "NOTIFY_LEASE_SECONDS": "2",
        "PYTHONPATH": str(ROOT),
    }
    with open(log_path, "a") as log:
        return subprocess.Popen(
            [
                str(Path(sys.executable).parent / "nameko"),
                "run",
                "--config",
                str(ROOT / "deploy" / "nameko.yaml"),
                "services.notify.service:NotifyService",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def test_killed_mid_batch_it_sends_nothing_twice_and_loses_nothing(node, tmp_path):
    budget = node.source("budget")
    node.start_notify()  # in-process first, to register the contact; then stopped
    with node.rpc(f.operator()) as notify:
        notify.register_contact(
            user_id="u-lurah", role="lurah", phone="081234500001", channels=["sms"]
        )
    node.notify.stop()

    log_path = tmp_path / "notify.log"
    first = start_notify_process(node, log_path)
    node.sms.mode("ok", delay=0.02)  # slow enough to be killed with messages in flight
    events = [
        budget.emit(
            "expense.recorded",
            f"expense-e{n}",
            {
                "expense_id": f"e{n}",
                "line_id": "l1",
                "amount": 1000 + n,
                "description": f"Belanja nomor {n}",
                "status": "awaiting_approval",
            },
        )
        for n in range(COUNT)
    ]
    wait_until(lambda: len(node.sms.receipts()) >= 40, 30, "the first process to send some")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    sent_before = len(node.sms.receipts())
    assert sent_before < COUNT, log_path.read_text()[-3000:]
    budget.publish(*events[:50])  # redeliveries on top, for good measure

    second = start_notify_process(node, log_path)
    try:
        wait_until(lambda: len(node.sms.receipts()) == COUNT, 60, "every message")
        wait_until(
            lambda: [r["state"] for r in node.notifications()] == ["sent"] * COUNT,
            30,
            "every notification to be recorded as sent",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(20)

    receipts = node.sms.receipts()
    texts = [r["body"]["text"] for r in receipts]
    numbers = sorted(int(t.split("Belanja nomor ")[1].split(")")[0]) for t in texts)
    assert numbers == list(range(COUNT))  # every expense, each once
    assert len({r["key"] for r in receipts}) == COUNT
    rows = node.notifications()
    assert len(rows) == COUNT and len({r["cause"] for r in rows}) == COUNT
    repeats = node.sms.stats()["repeats"]
    in_flight_resent = sum(1 for r in rows if r["attempts"] > 1)
    print(
        f"killed after {sent_before} receipts; {in_flight_resent} re-sent after the lease, "
        f"{repeats} recognised by the provider's idempotency key"
    )
    assert repeats <= in_flight_resent
