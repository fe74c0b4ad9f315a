"""The event contract (shared/asyncapi.py, docs/asyncapi.json).

The committed document is a fresh generation from the marshmallow schemas, has
the AsyncAPI 3 shape, and every event the proposals service publishes (read back
through ``replay``, and as relayed to ``proposals.events``) fits its message.
"""

import json
import uuid

import pytest
from jsonschema import Draft7Validator
from kombu import Connection, Queue
from marshmallow import EXCLUDE, Schema, fields
from marshmallow.validate import Length, OneOf, Range

from services.proposals import schemas
from services.proposals.schemas import EVENT_SCHEMAS
from shared import asyncapi
from shared.envelope import Event
from tests import factories as f
from tests.proposals import conftest as proposals_conftest
from tests.proposals import forum

proposals = proposals_conftest.proposals  # the running service fixture, declared here too
SOURCE = f"/kelurahan/{f.PENGASINAN}/proposals"


@pytest.fixture(scope="module")
def doc():
    return asyncapi.document()


def payload_of(doc, event_type):
    return doc["components"]["messages"][event_type]["payload"]


def errors(doc, cloudevent):
    """The validation errors of ``cloudevent`` against the payload of its own type."""
    validator = Draft7Validator(
        payload_of(doc, cloudevent["type"]), format_checker=Draft7Validator.FORMAT_CHECKER
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cloudevent)]


def resolve(doc, ref):
    node = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


# -- the document -----------------------------------------------------------------------


def test_committed_document_is_a_fresh_generation(doc):
    committed = asyncapi.OUTPUT.read_text()
    assert committed == asyncapi.render(doc), "docs/asyncapi.json is stale: run `make asyncapi`"


def test_check_fails_on_a_stale_file_and_passes_on_a_fresh_one(tmp_path, capsys):
    target = tmp_path / "asyncapi.json"
    assert asyncapi.main(["--check", "--output", str(target)]) == 1  # missing
    assert asyncapi.main(["--output", str(target)]) == 0
    assert asyncapi.main(["--check", "--output", str(target)]) == 0
    target.write_text(target.read_text().replace('"3.0.0"', '"3.0.1"'))
    assert asyncapi.main(["--check", "--output", str(target)]) == 1
    assert "make asyncapi" in capsys.readouterr().err


def test_document_has_the_asyncapi_3_shape(doc):
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "rembug events"
    assert doc["info"]["version"] == asyncapi.project_version()
    assert doc["servers"]["broker"]["protocol"] == "amqp"
    channel = doc["channels"]["proposals.events"]
    exchange = channel["bindings"]["amqp"]["exchange"]
    assert (exchange["name"], exchange["type"], exchange["durable"]) == (
        "proposals.events",
        "topic",
        True,
    )
    operation = doc["operations"]["proposals.publish"]
    assert operation["action"] == "send"
    assert resolve(doc, operation["channel"]["$ref"]) is channel
    for ref in refs(doc):
        assert ref.startswith("#/") and resolve(doc, ref), ref
    operation_messages = [resolve(doc, m["$ref"]) for m in operation["messages"]]
    assert operation_messages == list(channel["messages"].values())


def test_every_event_type_has_a_message_whose_payload_is_a_valid_schema(doc):
    messages = doc["components"]["messages"]
    assert set(messages) == {t for schemas_ in asyncapi.SERVICES.values() for t in schemas_}
    for service, event_schemas in asyncapi.SERVICES.items():
        channel = doc["channels"][f"{service}.events"]
        assert set(channel["messages"]) == set(event_schemas)
        assert channel["parameters"]["type"]["enum"] == list(event_schemas)
        for event_type, schema_cls in event_schemas.items():
            message = messages[event_type]
            assert message["name"] == event_type
            Draft7Validator.check_schema(message["payload"])
            properties = message["payload"]["properties"]
            assert properties["type"]["const"] == event_type
            assert properties["dataversion"] == {"const": schema_cls.version}
            assert set(message["payload"]["required"]) == set(properties)
            assert "personal" not in properties["data"]["properties"]  # never published
            assert "$ref" not in json.dumps(message["payload"])  # self-contained


# -- marshmallow -> JSON Schema ---------------------------------------------------------


class Inner(Schema):
    code = fields.String(required=True, validate=OneOf(["a", "b"]), allow_none=True)


class Sample(Schema):
    class Meta:
        unknown = EXCLUDE

    count = fields.Integer(required=True, validate=Range(0, 10, max_inclusive=False))
    tags = fields.List(fields.String(), validate=Length(1, 3))
    inner = fields.Nested(Inner, many=True)
    scores = fields.Dict(keys=fields.String(), values=fields.Float())


def test_fields_validators_and_none_map_to_json_schema():
    out = asyncapi.json_schema(Sample)
    assert out["additionalProperties"] is True and out["required"] == ["count"]
    props = out["properties"]
    assert props["count"] == {"type": "integer", "minimum": 0, "exclusiveMaximum": 10}
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": 3,
    }
    inner = props["inner"]["items"]
    assert inner["additionalProperties"] is False  # marshmallow's default is RAISE
    assert inner["properties"]["code"] == {"type": ["string", "null"], "enum": ["a", "b", None]}
    assert props["scores"]["additionalProperties"] == {"type": "number"}


def test_a_partial_nested_schema_requires_nothing():
    changes = asyncapi.json_schema(schemas.RevisedEvent)["properties"]["changes"]
    assert "required" not in changes and changes["additionalProperties"] is False


class Email(Schema):
    address = fields.Email(required=True)


class Subclassed(Schema):
    name = type("Shouting", (fields.String,), {})()


def test_an_unknown_field_type_raises_even_as_a_subclass_of_a_known_one():
    with pytest.raises(asyncapi.Unsupported, match="Email"):
        asyncapi.json_schema(Email)
    with pytest.raises(asyncapi.Unsupported, match="Shouting"):
        asyncapi.json_schema(Subclassed)


def test_two_services_cannot_declare_the_same_event_type():
    with pytest.raises(ValueError, match="proposal.submitted"):
        asyncapi.document({"proposals": EVENT_SCHEMAS, "copy": EVENT_SCHEMAS}, version="0")


# -- events against the contract --------------------------------------------------------


def submitted_event():
    """A valid ``proposal.submitted`` CloudEvent, built without the service."""
    data = schemas.load(schemas.SubmittedEvent, {**f.proposal(), "kelurahan": f.PENGASINAN})
    event = Event(
        type="proposal.submitted",
        stream=f"proposal-{uuid.uuid4()}",
        data=data,
        actor={"id": "u-rt-7-3", "role": "ketua_rt"},
        correlation_id="proposals.submit.1",
        causation_id="proposals.submit.1",
    )
    return event.stored(SOURCE, 1, 1).to_cloudevent()


def test_a_valid_event_fits(doc):
    assert errors(doc, submitted_event()) == []


def _set(path, value):
    def mutate(ce):
        node = ce
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(key):
    return lambda ce: ce.pop(key)


BROKEN = {
    "cost as a string": _set(["data", "estimated_cost"], "120000000"),
    "unknown data field": _set(["data", "unknown"], 1),
    "rw out of range": _set(["data", "location", "rw"], 100),
    "unknown sector": _set(["data", "sector"], "pariwisata"),
    "file ref with ..": _set(["data", "photos"], ["files/../x.jpg"]),
    "title on two lines": _set(["data", "title"], "two\nlines here"),
    "other data version": _set(["dataversion"], 2),
    "other service's source": _set(["source"], "/kelurahan/32.75.05.1002/budget"),
    "unknown role": _set(["actorrole"], "king"),
    "id not a uuid": _set(["id"], "not-a-uuid"),
    "time without zone": _set(["time"], "2027-01-19T10:00:00"),
    "extra attribute": _set(["extra"], "attribute"),
    "no actor": _delete("actorid"),
    "no sequence": _delete("sequence"),
}


@pytest.mark.parametrize("mutate", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_event_does_not_fit(doc, mutate):
    event = submitted_event()
    mutate(event)
    assert errors(doc, event) != []


def test_an_event_does_not_fit_the_payload_of_another_type(doc):
    event = submitted_event()
    validator = Draft7Validator(payload_of(doc, "proposal.verified"))
    assert not validator.is_valid(event)


def drive_every_event_type(service):
    """Run proposals through every transition, so each event type is stored at least once.

    ``service`` is the ``proposals`` fixture."""
    with service(f.rt_chair()) as rt:
        pid = rt.submit(**f.proposal())["id"]
    with service(f.operator()) as op:
        forum_id = forum.open_forum(op)
        op.return_for_revision(proposal_id=pid, reason="alamat kurang jelas")
    with service(f.rt_chair()) as rt:
        rt.revise(proposal_id=pid, location={"rw": 7, "rt": 3, "address": "Jl. Melati 2"})
    with service(f.operator()) as op:
        forum.verify_and_score(op, pid)
        forum.forward_ranked(op, forum.hold_and_rank(op, forum_id))
    with service(f.camat()) as camat:
        camat.decide(proposal_id=pid, level="kecamatan", decision="accepted")
    with service(f.bappeda()) as city:
        city.decide(
            proposal_id=pid, level="city", decision="funded", funding_source="apbd", amount=1_000
        )
    with service(f.operator()) as op:
        op.report_progress(proposal_id=pid, percent=40, milestone="galian selesai")
        op.report_progress(proposal_id=pid, percent=100, milestone="serah terima")

    with service(f.rt_chair()) as rt:
        rejected, cancelled, survivor = (rt.submit(**f.proposal())["id"] for _ in range(3))
        rt.cancel(proposal_id=cancelled, reason="sudah dikerjakan swadaya")
    with service(f.rt_chair(rt=4)) as rt4:
        duplicate = rt4.submit(**f.proposal(proposer={"level": "rt", "rw": 7, "rt": 4}))["id"]
    with service(f.operator()) as op:
        op.reject(proposal_id=rejected, code="other", text="di luar kewenangan kelurahan")
        op.merge(proposal_id=duplicate, survivor_id=survivor, reason="lokasi sama")


def replayed(service):
    """Every stored event as CloudEvents, through the replay RPC."""
    with service(f.system()) as rpc:
        return rpc.replay(after=0, limit=5000)


def test_every_published_event_fits_its_message(doc, proposals):
    drive_every_event_type(proposals)
    events = replayed(proposals)
    assert {e["type"] for e in events} == set(EVENT_SCHEMAS)
    for event in events:
        assert errors(doc, event) == [], event["type"]


def test_every_relayed_message_fits_its_message(doc, proposals, database_url, rabbit_config):
    relay = pytest.importorskip("shared.relay")
    amqp_uri = rabbit_config["AMQP_URI"]
    with Connection(amqp_uri) as conn:
        queue = Queue(
            "asyncapi-test",
            relay.event_exchange("proposals"),
            routing_key="#",
            channel=conn.channel(),
        )
        queue.declare()
        drive_every_event_type(proposals)
        stored = replayed(proposals)
        relayer = relay.Relay(database_url, amqp_uri, "proposals", SOURCE, confirm_timeout=5)
        try:
            assert relayer.run_once() == len(stored)
        finally:
            relayer.close()
        received = []
        while (message := queue.get(no_ack=True)) is not None:
            received.append((message.delivery_info["routing_key"], json.loads(message.body)))
    assert [ce["id"] for _, ce in received] == [ce["id"] for ce in stored]
    for routing_key, cloudevent in received:
        assert routing_key == cloudevent["type"]
        assert errors(doc, cloudevent) == [], routing_key
