"""The event contract: an AsyncAPI 3.0.0 document generated from the event schemas.

The marshmallow schemas in each service's ``EVENT_SCHEMAS`` are the single source
of the contract; ``docs/asyncapi.json`` is generated from them, never edited by
hand (``make asyncapi``; ``python -m shared.asyncapi --check`` fails when the
committed file differs from a fresh generation).

What :func:`document` guarantees:

- one channel per service: its topic exchange ``<service>.events`` (durable, not
  auto-deleted, as nameko and :mod:`shared.relay` declare it), with one message
  per event type, and one ``send`` operation (the service publishes);
- a message's name is its event type, which is also its AMQP routing key (the
  channel address ``{type}``, whose parameter is read from the payload's ``type``);
- a message's payload is the whole CloudEvents object of
  :meth:`shared.envelope.Event.to_cloudevent` as a self-contained JSON Schema
  (draft-07, no ``$ref``): every attribute required, no other attribute allowed,
  ``type`` and ``dataversion`` fixed to the event type and its schema's
  ``version``, and ``data`` the JSON Schema of the marshmallow schema;
- the same input gives the same document (keys sorted when rendered).

What :func:`json_schema` guarantees for a marshmallow schema:

- a field converts only if its *exact* class has an entry in :data:`FIELD_TYPES`,
  and a validator only if its exact class is known: anything else raises
  :class:`Unsupported`, so no field goes silently unvalidated (a subclass of a
  known field may check more than its parent, so it needs its own entry);
- each field is checked as strictly as JSON Schema can say what marshmallow
  checks field by field. Cross-field rules (``@validates_schema``) are not
  expressed, and ``Text`` lengths apply to the stored text as it is (loading
  strips it first).
"""

import argparse
import inspect
import json
import re
import sys
import tomllib
from pathlib import Path

from marshmallow import RAISE, Schema, fields, missing
from marshmallow.validate import Equal, Length, OneOf, Range, Regexp

from services.budget import schemas as budget_schemas
from services.citizens import schemas as citizens_schemas
from services.notify import schemas as notify_schemas
from services.proposals import schemas as proposals_schemas
from shared.actor import ROLES
from shared.envelope import CONTENT_TYPE, PERSONAL, SPEC_VERSION

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "asyncapi.json"
ASYNCAPI_VERSION = "3.0.0"
AMQP_BINDING_VERSION = "0.3.0"
PERSISTENT = 2

#: Service name -> its EVENT_SCHEMAS (event type -> marshmallow schema with ``version``).
SERVICES = {
    "proposals": proposals_schemas.EVENT_SCHEMAS,
    "citizens": citizens_schemas.EVENT_SCHEMAS | citizens_schemas.ACCESS_EVENT_SCHEMAS,
    "budget": budget_schemas.EVENT_SCHEMAS,
    "notify": notify_schemas.EVENT_SCHEMAS,
}

#: The ``source`` of a service's events: ``/kelurahan/<code>/<service>`` or ``/city/32.75/<service>``.
SOURCE_PATTERN = r"^/(kelurahan/32\.75\.[0-9]{2}\.[0-9]{4}|city/32\.75)/{service}$"

# Formats draft-07 validators may not check, also as patterns
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
TIME_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
UUID = {"type": "string", "format": "uuid", "pattern": UUID_PATTERN}

# Text without C0/C1 controls (line feed and tab allowed when multiline)
_TEXT_MULTILINE = r"^[^\x00-\x08\x0b-\x1f\x7f-\x9f]*$"
_TEXT_SINGLE_LINE = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*$"


class Unsupported(TypeError):
    """A marshmallow field, validator or schema that this module cannot express."""


# -- marshmallow -> JSON Schema ---------------------------------------------------------


def json_schema(schema, _seen=(), exclude=()):
    """The JSON Schema (draft-07) of what ``schema`` (class or instance) accepts on load.

    Required fields (unless the schema is ``partial``) are ``required``; a schema
    with ``unknown = RAISE`` allows no other property; fields named in
    ``exclude`` are left out. Raises :class:`Unsupported` for a field or
    validator without a mapping, or a schema that nests itself.
    """
    schema = schema() if isinstance(schema, type) else schema
    cls = type(schema)
    if cls in _seen:
        raise Unsupported(f"{cls.__name__} nests itself; recursive schemas are not supported")
    properties, required = {}, []
    for name, field in schema.load_fields.items():
        key = field.data_key or name
        if key in exclude:
            continue
        properties[key] = field_schema(field, (*_seen, cls))
        if field.required and not _is_partial(schema, name):
            required.append(key)
    out = {
        "type": "object",
        "title": cls.__name__,
        "properties": properties,
        "additionalProperties": schema.unknown != RAISE,
    }
    if required:
        out["required"] = required
    return _described(out, cls.__dict__.get("__doc__"))


def _is_partial(schema, name):
    partial = schema.partial
    if partial is True:
        return True
    return bool(partial) and name in partial


def field_schema(field, _seen=()):
    """The JSON Schema of one field: its type, its validators, ``null`` if allowed."""
    convert = FIELD_TYPES.get(type(field))
    if convert is None:
        raise Unsupported(
            f"no JSON Schema for field type {type(field).__module__}.{type(field).__qualname__}; "
            "add it to shared.asyncapi.FIELD_TYPES"
        )
    out = convert(field, _seen)
    for validator in field.validators:
        out.update(validator_schema(validator, out["type"]))
    if field.load_default is not missing and not callable(field.load_default):
        out["default"] = field.load_default
    if field.allow_none:
        out = _nullable(out)
    return _described(out, field.metadata.get("description"))


def validator_schema(validator, json_type):
    """JSON Schema keywords for one marshmallow validator on a value of ``json_type``."""
    convert = VALIDATORS.get(type(validator))
    if convert is None:
        raise Unsupported(f"no JSON Schema for validator {type(validator).__qualname__}")
    return convert(validator, json_type)


def _range(validator, json_type):
    out = {}
    if validator.min is not None:
        out["minimum" if validator.min_inclusive else "exclusiveMinimum"] = validator.min
    if validator.max is not None:
        out["maximum" if validator.max_inclusive else "exclusiveMaximum"] = validator.max
    return out


_LENGTH_KEYWORDS = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}


def _length(validator, json_type):
    if json_type not in _LENGTH_KEYWORDS:
        raise Unsupported(f"Length on a {json_type}")
    low_key, high_key = _LENGTH_KEYWORDS[json_type]
    low = validator.equal if validator.equal is not None else validator.min
    high = validator.equal if validator.equal is not None else validator.max
    out = {}
    if low is not None:
        out[low_key] = low
    if high is not None:
        out[high_key] = high
    return out


VALIDATORS = {
    Range: _range,
    Length: _length,
    OneOf: lambda v, t: {"enum": list(v.choices)},
    Equal: lambda v, t: {"const": v.comparable},
    Regexp: lambda v, t: {"pattern": _anchored(v.regex.pattern)},
}


def _nullable(out):
    out = dict(out, type=[out["type"], "null"])
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    if "const" in out:
        out["enum"] = [out.pop("const"), None]
    return out


def _described(out, text):
    if text:
        out["description"] = inspect.cleandoc(text)
    return out


def _anchored(pattern):
    """``pattern`` as a full match (JSON Schema patterns match anywhere)."""
    if pattern.startswith("^") and pattern.endswith("$"):
        return pattern
    return f"^(?:{pattern})$"


def _regex(compiled):
    if compiled.flags & ~re.UNICODE:  # any other flag changes the meaning
        raise Unsupported(f"regex flags cannot be expressed: {compiled.pattern!r}")
    return _anchored(compiled.pattern)


# -- field types ------------------------------------------------------------------------


def _string(field, seen):
    return {"type": "string"}


def _text(field, seen):
    out = {"type": "string", "maxLength": field.max}
    if field.min:
        out["minLength"] = field.min
    out["pattern"] = _TEXT_MULTILINE if field.multiline else _TEXT_SINGLE_LINE
    return out


def _ref(field, seen):
    return {"type": "string", "pattern": _regex(field._PATTERN), "not": {"pattern": r"\.\.|//"}}


def _pattern(field, seen):
    return {"type": "string", "pattern": _regex(field.pattern)}


def _list(field, seen):
    return {"type": "array", "items": field_schema(field.inner, seen)}


def _dict(field, seen):
    out = {"type": "object"}
    if field.key_field is not None:
        out["propertyNames"] = field_schema(field.key_field, seen)
    values = field_schema(field.value_field, seen) if field.value_field is not None else True
    out["additionalProperties"] = values
    return out


def _nested(field, seen):
    if not isinstance(field.schema, Schema):
        raise Unsupported(f"Nested field {field.name!r} without a schema")
    out = json_schema(field.schema, seen)
    if field.many:
        return {"type": "array", "items": out}
    return out


#: Exact marshmallow field class -> function(field, seen) returning its JSON Schema.
FIELD_TYPES = {
    fields.String: _string,
    fields.Integer: lambda f, s: {"type": "integer"},
    fields.Float: lambda f, s: {"type": "number"},
    fields.Boolean: lambda f, s: {"type": "boolean"},
    fields.List: _list,
    fields.Dict: _dict,
    fields.Nested: _nested,
    proposals_schemas.Text: _text,
    proposals_schemas.Ref: _ref,
    proposals_schemas.Pattern: _pattern,
    proposals_schemas.UuidStr: lambda f, s: dict(UUID),
    proposals_schemas.IsoDate: lambda f, s: {
        "type": "string",
        "format": "date",
        "pattern": _regex(f._PATTERN),
    },
    proposals_schemas.Int: lambda f, s: {"type": "integer"},
    proposals_schemas.Real: lambda f, s: {"type": "number"},
}


# -- the envelope -----------------------------------------------------------------------


def envelope_schema(service, event_type, schema_cls):
    """The JSON Schema of a published ``event_type`` of ``service``: its whole CloudEvent."""
    nullable_string = {"type": ["string", "null"]}
    properties = {
        "specversion": {"const": SPEC_VERSION},
        "id": dict(UUID, description="Unique per source."),
        "source": {
            "type": "string",
            "pattern": SOURCE_PATTERN.replace("{service}", service),
            "description": "The owning node and service; source + id is the deduplication key.",
        },
        "type": {"const": event_type, "description": "The event type, also the routing key."},
        "subject": {"type": "string", "minLength": 1, "description": "The stream."},
        "time": {"type": "string", "format": "date-time", "pattern": TIME_PATTERN},
        "datacontenttype": {"const": CONTENT_TYPE},
        "sequence": {
            "type": "integer",
            "minimum": 1,
            "description": "Position in the source's log, gap-free.",
        },
        "streamversion": {"type": "integer", "minimum": 1},
        "correlationid": nullable_string,
        "causationid": nullable_string,
        "dataversion": {"const": getattr(schema_cls, "version", 1)},
        "actorid": {"type": "string", "minLength": 1, "description": "Pseudonymous user id."},
        "actorrole": {"type": "string", "enum": list(ROLES)},
        # the personal part never leaves its service (shared.envelope)
        "data": json_schema(schema_cls, exclude=(PERSONAL,)),
    }
    return {
        "type": "object",
        "title": f"{event_type} (CloudEvents {SPEC_VERSION})",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# -- the document -----------------------------------------------------------------------


def project_version(pyproject=ROOT / "pyproject.toml"):
    """The ``[project] version`` of pyproject.toml."""
    return tomllib.loads(Path(pyproject).read_text())["project"]["version"]


def exchange(service):
    """The name of ``service``'s topic exchange (and of its channel)."""
    return f"{service}.events"


def document(services=None, version=None):
    """The AsyncAPI 3.0.0 document (a JSON-native dict) for ``services``.

    ``services`` maps a service name to its EVENT_SCHEMAS (default :data:`SERVICES`);
    ``version`` defaults to the project's. Raises ``ValueError`` when two services
    declare the same event type, :class:`Unsupported` for a field it cannot express.
    """
    services = SERVICES if services is None else services
    messages, channels, operations = {}, {}, {}
    for service, event_schemas in sorted(services.items()):
        for event_type, schema_cls in event_schemas.items():
            if event_type in messages:
                raise ValueError(f"event type {event_type!r} is declared by two services")
            messages[event_type] = message(service, event_type, schema_cls)
        channels[exchange(service)] = channel(service, event_schemas)
        operations[f"{service}.publish"] = operation(service, event_schemas)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "rembug events",
            "version": version or project_version(),
            "description": (
                "Every event a rembug service publishes, generated from the services' "
                "marshmallow event schemas by shared/asyncapi.py. Each message is a "
                "CloudEvents 1.0 JSON object (structured mode) published persistently to "
                "the service's topic exchange with the event type as routing key."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {"broker": server()},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def server():
    """The node's RabbitMQ broker; the host is a variable."""
    return {
        "host": "{host}:{port}",
        "protocol": "amqp",
        "protocolVersion": "0.9.1",
        "description": "The RabbitMQ broker of a kelurahan or city node.",
        "variables": {
            "host": {"default": "localhost", "description": "The broker's host name."},
            "port": {"default": "5672"},
        },
    }


def channel(service, event_schemas):
    """The channel of ``service``'s exchange: addressed by routing key = event type."""
    name = exchange(service)
    return {
        "address": "{type}",
        "title": name,
        "description": f"The topic exchange {name}; the routing key is the event type.",
        "parameters": {
            "type": {
                "enum": list(event_schemas),
                "location": "$message.payload#/type",
                "description": "The routing key: the event's CloudEvents type.",
            }
        },
        "messages": {t: {"$ref": f"#/components/messages/{t}"} for t in event_schemas},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": name,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                },
                "bindingVersion": AMQP_BINDING_VERSION,
            }
        },
    }


def operation(service, event_schemas):
    """The service publishes (``send``) every message of its channel, persistently."""
    name = exchange(service)
    return {
        "action": "send",
        "title": f"{service} publishes its events",
        "description": "Committed events, in log order, with publisher confirms.",
        "channel": {"$ref": f"#/channels/{name}"},
        "messages": [{"$ref": f"#/channels/{name}/messages/{t}"} for t in event_schemas],
        "bindings": {"amqp": {"deliveryMode": PERSISTENT, "bindingVersion": AMQP_BINDING_VERSION}},
    }


def message(service, event_type, schema_cls):
    """The message of one event type: named by its type, its payload the whole CloudEvent."""
    out = {
        "name": event_type,
        "title": event_type,
        "summary": f"{event_type}, data version {getattr(schema_cls, 'version', 1)}",
        "contentType": CONTENT_TYPE,
        "correlationId": {"location": "$message.payload#/correlationid"},
        "payload": envelope_schema(service, event_type, schema_cls),
        "bindings": {"amqp": {"contentEncoding": "utf-8", "bindingVersion": AMQP_BINDING_VERSION}},
    }
    return _described(out, schema_cls.__dict__.get("__doc__"))


# -- the file ---------------------------------------------------------------------------


def render(doc):
    """The document as committed: pretty JSON, sorted keys, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None):
    """Write the document (exit 0), or with ``--check`` exit 1 if the file is stale."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.asyncapi",
        description="Generate docs/asyncapi.json from the services' event schemas.",
    )
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="default: docs/asyncapi.json")
    args = parser.parse_args(argv)
    text = render(document())
    if args.check:
        current = args.output.read_text() if args.output.exists() else None
        if current != text:
            print(
                f"{args.output} is out of date with the event schemas: run `make asyncapi`",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
