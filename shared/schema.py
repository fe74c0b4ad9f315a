"""What every service's marshmallow schemas build on: fields, strict bases, one loader.

:func:`load` is the one entry point for untrusted input in every service: it
returns the loaded, JSON-native dict or raises
:class:`shared.errors.ValidationError` (field -> messages), and nothing else.
Error messages never echo the input.
"""

import math
import numbers
import re
import uuid
from collections.abc import Mapping
from datetime import date
from functools import cache

import marshmallow
from marshmallow import RAISE, Schema, fields

from shared.errors import ValidationError

# -- reusable fields --------------------------------------------------------------------

# C0 and C1 control characters and lone surrogates (which PostgreSQL cannot store)
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


class Text(fields.String):
    """Free text, stripped, ``min``..``max`` characters after stripping.

    Rejects control characters except line feed and tab (and those too when
    ``multiline=False``); a CR LF pair is read as a line feed.
    """

    default_error_messages = {
        "length": "Length must be between {min} and {max}.",
        "control": "Must not contain control characters other than line breaks and tabs.",
        "single_line": "Must be a single line without control characters.",
    }

    def __init__(self, min=0, max=1000, *, multiline=True, **kwargs):
        super().__init__(**kwargs)
        self.min, self.max, self.multiline = min, max, multiline

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.replace("\r\n", "\n").strip()
        if not self.min <= len(text) <= self.max:
            raise self.make_error("length", min=self.min, max=self.max)
        if self.multiline and _CONTROL_MULTILINE.search(text):
            raise self.make_error("control")
        if not self.multiline and _CONTROL_SINGLE_LINE.search(text):
            raise self.make_error("single_line")
        return text


class Ref(fields.String):
    """A reference to a stored file, e.g. ``files/abc.jpg``: at most 300 characters of
    letters, digits, ``. _ - /``, relative and without ``..``."""

    default_error_messages = {"ref": "Must be a file reference like files/abc.jpg."}
    _PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,299}$")

    def _deserialize(self, value, attr, data, **kwargs):
        ref = super()._deserialize(value, attr, data, **kwargs)
        if not self._PATTERN.match(ref) or ".." in ref or "//" in ref:
            raise self.make_error("ref")
        return ref


class Pattern(fields.String):
    """A string matching ``pattern`` in full (codes, ids)."""

    default_error_messages = {"pattern": "Not a valid {name}."}

    def __init__(self, pattern, name, **kwargs):
        super().__init__(**kwargs)
        self.pattern, self.name = pattern, name

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self.pattern.fullmatch(text):
            raise self.make_error("pattern", name=self.name)
        return text


class UuidStr(fields.String):
    """A UUID, loaded as its canonical lowercase string (JSON-native)."""

    default_error_messages = {"uuid": "Not a valid UUID."}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 45:
            raise self.make_error("uuid")
        try:
            return str(uuid.UUID(text))
        except ValueError as error:
            raise self.make_error("uuid") from error


class IsoDate(fields.String):
    """A calendar date ``YYYY-MM-DD``, kept as that string (JSON-native)."""

    default_error_messages = {"date": "Not a valid date (YYYY-MM-DD)."}
    _PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not self._PATTERN.match(text):
            raise self.make_error("date")
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError as error:
            raise self.make_error("date") from error


class Int(fields.Integer):
    """A whole number given as a JSON integer: floats, strings and bools are rejected."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)


class Real(fields.Float):
    """A finite number given as a JSON number: strings, bools, NaN and infinity are rejected."""

    def _validated(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.make_error("invalid", input=value)
        number = super()._validated(value)
        if not math.isfinite(number):
            raise self.make_error("special")
        return number


class Strict(Schema):
    """Base of every command and query: unknown fields are an error."""

    class Meta:
        unknown = RAISE


class Command(Strict):
    """Base of every command: an optional ``command_id`` makes a retry idempotent."""

    command_id = UuidStr(load_default=None)


# -- loading ----------------------------------------------------------------------------


def _jsonable_messages(messages):
    """Marshmallow messages with every key a string (keys may come from the input)."""
    if isinstance(messages, Mapping):
        return {str(key): _jsonable_messages(value) for key, value in messages.items()}
    if isinstance(messages, list | tuple):
        return [_jsonable_messages(item) for item in messages]
    return messages if isinstance(messages, str) else str(messages)


@cache
def schema_instance(schema_cls):
    """One reusable instance per schema class: building a schema costs more than a load."""
    return schema_cls()


def load(schema_cls, payload):
    """Load ``payload`` with ``schema_cls`` and return the loaded dict.

    Raises :class:`shared.errors.ValidationError` (field -> messages) for anything
    invalid, including a payload that is not an object; raises nothing else.
    """
    if not isinstance(payload, Mapping):
        raise ValidationError({"_schema": ["Invalid input type: expected an object."]})
    try:
        return schema_instance(schema_cls).load(payload)
    except marshmallow.ValidationError as error:
        raise ValidationError(_jsonable_messages(error.messages)) from None
