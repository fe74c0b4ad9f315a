"""A cheaper path through a command schema, for rows that are valid (a bulk import).

:func:`quick_load` gives exactly what :func:`services.citizens.schemas.load` gives
for the same schema and payload, or None; it is None whenever the schema would
refuse the payload (and for anything it does not handle itself), so the caller
then loads with the schema, which also words the errors. Nothing is checked
twice: it runs the schema's own fields (their ``_deserialize``), their own
validators and the schema's own ``validates_schema`` methods, and only leaves
out marshmallow's bookkeeping around them (error store, accessor closures, hook
dispatch), most of the cost of a load of a valid row.
"""

from collections.abc import Mapping
from functools import cache

import marshmallow
from marshmallow import RAISE, missing

from services.citizens.schemas import schema_instance

#: Hooks a schema may have and still take the quick path (dump hooks do not load).
_QUICK_HOOKS = frozenset(("validates_schema", "pre_dump", "post_dump"))


def quick_load(schema_cls, payload):
    """What ``schemas.load(schema_cls, payload)`` returns, or None (then load with it)."""
    if not isinstance(payload, Mapping):
        return None
    return _plan(schema_cls)(payload)


@cache
def _plan(schema_cls):
    """The quick loader of one schema: None for every payload if the schema uses what
    the quick path does not follow (renamed keys, load hooks, other unknown policies)."""
    schema = schema_instance(schema_cls)
    if not _supported(schema):
        return lambda payload: None
    fields = [
        (name, field, field._deserialize, field.validators)
        for name, field in schema.load_fields.items()
    ]
    names = frozenset(schema.load_fields)
    validators = [getattr(schema, name) for name, _, _ in schema._hooks["validates_schema"]]

    def load(payload):
        if not payload.keys() <= names:
            return None  # an unknown field: the schema raises
        loaded = {}
        try:
            for name, field, deserialize, checks in fields:
                value = payload.get(name, missing)
                if value is missing:
                    if field.required:
                        return None
                    default = field.load_default
                    if default is not missing:
                        loaded[name] = default() if callable(default) else default
                    continue
                if value is None:
                    if not field.allow_none:
                        return None
                    loaded[name] = None
                    continue
                value = deserialize(value, name, payload)
                for check in checks:  # as marshmallow's And: a refusal raises
                    check(value)
                loaded[name] = value
            for validate in validators:
                validate(loaded, partial=None, many=False, unknown=None)
        except marshmallow.ValidationError:
            return None
        return loaded

    return load


def _supported(schema):
    """Whether loading with ``schema`` is only its fields, their validators and plain
    ``validates_schema`` methods, under ``unknown = RAISE``."""
    hooks = {name for name, registered in schema._hooks.items() if registered}
    plain_validators = all(
        not many and not options.get("pass_original")
        for _, many, options in schema._hooks.get("validates_schema", ())
    )
    fields_plain = all(
        field.data_key is None
        and field.attribute is None
        and not getattr(field, "pre_load", ())
        and not getattr(field, "post_load", ())
        for field in schema.load_fields.values()
    )
    return (
        hooks <= _QUICK_HOOKS
        and plain_validators
        and fields_plain
        and schema.unknown == RAISE
        and not schema.partial
        and not schema.many
    )
