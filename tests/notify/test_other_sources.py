"""Forums, the budget, the Pamor desk and vulnerable residents: each reaches its people."""

import time
import uuid
from datetime import timedelta

from tests import factories as f
from tests.notify.conftest import wait_until

KEL = "32.75.05.1002"


def register(node, user_id, role, rw=None, rt=None, **contact):
    with node.rpc(f.operator()) as notify:
        return notify.register_contact(user_id=user_id, role=role, rw=rw, rt=rt, **contact)


def users(node, event_type):
    return sorted(r["user_id"] for r in node.notifications(event_type=event_type))


def test_forum_schedule_to_rw_chairs_results_to_delegates_and_chairs(node):
    proposals = node.source("proposals")
    node.start_notify()
    register(node, "u-rw-7", "ketua_rw", 7)
    register(node, "u-rw-8", "ketua_rw", 8)
    register(node, "d-warga-1", "warga", 7)
    register(node, "u-rt-7-3", "ketua_rt", 7, 3)  # neither chair of an RW nor delegate
    stream = f"forum-{KEL}-2027"
    proposals.emit(
        "forum.scheduled",
        stream,
        {
            "kelurahan": KEL,
            "year": 2027,
            "date": "2027-01-20",
            "theme": "Drainase",
            "place": "Aula",
        },
    )
    delegates = [{"delegate_id": "d-warga-1", "rw": 7, "role": "delegasi"}]
    proposals.emit(
        "forum.held",
        stream,
        {
            "held_on": "2027-01-20",
            "attendance": 120,
            "berita_acara": "files/ba.pdf",
            "delegates": delegates,
        },
    )
    proposals.emit(
        "forum.ranked", stream, {"ranking": [{"proposal_id": str(uuid.uuid4()), "total": 4.2}]}
    )

    wait_until(lambda: len(node.notifications()) == 8, what="eight notifications")
    assert users(node, "forum.scheduled") == ["u-rw-7", "u-rw-8"]
    assert users(node, "forum.held") == ["d-warga-1", "u-rw-7", "u-rw-8"]
    assert users(node, "forum.ranked") == ["d-warga-1", "u-rw-7", "u-rw-8"]
    with node.rpc(f.actor("warga", "d-warga-1", rw=7)) as notify:
        bodies = [i["message"]["body"] for i in notify.inbox()["items"]]
    assert any("1 delegasi terpilih" in b for b in bodies)


def test_budget_events_reach_lurah_and_bendahara(node):
    budget = node.source("budget")  # a stand-in: the budget service publishes the same events
    node.start_notify()
    register(node, "u-lurah", "lurah", email="lurah@example.org", channels=["email"])
    register(node, "u-bendahara", "bendahara", phone="081200000001", channels=["sms"])
    register(node, "u-operator", "operator")
    budget.emit(
        "expense.recorded",
        "expense-e1",
        {
            "expense_id": "e1",
            "line_id": "l1",
            "amount": 750_000,
            "description": "Konsumsi rapat Binwas",
            "status": "awaiting_approval",
        },
    )
    budget.emit(
        "line.threshold_crossed",
        "line-l1",
        {
            "line_id": "l1",
            "fiscal_year": 2026,
            "activity": "Binwas RW",
            "category": "operasional",
            "allocated": 10_000_000,
            "realised": 10_250_000,
            "percent": 102.5,
            "level": "over",
        },
    )
    budget.emit(
        "advance.overdue",
        "advance-a1",
        {
            "advance_id": "a1b2c3d4-0000",
            "person_id": "u-lurah",
            "outstanding": 2_000_000,
            "age_days": 34,
        },
    )
    wait_until(
        lambda: len(node.smtp.messages()) == 3 and len(node.sms.receipts()) == 3, what="sent"
    )
    texts = [r["body"]["text"] for r in node.sms.receipts()]
    assert any(
        "Pengeluaran Rp 750.000 (Konsumsi rapat Binwas) menunggu persetujuan" in t for t in texts
    )
    assert any(
        "melampaui batas: terealisasi Rp 10.250.000 dari Rp 10.000.000 (102,5%)" in t for t in texts
    )
    assert any("belum dipertanggungjawabkan setelah 34 hari" in t for t in texts)
    assert {r["user_id"] for r in node.notifications()} == {"u-lurah", "u-bendahara"}


def test_assigned_requests_reach_the_pamor_and_a_breach_the_operator_once(node):
    citizens = node.source("citizens")
    node.start_notify()
    register(node, "u-pamor-7", "pamor", 7, phone="081277770007", channels=["sms"])
    register(node, "u-operator", "operator", email="op@example.org", channels=["email"])
    request_id = str(uuid.uuid4())
    stream = f"request-{request_id}"
    raised = citizens.emit(
        "request.raised",
        stream,
        {
            "kelurahan": KEL,
            "kind": "ktp",
            "resident_id": str(uuid.uuid4()),
            "personal": None,
            "public": {"rw": 7},
        },
    )
    citizens.emit(
        "request.assigned", stream, {"pamor_id": "u-pamor-7", "personal": None, "public": {"rw": 7}}
    )
    receipt = wait_until(lambda: node.sms.receipts(), what="the pamor's SMS")[0]
    assert "Permohonan layanan KTP di RW 7 ditugaskan kepada Anda" in receipt["body"]["text"]
    assert node.smtp.messages() == []

    later = raised.time + timedelta(hours=25)  # past the 24-hour target, at any hour
    node.set_clock(later.isoformat())
    email = wait_until(lambda: node.smtp.messages(), what="the breach email")[0]
    assert email["to"] == ["op@example.org"] and "melewati target 24 jam" in email["body"]
    node.set_clock((later + timedelta(hours=1)).isoformat())
    wait_until(lambda: len(node.notifications(event_type="request.breached")) == 1, what="one")
    time.sleep(1.5)  # two more housekeeping rounds: still one
    assert len(node.notifications(event_type="request.breached")) == 1


def test_a_done_request_is_no_breach(node):
    citizens = node.source("citizens")
    node.start_notify()
    register(node, "u-operator", "operator")
    stream = f"request-{uuid.uuid4()}"
    raised = citizens.emit(
        "request.raised",
        stream,
        {
            "kelurahan": KEL,
            "kind": "kk",
            "resident_id": str(uuid.uuid4()),
            "personal": None,
            "public": {"rw": 7},
        },
    )
    done = citizens.emit(
        "request.done", stream, {"outcome": "done", "personal": None, "public": {"rw": 7}}
    )
    wait_until(lambda: node.query("SELECT * FROM desk_requests WHERE closed"), what="closed")
    node.set_clock((raised.time + timedelta(hours=30)).isoformat())
    time.sleep(1.5)
    assert node.notifications() == [] and done.type == "request.done"


def test_a_vulnerable_resident_reaches_only_the_pamor_of_that_rw(node):
    citizens = node.source("citizens")
    node.start_notify()
    register(node, "u-pamor-7", "pamor", 7)
    register(node, "u-pamor-8", "pamor", 8)
    citizens.emit(
        "resident.disability_recorded",
        f"resident-{uuid.uuid4()}",
        {
            "source": "home_visit",
            "personal": None,
            "public": {
                "rw": 7,
                "sex": "F",
                "age_band": "60+",
                "categories": ["disability.physical"],
            },
        },
    )
    wait_until(lambda: node.notifications(), what="the notice")
    [row] = node.notifications()
    assert row["user_id"] == "u-pamor-7"
    assert row["content"]["in_app"]["body"].startswith(
        "Data warga rentan baru (disabilitas) tercatat di RW 7"
    )
