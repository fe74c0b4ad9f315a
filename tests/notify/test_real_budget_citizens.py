"""The real budget and citizens services and their relays: the lurah and bendahara hear the
budget's notices, an RW's pamor hears of a vulnerable resident by RW and kind only."""

import json

from services.budget.service import BudgetService
from services.citizens.service import CitizensService
from tests import factories as f
from tests.citizens import people
from tests.notify.conftest import wait_until

YEAR = 2027
LURAH, BENDAHARA = f.lurah(), f.bendahara("u-bendahara")


def register(node, user_id, role, rw=None, **contact):
    with node.rpc(f.operator()) as notify:
        notify.register_contact(user_id=user_id, role=role, rw=rw, **contact)


def texts(node, event_type):
    rows = node.notifications(event_type=event_type)
    return sorted(r["user_id"] for r in rows), {r["content"]["in_app"]["body"] for r in rows}


def line(activity, category, allocated):
    return {
        "fiscal_year": YEAR,
        "activity": activity,
        "activity_name": "Pembinaan dan pengawasan wilayah",
        "category": category,
        "source": "source.apbd",
        "allocated": allocated,
    }


def test_budget_notices_reach_the_lurah_and_bendahara(node):
    budget = node.service(BudgetService)
    node.start_notify()
    register(node, LURAH.user_id, "lurah", email="lurah@example.org", channels=["email"])
    register(node, BENDAHARA.user_id, "bendahara", phone="081200000001", channels=["sms"])
    register(node, "u-operator", "operator")
    with budget(LURAH) as lurah:
        lurah.open_fiscal_year(year=YEAR)
        transport = lurah.plan_line(**line("binwas", "expense.transport", 2_000_000))["id"]
        consumption = lurah.plan_line(**line("binwas", "expense.consumption", 1_000_000))["id"]
    with budget(BENDAHARA) as bendahara:
        bendahara.post_transaction(
            date=f"{YEAR}-01-05",
            description="Alokasi operasional triwulan I",
            entries=[
                {"account": "asset.bank", "debit": 10_000_000},
                {"account": "source.apbd", "credit": 10_000_000},
            ],
        )
    receipt = {"number": "KW-001", "date": f"{YEAR}-02-10", "file": "files/kw-001.jpg"}
    with budget(f.operator()) as op:
        op.record_expense(  # 92.5 % of the line: near its limit, and awaiting approval
            line_id=transport,
            amount=1_850_000,
            date=f"{YEAR}-02-10",
            description="Transport kunjungan RW 07",
            receipt=receipt,
        )
        op.record_advance(
            person_id=LURAH.user_id,
            line_id=consumption,
            amount=300_000,
            paid_on=f"{YEAR}-03-01",
            description="Konsumsi rapat koordinasi RW",
        )
    with budget(LURAH) as lurah:  # beyond the line, with the lurah's override
        lurah.record_expense(
            line_id=transport,
            amount=250_000,
            date=f"{YEAR}-02-12",
            description="Transport kunjungan RW 09",
            receipt={**receipt, "number": "KW-002"},
            override_reason="Kunjungan darurat banjir",
        )
    with budget(f.system()) as system:
        assert system.flag_overdue_advances(as_of=f"{YEAR}-04-05")["flagged"] == 1

    wait_until(lambda: node.caught_up("budget"), what="notify to apply every event")
    treasury = sorted([LURAH.user_id, BENDAHARA.user_id])
    who, said = texts(node, "expense.recorded")
    assert who == sorted(treasury * 2)  # the operator's and the lurah's expenses
    assert "Pengeluaran Rp 1.850.000 (Transport kunjungan RW 07) menunggu persetujuan Anda." in said
    who, said = texts(node, "line.threshold_crossed")
    assert sorted(set(who)) == treasury and len(who) == 4
    assert (
        "Pagu binwas TA 2027 mendekati batas: terealisasi Rp 1.850.000 dari Rp 2.000.000 (92,5%)."
        in said
    )
    assert any(
        "melampaui batas: terealisasi Rp 2.100.000 dari Rp 2.000.000 (105%)" in t for t in said
    )
    who, said = texts(node, "advance.overdue")
    assert who == treasury
    [overdue] = said
    assert "sebesar Rp 300.000 belum dipertanggungjawabkan setelah 35 hari" in overdue
    assert not node.notifications(user_id="u-operator")
    wait_until(
        lambda: len(node.smtp.messages()) == 5 and len(node.sms.receipts()) == 5,
        what="the lurah's emails and the bendahara's SMS",
    )


def test_a_vulnerable_resident_reaches_the_rw_pamor_by_rw_and_kind_only(node):
    citizens = node.service(CitizensService)
    node.start_notify()
    register(node, "u-pamor-7", "pamor", 7, phone="081277770007", channels=["sms"])
    register(node, "u-pamor-8", "pamor", 8)
    register(node, "u-rw-7", "ketua_rw", 7)  # a chair is not told of residents' records
    resident = people.person(sex="P", age=67, rw=7)
    with citizens(f.operator()) as op:
        rid = op.register(**resident)["id"]
        op.record_disability(
            resident_id=rid,
            categories=["physical"],
            consent={"given_by": "guardian", "date": "2026-02-01", "reference": "form-17"},
            source="posyandu",
        )
        op.record_welfare(resident_id=rid, decile=2, source="dtsen", as_of="2026-01-05")
        request = op.raise_request(kind="ktp", resident_id=rid, rw=7, note="KTP rusak")
        op.assign_request(request_id=request["id"], pamor_id="u-pamor-7")

    wait_until(lambda: node.caught_up("citizens"), what="notify to apply every event")
    wait_until(lambda: len(node.sms.receipts()) == 3, what="the pamor's three SMS")
    rows = node.notifications()
    assert {r["user_id"] for r in rows} == {"u-pamor-7"}
    assert sorted(r["event_type"] for r in rows) == [
        "request.assigned",
        "resident.disability_recorded",
        "resident.welfare_recorded",
    ]
    said = {r["content"]["in_app"]["body"] for r in rows}
    assert "Data warga rentan baru (disabilitas) tercatat di RW 7. " in "".join(said) + " "
    assert any(
        t.startswith("Data warga rentan baru (kesejahteraan/DTSEN) tercatat di RW 7") for t in said
    )
    # nothing of the resident beyond RW and kind: no name, NIK, birth date, address,
    # decile or resident id, in what was stored or what reached the provider
    sent = json.dumps([r["content"] for r in rows]) + json.dumps(
        [receipt["body"]["text"] for receipt in node.sms.receipts()]
    )
    for value in (
        resident["name"],
        resident["nik"],
        resident["birth_date"],
        resident["address"],
        rid,
        "desil",
        "67 tahun",
    ):
        assert value not in sent, "a resident's detail in a notification"
