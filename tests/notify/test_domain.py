"""Notify's pure parts: templates, SMS segments, quiet hours, channels, states, rules."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.notify import rules
from services.notify.domain import (
    Contact,
    backoff,
    can_move,
    choose_channel,
    is_opt_out,
    normalise_phone,
    sms_allowed,
    sms_window_opens,
)
from services.notify.templates import TEMPLATES, TemplateError, rupiah, sms_segments
from shared.domain import meta_for
from shared.errors import Forbidden, ValidationError
from tests import factories as f


def at(iso):
    return datetime.fromisoformat(iso)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, (1, "gsm7")),
        ("a" * 161, (2, "gsm7")),
        ("a" * 306, (2, "gsm7")),
        ("a" * 307, (3, "gsm7")),
        ("[" * 80, (1, "gsm7")),  # extension characters count twice
        ("[" * 81, (2, "gsm7")),
        ("é" * 160, (1, "gsm7")),  # in the GSM alphabet
        ("ê" * 70, (1, "ucs2")),  # not in it: UCS-2
        ("ê" * 71, (2, "ucs2")),
    ],
)
def test_sms_segments_follow_gsm_and_ucs2_limits(text, expected):
    assert sms_segments(text) == expected


def sample_params(template):
    return {name: f"nilai {name}" for name in template.params}


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_renders_on_every_channel(key):
    template = TEMPLATES[key]
    params = sample_params(template)
    sms = template.render("sms", params)
    assert sms["text"].startswith("Rembug: ") and "BERHENTI" in sms["text"]
    assert sms["segments"] == sms_segments(sms["text"])[0]
    whatsapp = template.render("whatsapp", params)
    assert whatsapp["template"].endswith(f"_v{template.version}")
    assert whatsapp["parameters"] == [params[p] for p in template.params]
    email = template.render("email", params)
    assert email["subject"] and "Yth. Bapak/Ibu" in email["body"]
    in_app = template.render("in_app", params)
    assert "{" not in in_app["body"] and "{" not in email["body"] + sms["text"]


def test_a_template_refuses_missing_or_unknown_placeholders():
    template = TEMPLATES["proposal.rejected"]
    with pytest.raises(TemplateError):
        template.render("sms", {"title": "x"})
    with pytest.raises(TemplateError):
        template.render("sms", {"title": "x", "reason": "y", "nik": "z"})


def test_rupiah_has_dots_between_thousands():
    assert rupiah(115_000_000) == "Rp 115.000.000"
    assert rupiah(500) == "Rp 500"


@pytest.mark.parametrize(
    ("iso", "allowed"),
    [
        ("2026-03-02T07:59:59+07:00", False),
        ("2026-03-02T08:00:00+07:00", True),
        ("2026-03-02T19:59:59+07:00", True),
        ("2026-03-02T20:00:00+07:00", False),
        ("2026-03-02T01:30:00+00:00", True),  # 08:30 WIB
        ("2026-03-02T13:00:00+00:00", False),  # 20:00 WIB
    ],
)
def test_sms_only_between_eight_and_twenty_wib(iso, allowed):
    assert sms_allowed(at(iso)) is allowed


def test_a_held_sms_waits_for_the_next_eight_oclock_wib():
    assert sms_window_opens(at("2026-03-02T21:00:00+07:00")) == at("2026-03-03T08:00:00+07:00")
    assert sms_window_opens(at("2026-03-02T06:00:00+07:00")) == at("2026-03-02T08:00:00+07:00")
    noon = at("2026-03-02T12:00:00+07:00")
    assert sms_window_opens(noon) == noon


def test_channel_choice_follows_preferences_opt_outs_and_addresses():
    contact = {
        "channels": ["whatsapp", "sms", "email"],
        "phone": "+6281234567890",
        "email": None,
        "opted_out": [],
        "whatsapp_opt_in": False,
    }
    every = {"sms", "whatsapp", "email", "in_app"}
    assert choose_channel(contact, every) == "sms"  # no WhatsApp opt-in
    assert choose_channel({**contact, "whatsapp_opt_in": True}, every) == "whatsapp"
    assert choose_channel({**contact, "opted_out": ["sms"]}, every) == "in_app"
    assert choose_channel(contact, {"email", "in_app"}) == "in_app"  # no SMS provider
    assert choose_channel({**contact, "opted_out": ["sms", "in_app"]}, every) is None


def test_delivery_states_move_only_forward():
    assert can_move("created", "sending") and can_move("sending", "sent")
    assert can_move("sent", "delivered") and can_move("temporary_failure", "sending")
    assert not can_move("delivered", "sending") and not can_move("permanent_failure", "sent")
    assert not can_move("created", "sent")


def test_backoff_doubles_and_is_capped():
    from datetime import timedelta

    first = timedelta(seconds=30)
    assert [backoff(n, first).seconds for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff(30, first) == timedelta(hours=1)


def test_opt_out_keyword_and_phone_numbers():
    assert is_opt_out("berhenti") and is_opt_out("  BERHENTI semua ") and not is_opt_out("stop")
    assert normalise_phone("0812-3456-7890") == "+6281234567890"
    assert normalise_phone("62 812 3456 7890") == "+6281234567890"


def contact_data(**overrides):
    data = {
        "role": "ketua_rw",
        "kelurahan": "32.75.05.1002",
        "rw": 7,
        "rt": None,
        "phone": "+6281234567890",
        "email": None,
        "channels": ["sms"],
        "whatsapp_opt_in": False,
    }
    return {**data, **overrides}


def test_contacts_are_registered_by_staff_or_by_their_own_person_only():
    meta = meta_for(f.operator())
    contact = Contact.register("u-rw-7", f.operator(), contact_data(), meta)
    assert contact.pending[0][0] == "contact.registered"
    assert contact.pending[0][1]["personal"] == {"phone": "+6281234567890", "email": None}
    Contact.register("u-rw-7", f.rw_chair(7), contact_data(), meta)
    with pytest.raises(Forbidden):
        Contact.register("u-rw-7", f.rw_chair(8), contact_data(), meta)
    with pytest.raises(Forbidden):  # a chair cannot make itself lurah
        Contact.register("u-rw-7", f.rw_chair(7), contact_data(role="lurah", rw=None), meta)
    with pytest.raises(ValidationError):
        Contact.register("u-x", f.operator(), contact_data(phone="12345"), meta)


def test_an_opted_out_channel_stays_out_until_the_person_opts_in():
    meta = meta_for(f.operator())
    contact = Contact.register("u-rw-7", f.operator(), contact_data(), meta)
    contact.opt_out(f.system(), "sms", "sms_keyword", meta)
    contact.opt_out(f.system(), "sms", "sms_keyword", meta)  # once is enough
    assert contact.opted_out == ["sms"] and len(contact.pending) == 2
    contact.opt_in(f.rw_chair(7), "sms", meta)
    assert contact.opted_out == []


class FakeMemory:
    def __init__(self, proposals=(), forums=(), requests=()):
        self.proposals, self.forums, self.requests = dict(proposals), dict(forums), dict(requests)

    def proposal(self, id_):
        return self.proposals.get(id_)

    def forum(self, id_):
        return self.forums.get(id_)

    def request(self, id_):
        return self.requests.get(id_)


def event(type_, stream, data):
    return SimpleNamespace(type=type_, stream=stream, data=data, time=datetime.now(UTC))


def test_proposal_events_go_to_the_proposer_and_the_rw_chair():
    memory = FakeMemory(proposals={"p1": {"title": "Saluran", "rw": 7, "proposer": "u-rt-7-3"}})
    [notice] = rules.notices(event("proposal.cancelled", "proposal-p1", {"reason": "x"}), memory)
    assert notice.audiences == (
        rules.Audience(user="u-rt-7-3"),
        rules.Audience(role="ketua_rw", rw=7),
    )
    assert rules.notices(event("proposal.verified", "proposal-unknown", {"note": ""}), memory) == []


def test_forum_results_go_to_delegates_and_rw_chairs():
    memory = FakeMemory(forums={"32.75.05.1002-2027": {"year": 2027, "delegates": ["d1", "d2"]}})
    ranked = event("forum.ranked", "forum-32.75.05.1002-2027", {"ranking": [{}, {}, {}]})
    [notice] = rules.notices(ranked, memory)
    assert notice.params == {"year": 2027, "count": 3}
    assert [a.user for a in notice.audiences[:2]] == ["d1", "d2"]
    assert notice.audiences[2] == rules.Audience(role="ketua_rw")


def test_budget_events_go_to_lurah_and_bendahara():
    data = {
        "line_id": "l1",
        "fiscal_year": 2026,
        "activity": "Binwas RW",
        "category": "operasional",
        "allocated": 10_000_000,
        "realised": 9_100_000,
        "percent": 91,
        "level": "near",
    }
    [notice] = rules.notices(event("line.threshold_crossed", "line-l1", data), FakeMemory())
    assert notice.audiences == rules.TREASURY
    assert (
        notice.params["state"] == "mendekati batas" and notice.params["realised"] == "Rp 9.100.000"
    )


def test_a_vulnerable_resident_reaches_the_rw_pamor_without_personal_data():
    data = {
        "public": {"rw": 7, "sex": "F", "age_band": "60+", "categories": ["elderly"]},
        "source": "home_visit",
        "personal": None,
    }
    [notice] = rules.notices(event("resident.health_recorded", "resident-r1", data), FakeMemory())
    assert notice.audiences == (rules.Audience(role="pamor", rw=7),)
    assert notice.params == {"category": "kesehatan/perawatan", "rw": 7}
