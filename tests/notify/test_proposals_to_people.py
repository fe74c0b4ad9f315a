"""Proposal events reach the proposer and their RW chair, once, on the channel they prefer."""

import time
import uuid

from tests import factories as f
from tests.notify.conftest import wait_until

PROPOSER = "u-rt-7-3"  # the ketua RT who submitted (the event's actor)
RW_CHAIR = "u-rw-7"
OTHER_CHAIR = "u-rw-8"


def register(node, user_id, role, rw=None, rt=None, **contact):
    with node.rpc(f.operator()) as notify:
        return notify.register_contact(user_id=user_id, role=role, rw=rw, rt=rt, **contact)


def submitted(proposals, rw=7, rt=3, title="Perbaikan saluran air RT 03"):
    proposal_id = str(uuid.uuid4())
    data = {
        "kelurahan": "32.75.05.1002",
        "year": 2027,
        "title": title,
        "proposer": {"level": "rt", "rw": rw, "rt": rt, "unit": None},
        "location": {"rw": rw, "rt": rt},
    }
    event = proposals.emit(
        "proposal.submitted",
        f"proposal-{proposal_id}",
        data,
        actor={"id": PROPOSER, "role": "ketua_rt"},
    )
    return proposal_id, event


def test_a_rejection_reaches_proposer_by_sms_and_rw_chair_by_email_once(node):
    proposals = node.source("proposals")
    node.start_notify()
    register(node, PROPOSER, "ketua_rt", 7, 3, phone="0812-3456-7890", channels=["sms", "in_app"])
    register(node, RW_CHAIR, "ketua_rw", 7, email="rw7@example.org", channels=["email"])
    register(node, OTHER_CHAIR, "ketua_rw", 8, phone="+6281200000008", channels=["sms"])

    proposal_id, _ = submitted(proposals)
    rejected = proposals.emit(
        "proposal.rejected",
        f"proposal-{proposal_id}",
        {"code": "wrong_address", "text": "Lokasi berada di luar wilayah RT 03"},
    )

    def rejection_sms():
        return [r for r in node.sms.receipts() if "ditolak" in r["body"]["text"]]

    receipt = wait_until(rejection_sms, what="the SMS")[0]
    assert receipt["body"]["to"] == "+6281234567890"
    assert receipt["body"]["sender"] == "REMBUG"
    assert receipt["body"]["text"].startswith(
        'Rembug: Usulan "Perbaikan saluran air RT 03" ditolak.'
    )
    assert "Lokasi berada di luar wilayah RT 03" in receipt["body"]["text"]
    email = wait_until(lambda: node.smtp.messages(), what="the email")[0]
    assert email["to"] == ["rw7@example.org"]
    assert email["subject"] == 'Usulan "Perbaikan saluran air RT 03" ditolak'
    assert "Lokasi berada di luar wilayah RT 03" in email["body"]

    proposals.publish(rejected, rejected)  # redelivered: nobody hears twice
    time.sleep(0.5)
    rows = node.notifications(event_type="proposal.rejected")
    assert sorted((r["user_id"], r["channel"]) for r in rows) == [
        (PROPOSER, "sms"),
        (RW_CHAIR, "email"),
    ]
    wait_until(lambda: all(r["state"] == "sent" for r in node.notifications()), what="sent")
    # the proposer's SMS: the submission's acknowledgement (to them alone) and the rejection
    assert len(node.sms.receipts()) == 2 and len(node.smtp.messages()) == 1
    assert [r["user_id"] for r in node.notifications(event_type="proposal.submitted")] == [PROPOSER]
    sms = node.notifications(user_id=PROPOSER, event_type="proposal.rejected")[0]
    assert sms["sms_segments"] == 1
    assert sms["template"] == "proposal.rejected" and sms["template_version"] == 1


def test_every_status_change_and_decision_is_told_with_its_reason(node):
    proposals = node.source("proposals")
    node.start_notify()
    register(node, PROPOSER, "ketua_rt", 7, 3)  # in-app only

    proposal_id, _ = submitted(proposals)
    stream = f"proposal-{proposal_id}"
    proposals.emit("proposal.verified", stream, {"note": "Lengkap"})
    proposals.emit("proposal.forwarded", stream, {"rank": 2, "forum_id": "32.75.05.1002-2027"})
    proposals.emit(
        "proposal.decided",
        stream,
        {
            "proposal_id": proposal_id,
            "kelurahan": "32.75.05.1002",
            "level": "city",
            "decision": "funded",
            "reason": None,
            "funding_source": "apbd",
            "amount": 115_000_000,
        },
    )
    wait_until(lambda: len(node.notifications()) == 4, what="four notifications")

    with node.rpc(f.rt_chair()) as notify:
        inbox = notify.inbox()
    assert inbox["total"] == 4
    bodies = [item["message"]["body"] for item in inbox["items"]]
    assert any("telah diterima kelurahan" in b for b in bodies)
    assert any("didanai dari APBD sebesar Rp 115.000.000" in b for b in bodies)
    assert any("peringkat 2" in b for b in bodies)
    assert all(item["state"] == "delivered" for item in inbox["items"])


def test_a_late_notify_catches_up_and_notifies_once(node):
    proposals = node.source("proposals")
    proposal_id, _ = submitted(proposals)
    proposals.emit("proposal.returned", f"proposal-{proposal_id}", {"reason": "Foto kurang"})
    node.start_notify()  # the events were published before its queue existed
    register(node, PROPOSER, "ketua_rt", 7, 3)
    # registered after the event: no notification (nobody was registered then)
    proposals.emit("proposal.verified", f"proposal-{proposal_id}", {"note": ""})
    wait_until(lambda: node.notifications(), what="the verification notice")
    assert [r["event_type"] for r in node.notifications()] == ["proposal.verified"]
