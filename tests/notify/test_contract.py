"""Notify's own events (the contact registry) fit the AsyncAPI contract they would publish under.

``shared/asyncapi.py`` does not list notify yet (see docs/notify.md); this builds
the document with notify added and checks every event notify stores against it.
"""

from jsonschema import Draft7Validator

from services.notify import schemas
from shared import asyncapi
from tests import factories as f


def test_every_contact_event_fits_the_contract_without_its_personal_part(node):
    node.start_notify()
    with node.rpc(f.operator()) as notify:
        notify.register_contact(
            user_id="u-rw-7",
            role="ketua_rw",
            rw=7,
            phone="081234500007",
            email="rw7@example.org",
            channels=["email", "sms"],
            whatsapp_opt_in=True,
        )
        notify.register_contact(user_id="u-rw-7", role="ketua_rw", rw=7, channels=["in_app"])
        notify.opt_out(user_id="u-rw-7", channel="sms")
        notify.opt_in(user_id="u-rw-7", channel="sms")
        notify.erase_contact(user_id="u-rw-7")
    with node.rpc(f.system()) as notify:
        published = notify.replay(after=0)

    doc = asyncapi.document({**asyncapi.SERVICES, "notify": schemas.EVENT_SCHEMAS})
    assert [e["type"] for e in published] == [
        "contact.registered",
        "contact.changed",
        "contact.opted_out",
        "contact.opted_in",
        "contact.erased",
    ]
    for cloudevent in published:
        assert "personal" not in cloudevent["data"]
        payload = doc["components"]["messages"][cloudevent["type"]]["payload"]
        validator = Draft7Validator(payload, format_checker=Draft7Validator.FORMAT_CHECKER)
        assert [e.message for e in validator.iter_errors(cloudevent)] == []
