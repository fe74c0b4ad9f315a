"""Typed errors a caller can act on.

Every error a service raises on purpose is one of these. Over nameko RPC they
arrive as ``RemoteError`` whose ``exc_type`` is the class name and whose
``value`` is the message; :func:`shared.errors.from_remote` turns them back into
these classes on the caller's side. Messages never carry personal data or a
stack trace.
"""

import json


class RembugError(Exception):
    """Base of the errors a caller is meant to see."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class ValidationError(RembugError):
    """The input is malformed; ``fields`` maps each field to its messages."""

    def __init__(self, fields, message=None):
        self.fields = fields
        super().__init__(message or json.dumps({"invalid": fields}, sort_keys=True, default=str))


class NotFound(RembugError):
    """The named entity does not exist (or is not visible to the caller)."""


class Conflict(RembugError):
    """A stale expected version, or a transition the current state does not allow."""


class Forbidden(RembugError):
    """The caller's role or scope does not allow this."""


class Unauthenticated(Forbidden):
    """The call carries no valid token."""


class ConfigError(RembugError):
    """The environment does not configure the service; the message lists each problem."""


ERRORS = {
    cls.__name__: cls for cls in (ValidationError, NotFound, Conflict, Forbidden, Unauthenticated)
}


def from_remote(remote_error):
    """Turn a nameko ``RemoteError`` back into the typed error it carries, if any."""
    cls = ERRORS.get(getattr(remote_error, "exc_type", None))
    if cls is None:
        return remote_error
    message = remote_error.value
    if cls is ValidationError:
        try:
            return ValidationError(json.loads(message)["invalid"], message)
        except (ValueError, KeyError, TypeError):
            return ValidationError({}, message)
    return cls(message)
